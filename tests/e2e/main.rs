//! Vigie's end-to-end tests: one binary, every test against the local AWS emulator with its
//! own random resource prefix.

mod agent;
mod ingest;
mod provision;
mod stack;
