//! Local runtime.
