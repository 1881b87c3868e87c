//! build-features as a real process on files written by hand in the real
//! dataset's format.

mod quirks;
mod support;
