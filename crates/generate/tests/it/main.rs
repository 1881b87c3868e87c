//! Integration tests of `generate`: the files a run writes, read back
//! through the contract's parser.

mod plain;
mod scenarios;
mod shipped;
mod support;
