//! Integration tests of `train`: the binary as a real process on a small
//! generated dataset, and the library's pieces (folds, search, boosting,
//! calibration, artifact round trip) on synthetic data.

mod calibration;
mod folds;
mod gbm;
mod process;
mod roundtrip;
mod search;
mod synthetic;
