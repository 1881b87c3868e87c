//! `GET /metrics` in the Prometheus (OpenMetrics) text format, with the
//! official client (`prometheus-client`): requests and latency per route,
//! method and status; predictions and decisions per model version; cold
//! starts; the probability histogram; batch sizes; reloads (swapped and
//! refused) and the served model's load time. Route labels are the route
//! patterns (`/v2/models/{name}/infer`), never raw paths, so a client cannot
//! grow the label set.

use std::time::{SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets, linear_buckets};
use prometheus_client::registry::Registry;

use crate::Prediction;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LatencyLabels {
    route: String,
    method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    model_version: String,
    decision: String,
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
    batch_rows: Histogram,
    reloads: Family<OutcomeLabels, Counter>,
    model_loaded: Gauge,
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
            "Predictions by model version and decision (flagged or not)",
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
        Metrics {
            registry,
            requests,
            latency,
            predictions,
            cold_starts,
            probability,
            batch_rows,
            reloads,
            model_loaded,
        }
    }

    /// One finished request.
    pub fn request(&self, route: &str, method: &str, status: u16, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels {
                route: route.to_owned(),
                method: method.to_owned(),
                status,
            })
            .inc();
        self.latency
            .get_or_create(&LatencyLabels {
                route: route.to_owned(),
                method: method.to_owned(),
            })
            .observe(seconds);
    }

    /// Predictions returned (one request's).
    pub fn predictions(&self, predictions: &[Prediction]) {
        for p in predictions {
            self.predictions
                .get_or_create(&DecisionLabels {
                    model_version: p.model_version.clone(),
                    decision: if p.is_revenge_spending {
                        "flagged"
                    } else {
                        "not_flagged"
                    }
                    .to_owned(),
                })
                .inc();
            if p.cold_start {
                self.cold_starts.inc();
            }
            self.probability.observe(p.probability);
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
        let mut out = String::with_capacity(8 * 1024);
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}
