//! Collectors (being written).
