//! Integration tests of `evaluate`: the binary as a real process on a model
//! built in code and a synthetic holdout table ([`fixture`]); no other stage
//! is compiled or run.

mod fixture;
mod learning;
mod process;
