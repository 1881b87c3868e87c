//! The phase clock: how long each phase of a run took, and the CPU time and
//! fresh pages it used (logged at debug level: `RUST_LOG=debug`). Usage is
//! read with core's `/proc` reader.

use revspend_core::process::{self, Usage};

/// Logs how long each phase took (at debug level: `RUST_LOG=debug`).
pub(crate) struct Clock {
    started: std::time::Instant,
    last: std::time::Instant,
    last_usage: Option<Usage>,
}

impl Clock {
    pub(crate) fn new() -> Clock {
        let now = std::time::Instant::now();
        Clock {
            started: now,
            last: now,
            last_usage: usage(),
        }
    }

    pub(crate) fn lap(&mut self, phase: &str) {
        let now = std::time::Instant::now();
        let usage = usage();
        let used = match (&usage, &self.last_usage) {
            (Some(u), Some(l)) => format!(
                ", {:.2} s CPU ({:.2} s system), {:.0} MiB of fresh pages",
                u.cpu_seconds() - l.cpu_seconds(),
                u.system_seconds - l.system_seconds,
                (u.minor_faults - l.minor_faults) as f64 * 4096.0 / (1 << 20) as f64
            ),
            _ => String::new(),
        };
        log::debug!(
            "{phase}: {:.3} s{used} (total {:.3} s)",
            (now - self.last).as_secs_f64(),
            (now - self.started).as_secs_f64()
        );
        self.last = now;
        self.last_usage = usage;
    }
}

/// This process's usage so far, read only when debug logging is on (the
/// clock's laps are logged at that level alone).
fn usage() -> Option<Usage> {
    if !log::log_enabled!(log::Level::Debug) {
        return None;
    }
    process::usage()
}
