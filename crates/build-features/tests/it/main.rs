//! build-features as a real process on files written by hand in the real
//! dataset's format.

mod keys;
mod layers;
mod leakage;
mod point_in_time;
mod quirks;
mod support;
