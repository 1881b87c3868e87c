//! Integration tests of the `serve` crate: handlers through the same
//! `configure` the binary uses, a real server over TCP, and the binary as a
//! process.

mod common;
mod docs;
mod drift;
mod experiments;
mod handlers;
mod mlflow;
pub mod process;
mod reload;
mod rules;
mod server;
mod v2;
