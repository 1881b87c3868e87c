//! The phase clock: how long each phase of a run took, and the CPU time and
//! fresh pages it used (logged at debug level).

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
                u.cpu - l.cpu,
                u.system - l.system,
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

/// CPU time and page faults of this process so far.
pub(crate) struct Usage {
    /// User + system seconds.
    cpu: f64,
    system: f64,
    /// Minor page faults: pages touched for the first time (4 KiB each),
    /// which are slow on virtual machines that hand memory out lazily.
    minor_faults: u64,
}

/// Read from `/proc/self/stat` (Linux; `None` elsewhere, and unless debug
/// logging is on). Times are in clock ticks of 1/100 s.
pub(crate) fn usage() -> Option<Usage> {
    if !log::log_enabled!(log::Level::Debug) {
        return None;
    }
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name: minflt is the 10th field
    // of the whole line, utime and stime the 14th and 15th.
    let fields: Vec<&str> = stat[stat.rfind(')')? + 2..].split(' ').collect();
    let number = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    let (minor_faults, utime, stime) = (number(7)?, number(11)?, number(12)?);
    Some(Usage {
        cpu: (utime + stime) as f64 / 100.0,
        system: stime as f64 / 100.0,
        minor_faults,
    })
}
