//! The Vigie agent as a library: collectors, spool, signed sender. `main.rs` is the CLI.

pub mod collect;
