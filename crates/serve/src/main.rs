//! `serve` binary: reads flags and environment, then runs [`serve::run`].

use std::path::PathBuf;
use std::process::ExitCode;

/// A request allocates a few dozen small blocks (the JSON body's strings,
/// the parsed transaction, the response); glibc's malloc and free were 12 %
/// of the server's CPU time under load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;

/// Serves the revenge-spending model over HTTP: `POST /predict`, `POST
/// /predict/batch`, `GET /health/live`, `GET /health/ready`, `GET /version`.
///
/// The pseudonymisation key comes from REVSPEND_PSEUDONYM_KEY (the same key
/// build-features used for the snapshot); it is never logged. Without it the
/// server refuses to start unless --allow-development-key opts into the
/// public development key; a key whose fingerprint differs from the
/// snapshot's or the model's is refused too.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to listen on; port 0 picks a free port. The bound address is
    /// printed to stdout as `listening on http://ADDR`.
    #[arg(long, env = "REVSPEND_BIND", default_value = "127.0.0.1:8000")]
    bind: String,
    /// Model artifact written by `train` (used when no registry is given).
    #[arg(long, env = "REVSPEND_MODEL", default_value = "models/model.bin")]
    model: PathBuf,
    /// Model registry written by `train`; when set, the server loads the
    /// version `--alias` points to and `--model` is ignored.
    #[arg(long, env = "REVSPEND_REGISTRY")]
    registry: Option<PathBuf>,
    /// Registry alias to serve.
    #[arg(long, env = "REVSPEND_MODEL_ALIAS", default_value = revspend_core::registry::PRODUCTION)]
    alias: String,
    /// Online feature snapshot written by `build-features`; a missing file is
    /// a start-up error.
    #[arg(long, env = "REVSPEND_SNAPSHOT", default_value = "data/online/snapshot.bin")]
    snapshot: PathBuf,
    /// Run without a snapshot: every customer is a cold start (history
    /// features take their default values and responses say
    /// `"cold_start": true`). Wins over `--snapshot`, which the container
    /// image always sets through its environment.
    #[arg(long, env = "REVSPEND_NO_SNAPSHOT")]
    no_snapshot: bool,
    /// HTTP worker threads.
    #[arg(long, env = "REVSPEND_WORKERS", default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..))]
    workers: u16,
    /// Largest accepted request body, in bytes (larger bodies get 413).
    #[arg(long, env = "REVSPEND_MAX_BODY_BYTES", default_value_t = serve::DEFAULT_MAX_BODY_BYTES as u64,
          value_parser = clap::value_parser!(u64).range(1..=1 << 30))]
    max_body_bytes: u64,
    /// Milliseconds a request body may take to arrive after its head (then
    /// 408): a client that announces a body and stalls frees its
    /// connection.
    #[arg(long, env = "REVSPEND_BODY_TIMEOUT_MS", default_value_t = serve::DEFAULT_BODY_TIMEOUT.as_millis() as u64,
          value_parser = clap::value_parser!(u64).range(1..=600_000))]
    body_timeout_ms: u64,
    /// Seconds between checks of whether the registry alias moved or the
    /// snapshot file changed (then the server reloads without a restart),
    /// the fallback of the file watch; 0: no periodic check.
    #[arg(long, env = "REVSPEND_RELOAD_INTERVAL_SECS", default_value_t = 5,
          value_parser = clap::value_parser!(u64).range(0..=86_400))]
    reload_interval_secs: u64,
    /// Do not watch the registry and snapshot directories for changes
    /// (where file events are not delivered, the periodic check is what
    /// notices them anyway).
    #[arg(long, env = "REVSPEND_NO_FILE_WATCH")]
    no_file_watch: bool,
    /// Most rows in one `POST /predict/batch` (more get 413).
    #[arg(long, env = "REVSPEND_MAX_BATCH_ROWS", default_value_t = serve::DEFAULT_MAX_BATCH_ROWS as u64,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    max_batch_rows: u64,
    /// Largest accepted `POST /predict/batch` body, in bytes.
    #[arg(long, env = "REVSPEND_MAX_BATCH_BODY_BYTES", default_value_t = serve::DEFAULT_MAX_BATCH_BODY_BYTES as u64,
          value_parser = clap::value_parser!(u64).range(1..=1 << 30))]
    max_batch_body_bytes: u64,
    /// Use the public development pseudonymisation key when
    /// REVSPEND_PSEUDONYM_KEY is unset (generated data only; `make serve`
    /// and docker/compose.yaml set it for the default pipeline). A key in
    /// the environment is always used when set.
    #[arg(long, env = "REVSPEND_ALLOW_DEVELOPMENT_KEY")]
    allow_development_key: bool,
    /// Access-log one request in N as a JSON line (log target
    /// `serve::access`); every 5xx is logged whatever N is. 0 (the
    /// default): only the 5xx, so the log stays small at full load.
    #[arg(long, env = "REVSPEND_ACCESS_LOG_EVERY", default_value_t = 0)]
    access_log_every: u64,
    /// The routing file: the experiment's variants (registry aliases or
    /// versions) and policy (plain, ab, canary, shadow, bandit); see
    /// `config/routing.yaml`. Without it the followed alias answers
    /// everything. Checked at start and on every reload.
    #[arg(long, env = "REVSPEND_ROUTING")]
    routing: Option<PathBuf>,
    /// Directory of the bandits' persisted state (one file per experiment).
    #[arg(long, env = "REVSPEND_STATE_DIR", default_value = "logs/state")]
    state_dir: PathBuf,
    /// Directory of the prediction log (JSON lines by date and hour), which
    /// `monitor` and `registry experiment-report` read.
    #[arg(long, env = "REVSPEND_PREDICTION_LOG", default_value = "logs/predictions")]
    prediction_log: PathBuf,
    /// Log nothing (predictions and feedback are still served).
    #[arg(long, env = "REVSPEND_NO_PREDICTION_LOG")]
    no_prediction_log: bool,
    /// The prediction log's queue, in records; when full, records are
    /// dropped and counted, never waited for.
    #[arg(long, env = "REVSPEND_LOG_QUEUE", default_value_t = serve::DEFAULT_LOG_QUEUE as u64,
          value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    log_queue: u64,
    /// Size at which a prediction log file is closed and the next opened
    /// (files are also closed on the hour).
    #[arg(long, env = "REVSPEND_LOG_FILE_MAX_BYTES", default_value_t = serve::DEFAULT_LOG_FILE_MAX_BYTES,
          value_parser = clap::value_parser!(u64).range(4096..))]
    log_file_max_bytes: u64,
    /// The shadow queue, in rows; when full, shadow work is dropped and
    /// counted, never the request slowed.
    #[arg(long, env = "REVSPEND_SHADOW_QUEUE", default_value_t = serve::DEFAULT_SHADOW_QUEUE as u64,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    shadow_queue: u64,
    /// How many recent predictions can take feedback (older ones are
    /// refused as unknown); about 70 bytes of memory each.
    #[arg(long, env = "REVSPEND_FEEDBACK_CAPACITY", default_value_t = serve::DEFAULT_FEEDBACK_CAPACITY as u64,
          value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    feedback_capacity: u64,
    /// Hours of predictions read back from the log at start, so feedback
    /// that arrives after a restart still finds its prediction.
    #[arg(long, env = "REVSPEND_FEEDBACK_WINDOW_HOURS", default_value_t = serve::DEFAULT_FEEDBACK_WINDOW_HOURS,
          value_parser = clap::value_parser!(i64).range(0..=87_600))]
    feedback_window_hours: i64,
    /// The training profile (written by build-features) the drift gauges
    /// of `/metrics` compare the requests to, feature by feature
    /// (`revspend_feature_psi`). Without it, `data/profile/train.json` is
    /// used when it exists, else the gauges are off (the start-up log and
    /// `/version` say so); a path given here must exist.
    #[arg(long, env = "REVSPEND_DRIFT_PROFILE")]
    drift_profile: Option<PathBuf>,
    /// Turn the drift gauges off (wins over --drift-profile).
    #[arg(long, env = "REVSPEND_NO_DRIFT")]
    no_drift: bool,
    /// Seconds of requests the drift gauges look back over (a ring of ten
    /// buckets: the window slides a tenth of itself at a time).
    #[arg(long, env = "REVSPEND_DRIFT_WINDOW_SECS", default_value_t = serve::DEFAULT_DRIFT_WINDOW.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..=7 * 86_400))]
    drift_window_secs: u64,
}

impl Args {
    fn into_config(self) -> anyhow::Result<serve::Config> {
        // From the environment only: a flag would show in `ps`.
        let admin_token = match std::env::var("REVSPEND_ADMIN_TOKEN") {
            Ok(t) if !t.is_empty() => Some(serve::AdminToken::new(t)?),
            _ => None,
        };
        Ok(serve::Config {
            bind: self.bind,
            model: match self.registry {
                Some(dir) => serve::ModelSource::Registry {
                    dir,
                    alias: self.alias,
                },
                None => serve::ModelSource::File(self.model),
            },
            snapshot: (!self.no_snapshot).then_some(self.snapshot),
            workers: usize::from(self.workers),
            // Range-checked to at most 1 GiB above.
            max_body_bytes: usize::try_from(self.max_body_bytes).unwrap_or(usize::MAX),
            batch: serve::BatchLimits {
                // Range-checked above.
                max_rows: usize::try_from(self.max_batch_rows).unwrap_or(usize::MAX),
                max_body_bytes: usize::try_from(self.max_batch_body_bytes).unwrap_or(usize::MAX),
            },
            body_timeout: std::time::Duration::from_millis(self.body_timeout_ms),
            admin_token,
            reload_interval: (self.reload_interval_secs > 0)
                .then(|| std::time::Duration::from_secs(self.reload_interval_secs)),
            file_watch: !self.no_file_watch,
            allow_development_key: self.allow_development_key,
            access_log_every: self.access_log_every,
            routing: self.routing,
            state_dir: Some(self.state_dir),
            prediction_log: (!self.no_prediction_log).then_some(self.prediction_log),
            // Range-checked above.
            log_queue: usize::try_from(self.log_queue).unwrap_or(usize::MAX),
            log_file_max_bytes: self.log_file_max_bytes,
            shadow_queue: usize::try_from(self.shadow_queue).unwrap_or(usize::MAX),
            feedback_capacity: usize::try_from(self.feedback_capacity).unwrap_or(usize::MAX),
            feedback_window_hours: self.feedback_window_hours,
            drift_profile: match (self.no_drift, self.drift_profile) {
                (true, _) => None,
                (false, Some(path)) => Some(path),
                (false, None) => Some(PathBuf::from(serve::DEFAULT_DRIFT_PROFILE)).filter(|p| p.is_file()),
            },
            drift_window: std::time::Duration::from_secs(self.drift_window_secs),
        })
    }
}

#[actix_web::main]
async fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let config = match Args::parse().into_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    match serve::run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
