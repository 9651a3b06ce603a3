//! SDK configuration.
