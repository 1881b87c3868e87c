//! Integration tests of `revspend-core`: the pipeline definition against the
//! stages it runs.

mod audit;
mod pipeline;
