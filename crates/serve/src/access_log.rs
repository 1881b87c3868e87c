//! The access log: one structured line (JSON, log target `serve::access`)
//! per logged request, cheap by design. A line per request at tens of
//! thousands of requests a second is gigabytes an hour and a lock on stderr
//! in every request, so by default only server errors (5xx) are logged;
//! `--access-log-every N` (`REVSPEND_ACCESS_LOG_EVERY`) adds one request in
//! N of the others, counted, not random, so a rate is exact. The
//! Prometheus metrics count every request whatever is logged. Where the
//! lines go is the logger's business (stderr; the container's log driver
//! rotates them, see docker/compose.yaml).

use std::sync::atomic::{AtomicU64, Ordering};

/// Which requests are logged, and the count that samples them.
#[derive(Debug, Default)]
pub struct AccessLog {
    /// One request in `every` (besides every 5xx); 0 logs none of them.
    every: u64,
    seen: AtomicU64,
}

/// One finished request, as logged.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub method: &'a str,
    /// The path, without the query string (which a client fills at will).
    pub path: &'a str,
    pub route: &'a str,
    pub status: u16,
    pub seconds: f64,
}

impl AccessLog {
    pub fn new(every: u64) -> AccessLog {
        AccessLog {
            every,
            seen: AtomicU64::new(0),
        }
    }

    /// Whether a request with `status` is logged: every 5xx, and one in
    /// `every` of the others.
    fn sampled(&self, status: u16) -> bool {
        if status >= 500 {
            return true;
        }
        self.every > 0
            && self
                .seen
                .fetch_add(1, Ordering::Relaxed)
                .is_multiple_of(self.every)
    }

    /// Logs `request` if it is sampled.
    pub fn record(&self, request: Request<'_>) {
        if !self.sampled(request.status) || !log::log_enabled!(target: "serve::access", log::Level::Info) {
            return;
        }
        let line = serde_json::json!({
            "method": request.method,
            "path": request.path,
            "route": request.route,
            "status": request.status,
            "duration_ms": (request.seconds * 1e6).round() / 1e3,
            "sampled_one_in": self.every,
        });
        log::info!(target: "serve::access", "{line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_errors_are_always_logged_and_the_rest_one_in_every() {
        let off = AccessLog::new(0);
        assert!((0..1000).all(|_| !off.sampled(200)));
        assert!(off.sampled(500) && off.sampled(503));
        let tenth = AccessLog::new(10);
        let logged = (0..1000).filter(|_| tenth.sampled(404)).count();
        assert_eq!(logged, 100);
        let all = AccessLog::new(1);
        assert!((0..100).all(|_| all.sampled(200)));
    }
}
