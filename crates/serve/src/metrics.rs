//! `GET /metrics` in the Prometheus (OpenMetrics) text format, with the
//! official client (`prometheus-client`): requests and latency per route,
//! method and status; predictions and decisions per model version; cold
//! starts; the probability histogram (overall and per variant); batch
//! sizes; reloads (swapped and refused) and the served model's load time;
//! the live drift gauges ([`crate::drift`]); and the standard
//! `process_cpu_seconds_total` and `process_resident_memory_bytes` (Linux),
//! read at scrape time, so serving CPU per prediction is the difference of
//! two scrapes. Route labels are the route patterns
//! (`/v2/models/{name}/infer`), never raw paths, so a client cannot grow the
//! label set.

use std::time::{SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets, linear_buckets};
use prometheus_client::registry::Registry;

use crate::Prediction;
use crate::experiment::Deployment;
use crate::experiment::shadow::ShadowCounters;
use crate::prediction_log::LogCounters;

// Route and method labels are interned `&'static str`s (see [`route_label`]):
// counting a request allocates nothing.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    method: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LatencyLabels {
    route: &'static str,
    method: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    variant: String,
    model_version: String,
    decision: &'static str,
}

/// The counters of one variant and model version's decisions (flagged, not
/// flagged) and the variant's probability histogram, looked up once per
/// variant and model rather than once per prediction.
type DecisionCounters = (String, String, Counter, Counter, Histogram);

// Variant names are interned too ([`label`]): they come from the routing
// file, a small set, and a request's observation allocates nothing.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VariantLabels {
    variant: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FeedbackLabels {
    variant: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

/// The label of a route pattern, interned: patterns come from the route
/// table (never a raw path), so the set is small and bounded.
pub fn route_label(pattern: &str) -> &'static str {
    label(pattern)
}

/// A label value from a small, bounded set (route patterns, variant
/// names), interned: looked up without allocating, leaked once.
fn label(pattern: &str) -> &'static str {
    static INTERNED: std::sync::RwLock<Vec<&'static str>> = std::sync::RwLock::new(Vec::new());
    if let Ok(known) = INTERNED.read()
        && let Some(label) = known.iter().find(|l| **l == pattern)
    {
        return label;
    }
    let Ok(mut known) = INTERNED.write() else {
        return "unlabelled";
    };
    if let Some(label) = known.iter().find(|l| **l == pattern) {
        return label;
    }
    let label: &'static str = Box::leak(pattern.to_owned().into_boxed_str());
    known.push(label);
    label
}

/// The label of an HTTP method: the standard ones, else `other` (a client
/// cannot grow the label set with made-up methods).
pub fn method_label(method: &actix_web::http::Method) -> &'static str {
    use actix_web::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::HEAD => "HEAD",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "other",
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

/// The server's metrics, registered once.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<LatencyLabels, Histogram>,
    predictions: Family<DecisionLabels, Counter>,
    cold_starts: Counter,
    probability: Histogram,
    variant_probability: Family<VariantLabels, Histogram>,
    batch_rows: Histogram,
    reloads: Family<OutcomeLabels, Counter>,
    model_loaded: Gauge,
    decisions: std::sync::RwLock<Vec<DecisionCounters>>,
    variant_latency: Family<VariantLabels, Histogram>,
    feedback: Family<FeedbackLabels, Counter>,
    bandit_pulls: Family<VariantLabels, Gauge>,
    bandit_mean: Family<VariantLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    pending: Gauge,
    log: LogCounters,
    shadow: ShadowCounters,
    /// The metrics named by Prometheus' conventions rather than ours
    /// (`process_*`): a registry without the `revspend` prefix.
    process: Registry,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("revspend");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by route pattern, method and status",
            requests.clone(),
        );
        // 50 µs to about 1.6 s.
        let latency = Family::<LatencyLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
        });
        registry.register(
            "http_request_duration_seconds",
            "Time from the request head to the response, by route pattern and method",
            latency.clone(),
        );
        let predictions = Family::<DecisionLabels, Counter>::default();
        registry.register(
            "predictions",
            "Predictions by variant, model version and decision (flagged or not)",
            predictions.clone(),
        );
        let cold_starts = Counter::default();
        registry.register(
            "cold_starts",
            "Predictions for customers unknown to the online snapshot",
            cold_starts.clone(),
        );
        let probability = Histogram::new(linear_buckets(0.05, 0.05, 19));
        registry.register(
            "prediction_probability",
            "Calibrated probabilities returned",
            probability.clone(),
        );
        let variant_probability = Family::<VariantLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(linear_buckets(0.05, 0.05, 19))
        });
        registry.register(
            "variant_prediction_probability",
            "Calibrated probabilities returned, by the variant that answered (the score \
             distribution each variant serves)",
            variant_probability.clone(),
        );
        let batch_rows = Histogram::new(exponential_buckets(1.0, 4.0, 9));
        registry.register(
            "batch_rows",
            "Rows per request on the batch routes (/predict/batch, /invocations, /v2 infer)",
            batch_rows.clone(),
        );
        let reloads = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "model_reloads",
            "Model reloads by outcome (swapped or refused)",
            reloads.clone(),
        );
        let model_loaded = Gauge::default();
        registry.register(
            "model_loaded_timestamp_seconds",
            "When the serving model was loaded (Unix time; its age is time() minus this)",
            model_loaded.clone(),
        );
        model_loaded.set(now_secs());
        // 20 µs to about 0.6 s.
        let variant_latency = Family::<VariantLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.000_02, 2.0, 16))
        });
        registry.register(
            "variant_prediction_duration_seconds",
            "Time from the request head to its predictions, by the variant that answered \
             (one observation per request and variant)",
            variant_latency.clone(),
        );
        let feedback = Family::<FeedbackLabels, Counter>::default();
        registry.register(
            "feedback",
            "Feedback by variant and result (accepted, unknown, duplicate, invalid)",
            feedback.clone(),
        );
        let bandit_pulls = Family::<VariantLabels, Gauge>::default();
        registry.register(
            "bandit_pulls",
            "Requests the bandit sent to each variant in this experiment (its allocation)",
            bandit_pulls.clone(),
        );
        let bandit_mean = Family::<VariantLabels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        registry.register(
            "bandit_posterior_mean_reward",
            "Each variant's posterior mean reward, Beta(1 + rewards, 1 + feedbacks - rewards)",
            bandit_mean.clone(),
        );
        let pending = Gauge::default();
        registry.register(
            "feedback_pending_predictions",
            "Recent predictions that can take feedback",
            pending.clone(),
        );
        // The log's counters are the family's own (a counter clone shares
        // its value).
        let records = Family::<KindLabels, Counter>::default();
        let kind = |kind| records.get_or_create(&KindLabels { kind }).clone();
        let log = LogCounters {
            predictions: kind("prediction"),
            shadows: kind("shadow"),
            feedbacks: kind("feedback"),
            ..LogCounters::default()
        };
        registry.register(
            "prediction_log_records",
            "Records written to the prediction log, by kind",
            records,
        );
        registry.register(
            "prediction_log_dropped",
            "Records dropped because the prediction log's queue was full",
            log.dropped.clone(),
        );
        registry.register(
            "prediction_log_write_errors",
            "Records the prediction log failed to write",
            log.errors.clone(),
        );
        registry.register(
            "prediction_log_queue_depth",
            "Records waiting in the prediction log's queue",
            log.depth.clone(),
        );
        let shadow = ShadowCounters::default();
        registry.register(
            "shadow_queue_depth",
            "Rows waiting for the shadow models",
            shadow.depth.clone(),
        );
        registry.register(
            "shadow_dropped",
            "Shadow rows dropped because the shadow queue was full",
            shadow.dropped.clone(),
        );
        registry.register(
            "shadow_scored",
            "Rows scored by a shadow model",
            shadow.scored.clone(),
        );
        registry.register(
            "shadow_failed",
            "Rows a shadow model could not score",
            shadow.failed.clone(),
        );
        let mut process = Registry::default();
        if cfg!(target_os = "linux") {
            process.register_collector(Box::new(ProcessCollector));
        }
        Metrics {
            registry,
            requests,
            latency,
            predictions,
            cold_starts,
            probability,
            variant_probability,
            batch_rows,
            reloads,
            model_loaded,
            decisions: std::sync::RwLock::new(Vec::new()),
            variant_latency,
            feedback,
            bandit_pulls,
            bandit_mean,
            pending,
            log,
            shadow,
            process,
        }
    }

    /// Exports the drift gauges of `window`, computed at each scrape.
    pub fn register_drift(&mut self, window: std::sync::Arc<crate::drift::DriftWindow>) {
        self.registry
            .register_collector(Box::new(crate::drift::DriftGauges(window)));
    }

    /// The prediction log's counters, registered here.
    pub fn log_counters(&self) -> LogCounters {
        self.log.clone()
    }

    /// The shadow queue's counters, registered here.
    pub fn shadow_counters(&self) -> ShadowCounters {
        self.shadow.clone()
    }

    /// One request's predictions by one variant, `seconds` after its head.
    pub fn variant_latency(&self, variant: &str, seconds: f64) {
        self.variant_latency
            .get_or_create(&VariantLabels {
                variant: label(variant),
            })
            .observe(seconds);
    }

    /// One feedback's result.
    pub fn feedback(&self, variant: &str, result: &'static str) {
        self.feedback
            .get_or_create(&FeedbackLabels {
                variant: label(variant),
                result,
            })
            .inc();
    }

    /// Refreshes the gauges read from the deployment (before encoding).
    pub fn experiment(&self, deployment: &Deployment, pending: usize) {
        self.pending.set(i64::try_from(pending).unwrap_or(i64::MAX));
        if let Some(bandit) = &deployment.bandit {
            for arm in bandit.state().arms {
                let labels = VariantLabels {
                    variant: label(&arm.variant),
                };
                let (alpha, beta) = arm.beta_posterior();
                self.bandit_pulls
                    .get_or_create(&labels)
                    .set(i64::try_from(arm.pulls).unwrap_or(i64::MAX));
                self.bandit_mean
                    .get_or_create(&labels)
                    .set(alpha / (alpha + beta));
            }
        }
    }

    /// One finished request (labels from [`route_label`] and
    /// [`method_label`]).
    pub fn request(&self, route: &'static str, method: &'static str, status: u16, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels {
                route,
                method,
                status,
            })
            .inc();
        self.latency
            .get_or_create(&LatencyLabels { route, method })
            .observe(seconds);
    }

    /// The decision counters of `variant` serving `model_version`.
    fn decision_counters(&self, variant: &str, model_version: &str) -> (Counter, Counter, Histogram) {
        if let Ok(cached) = self.decisions.read()
            && let Some((_, _, flagged, not_flagged, probability)) = cached
                .iter()
                .find(|(v, m, _, _, _)| v == variant && m == model_version)
        {
            return (flagged.clone(), not_flagged.clone(), probability.clone());
        }
        let counter = |decision| {
            self.predictions
                .get_or_create(&DecisionLabels {
                    variant: variant.to_owned(),
                    model_version: model_version.to_owned(),
                    decision,
                })
                .clone()
        };
        let (flagged, not_flagged) = (counter("flagged"), counter("not_flagged"));
        let probability = self
            .variant_probability
            .get_or_create(&VariantLabels {
                variant: label(variant),
            })
            .clone();
        if let Ok(mut cached) = self.decisions.write() {
            // Variants and models change rarely; a bound keeps a long-lived
            // server's cache small across many reloads.
            if cached.len() >= 64 {
                cached.clear();
            }
            cached.push((
                variant.to_owned(),
                model_version.to_owned(),
                flagged.clone(),
                not_flagged.clone(),
                probability.clone(),
            ));
        }
        (flagged, not_flagged, probability)
    }

    /// Predictions returned (one request's).
    pub fn predictions(&self, predictions: &[Prediction]) {
        let mut counters: Option<(&str, &str, (Counter, Counter, Histogram))> = None;
        for p in predictions {
            let (flagged, not_flagged, variant_probability) = match &counters {
                Some((variant, version, c)) if *variant == p.variant && *version == p.model_version => c,
                _ => {
                    let c = self.decision_counters(&p.variant, &p.model_version);
                    &counters
                        .insert((p.variant.as_str(), p.model_version.as_str(), c))
                        .2
                }
            };
            if p.is_revenge_spending {
                flagged.inc();
            } else {
                not_flagged.inc();
            }
            if p.cold_start {
                self.cold_starts.inc();
            }
            self.probability.observe(p.probability);
            variant_probability.observe(p.probability);
        }
    }

    /// The rows of one batch request.
    pub fn batch(&self, rows: usize) {
        self.batch_rows.observe(rows as f64);
    }

    /// A reload's outcome; a swap also restarts the model's age.
    pub fn reload(&self, swapped: bool) {
        let outcome = if swapped { "swapped" } else { "refused" };
        self.reloads
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_owned(),
            })
            .inc();
        if swapped {
            self.model_loaded.set(now_secs());
        }
    }

    /// The text exposition.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        use prometheus_client::encoding::text;
        let mut out = String::with_capacity(8 * 1024);
        text::encode_registry(&mut out, &self.registry)?;
        text::encode_registry(&mut out, &self.process)?;
        text::encode_eof(&mut out)?;
        Ok(out)
    }
}

/// `process_cpu_seconds_total` and `process_resident_memory_bytes`, read
/// from `/proc/self` at each scrape (as Prometheus' own clients export
/// them); a value that cannot be read is left out.
#[derive(Debug)]
struct ProcessCollector;

impl prometheus_client::collector::Collector for ProcessCollector {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder,
    ) -> Result<(), std::fmt::Error> {
        use prometheus_client::encoding::EncodeMetric;
        use prometheus_client::metrics::counter::ConstCounter;
        use prometheus_client::metrics::gauge::ConstGauge;
        if let Some(usage) = revspend_core::process::usage() {
            let counter = ConstCounter::new(usage.cpu_seconds());
            counter.encode(encoder.encode_descriptor(
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds",
                None,
                counter.metric_type(),
            )?)?;
        }
        if let Some(bytes) = revspend_core::process::rss_bytes() {
            let gauge = ConstGauge::new(bytes);
            gauge.encode(encoder.encode_descriptor(
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                None,
                gauge.metric_type(),
            )?)?;
        }
        Ok(())
    }
}
