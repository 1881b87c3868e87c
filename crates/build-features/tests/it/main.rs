//! build-features as a real process on files written by hand in the real
//! dataset's format.

mod bad_files;
mod integrity;
mod keys;
mod layers;
mod leakage;
mod period;
mod point_in_time;
mod privacy;
mod quirks;
mod support;
