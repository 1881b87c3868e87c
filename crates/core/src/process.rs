//! What this process has used so far, read from `/proc/self` (Linux; every
//! reader returns `None` elsewhere or when the file cannot be read): CPU
//! time and minor page faults from `stat`, peak and current resident
//! memory from `status`. The one `/proc` reader of the workspace: build-features' phase
//! clock, train's run report and the server's process metrics use it.

/// CPU time and page faults of this process so far.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Usage {
    /// User-mode CPU seconds, over every thread.
    pub user_seconds: f64,
    /// Kernel-mode CPU seconds, over every thread.
    pub system_seconds: f64,
    /// Minor page faults: pages touched for the first time (4 KiB each),
    /// which are slow on virtual machines that hand memory out lazily.
    pub minor_faults: u64,
}

impl Usage {
    /// User + system seconds.
    pub fn cpu_seconds(&self) -> f64 {
        self.user_seconds + self.system_seconds
    }
}

/// Clock ticks per second of `utime`/`stime` in `/proc/self/stat`
/// (`USER_HZ`, 100 on every Linux ABI this runs on).
const TICKS_PER_SECOND: f64 = 100.0;

/// CPU time and minor faults so far, from `/proc/self/stat`.
pub fn usage() -> Option<Usage> {
    parse_stat(&std::fs::read_to_string("/proc/self/stat").ok()?)
}

/// Peak resident set size (`VmHWM`) in MiB, from `/proc/self/status`.
pub fn peak_rss_mb() -> Option<f64> {
    parse_peak_rss_mb(&std::fs::read_to_string("/proc/self/status").ok()?)
}

/// Resident set size now (`VmRSS`) in bytes, from `/proc/self/status`: the
/// server's `process_resident_memory_bytes`.
pub fn rss_bytes() -> Option<u64> {
    parse_rss_bytes(&std::fs::read_to_string("/proc/self/status").ok()?)
}

fn parse_rss_bytes(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn parse_stat(stat: &str) -> Option<Usage> {
    // Fields after the parenthesised command name (which may hold spaces):
    // minflt is the 10th field of the whole line, utime and stime the 14th
    // and 15th.
    let fields: Vec<&str> = stat.get(stat.rfind(')')? + 2..)?.split(' ').collect();
    let number = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    let (minor_faults, utime, stime) = (number(7)?, number(11)?, number(12)?);
    Some(Usage {
        user_seconds: utime as f64 / TICKS_PER_SECOND,
        system_seconds: stime as f64 / TICKS_PER_SECOND,
        minor_faults,
    })
}

fn parse_peak_rss_mb(status: &str) -> Option<f64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_read_after_the_command_name() {
        let stat = "4242 (a (b) c) R 1 4242 4242 0 -1 4194304 1500 0 0 0 250 30 0 0 20 0 3 0 100";
        let u = parse_stat(stat).expect("parses");
        assert_eq!(u.minor_faults, 1500);
        assert!((u.user_seconds - 2.5).abs() < 1e-12);
        assert!((u.system_seconds - 0.3).abs() < 1e-12);
        assert!((u.cpu_seconds() - 2.8).abs() < 1e-12);
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn peak_rss_is_vm_hwm_in_mib() {
        let status = "Name:\tx\nVmPeak:\t  9000 kB\nVmHWM:\t    2048 kB\nVmRSS:\t 1024 kB\n";
        assert_eq!(parse_peak_rss_mb(status), Some(2.0));
        assert_eq!(parse_peak_rss_mb("Name:\tx\n"), None);
        assert_eq!(parse_rss_bytes(status), Some(1024 * 1024));
        assert_eq!(parse_rss_bytes("Name:\tx\n"), None);
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn this_process_can_be_read() {
        assert!(usage().is_some());
        assert!(peak_rss_mb().is_some_and(|mb| mb > 0.0));
    }
}
