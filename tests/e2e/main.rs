//! Vigie's end-to-end tests: one binary, every test against the local AWS emulator with its
//! own random resource prefix.

mod agent;
mod api;
mod escalation;
mod escalation_api;
mod evaluate;
mod families;
mod incidents;
mod ingest;
mod noise;
mod notify;
mod oncall;
mod pipeline;
mod provision;
mod silence;
mod stack;
mod templates;
mod usage;
mod windows;
