//! `monitor`: how far a new data window has moved from the training
//! reference.
//!
//! For now it holds [`drift`], the per-feature and dataset drift statistics
//! (Evidently's default tests and PSI) computed on binned counts, and
//! [`window`], which streams a window's values one by one into the reference
//! profile's histogram bins (or category counts), so a window larger than
//! memory can be scored and no raw value is kept. It reads the reference profiles of
//! [`revspend_core::profile`] and writes nothing; the stage that reads the
//! data windows and writes the report will sit on top of it.
//! [`performance`]: model metrics estimated (CBPE) and realised; [`value`]: their business value.
//! [`alarms`] checks `config/alarms.yaml` on each window; [`actions`] acts on what fired.

pub mod actions;
pub mod alarms;
pub mod drift;
pub mod performance;
pub mod value;
pub mod window;
