//! The training period: where it ends (`build_features.split.until`,
//! moved later by the monitor's retrain request), and what the report says
//! about it. Rows dated after the end are live traffic: in the layers and
//! the online snapshot, in no split.

use chrono::NaiveDate;
use revspend_core::artifact::RetrainRequest;
use serde::Serialize;

/// Where the training period's end came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PeriodSource {
    /// `build_features.split.until` (null: every row).
    Params,
    /// The retrain request's `until`, later than the params'.
    RetrainRequest,
}

/// The retrain request the run read, as the report records it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RequestReport {
    pub until: NaiveDate,
    pub alarm: String,
    pub window: String,
    pub reason: String,
    pub requested_at: String,
    pub requested_by: String,
    /// Whether it moved the period's end: false when `split.until` is null
    /// (every row is already in) or not earlier than the request's `until`.
    pub applied: bool,
}

/// The training period of a run (`training_period` in
/// `reports/build_features.json`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrainingPeriod {
    /// The period's last day; `None`: every row is in it.
    pub until: Option<NaiveDate>,
    pub source: PeriodSource,
    /// `build_features.split.until` as params set it.
    pub params_until: Option<NaiveDate>,
    /// The retrain request read, if the file held one.
    pub request: Option<RequestReport>,
    /// Feature-layer rows dated after `until` (the live period, in no
    /// split); filled in once the splits are assigned.
    pub live_rows: u64,
}

impl TrainingPeriod {
    /// The effective period: the later of `params_until` and the request's
    /// `until`. With `params_until` null every row is already in, and a
    /// request changes nothing (it is recorded as not applied).
    pub fn resolve(params_until: Option<NaiveDate>, request: Option<&RetrainRequest>) -> TrainingPeriod {
        let (until, source) = match (params_until, request) {
            (Some(p), Some(r)) if r.until > p => (Some(r.until), PeriodSource::RetrainRequest),
            _ => (params_until, PeriodSource::Params),
        };
        TrainingPeriod {
            until,
            source,
            params_until,
            request: request.map(|r| RequestReport {
                until: r.until,
                alarm: r.alarm.clone(),
                window: r.window.clone(),
                reason: r.reason.clone(),
                requested_at: r.requested_at.clone(),
                requested_by: r.requested_by.clone(),
                applied: source == PeriodSource::RetrainRequest,
            }),
            live_rows: 0,
        }
    }

    /// Whether the report needs to say anything: not for the default run
    /// (no end, no request), whose report stays as it was before periods
    /// existed (and so does the feature list, which records its hash).
    pub fn is_default(&self) -> bool {
        self.until.is_none() && self.request.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2020, 5, d).expect("date")
    }

    fn request(until: NaiveDate) -> RetrainRequest {
        RetrainRequest {
            until,
            alarm: "dataset_drift".into(),
            window: "2020-05".into(),
            reason: "drift share 0.6 >= 0.5".into(),
            requested_at: "2020-06-01T00:00:00Z".into(),
            requested_by: "monitor".into(),
        }
    }

    #[test]
    fn a_later_request_extends_the_period() {
        let p = TrainingPeriod::resolve(Some(day(10)), Some(&request(day(20))));
        assert_eq!(p.until, Some(day(20)));
        assert_eq!(p.source, PeriodSource::RetrainRequest);
        assert_eq!(p.params_until, Some(day(10)));
        let r = p.request.expect("recorded");
        assert!(r.applied);
        assert_eq!(
            (r.alarm.as_str(), r.window.as_str()),
            ("dataset_drift", "2020-05")
        );
    }

    #[test]
    fn an_earlier_or_equal_request_never_shortens_it() {
        for until in [day(5), day(10)] {
            let p = TrainingPeriod::resolve(Some(day(10)), Some(&request(until)));
            assert_eq!(p.until, Some(day(10)));
            assert_eq!(p.source, PeriodSource::Params);
            assert!(!p.request.expect("recorded").applied);
        }
    }

    #[test]
    fn with_null_params_a_request_changes_nothing() {
        let p = TrainingPeriod::resolve(None, Some(&request(day(20))));
        assert_eq!(p.until, None);
        assert_eq!(p.source, PeriodSource::Params);
        assert!(!p.request.as_ref().expect("recorded").applied);
        assert!(!p.is_default(), "the ignored request is reported");
        assert!(TrainingPeriod::resolve(None, None).is_default());
        assert!(!TrainingPeriod::resolve(Some(day(1)), None).is_default());
    }
}
