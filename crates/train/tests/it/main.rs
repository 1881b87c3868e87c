//! Integration tests of `train`: the binary as a real process on small
//! synthetic split tables ([`fixture`]), and the library's pieces (folds,
//! search, boosting, calibration, artifact round trip) on synthetic data.
//! Params come from the fixture's own `params.yaml`.

mod calibration;
mod consistency;
mod fixture;
mod folds;
mod gbm;
mod process;
mod roundtrip;
mod search;
mod synthetic;
