//! The local AWS emulator.
