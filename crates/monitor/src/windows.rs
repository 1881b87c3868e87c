//! Windows: the calendar periods the feature layer is cut into, and which
//! of them a run monitors.

use chrono::{Datelike, Days, Months, NaiveDate};
use revspend_core::params::Period;
use serde::Serialize;

/// One window's identity: its key (`2020-07`, `2020-W27`, `2020-07-03`) and
/// the calendar days it spans.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct WindowKey {
    pub start: NaiveDate,
    pub end: NaiveDate,
    pub key: String,
}

/// The window of `period` that holds `date`.
pub fn window_of(period: Period, date: NaiveDate) -> WindowKey {
    match period {
        Period::Day => WindowKey {
            start: date,
            end: date,
            key: date.format("%Y-%m-%d").to_string(),
        },
        Period::Week => {
            let start = date - Days::new(u64::from(date.weekday().num_days_from_monday()));
            let week = date.iso_week();
            WindowKey {
                start,
                end: start + Days::new(6),
                key: format!("{}-W{:02}", week.year(), week.week()),
            }
        }
        Period::Month => {
            let start = date.with_day(1).unwrap_or(date);
            let end = start
                .checked_add_months(Months::new(1))
                .and_then(|d| d.pred_opt())
                .unwrap_or(start);
            WindowKey {
                start,
                end,
                key: start.format("%Y-%m").to_string(),
            }
        }
    }
}

/// The days a run monitors, and why those.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Selection {
    /// First day monitored (`None`: from the layer's first row).
    pub from: Option<NaiveDate>,
    /// Last day monitored (`None`: to the layer's last row).
    pub to: Option<NaiveDate>,
    /// Keep only the last this many windows of what was read.
    pub last: Option<usize>,
    pub reason: String,
}

/// Chooses the days to monitor: explicit `from`/`to` (flags first, then
/// params); else the days after the training period's end when the layer
/// holds any; else the last `last` windows.
pub fn select(
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
    last: usize,
    training_end: Option<NaiveDate>,
    data_last_day: Option<NaiveDate>,
) -> Selection {
    if from.is_some() || to.is_some() {
        return Selection {
            from,
            to,
            last: None,
            reason: "the date range given".into(),
        };
    }
    if let (Some(end), Some(last_day)) = (training_end, data_last_day)
        && let Some(next) = end.succ_opt()
        && next <= last_day
    {
        return Selection {
            from: Some(next),
            to: None,
            last: None,
            reason: format!("the days after the training period, which ends on {end}"),
        };
    }
    Selection {
        from: None,
        to: None,
        last: Some(last),
        reason: format!(
            "the last {last} windows: the training period covers the whole feature layer, so these windows \
             are in-sample and check the reference against itself"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).expect("date")
    }

    #[test]
    fn windows_of_each_period() {
        let w = window_of(Period::Month, d(2020, 2, 17));
        assert_eq!(
            (w.key.as_str(), w.start, w.end),
            ("2020-02", d(2020, 2, 1), d(2020, 2, 29))
        );
        let w = window_of(Period::Week, d(2020, 7, 1));
        assert_eq!(
            (w.key.as_str(), w.start, w.end),
            ("2020-W27", d(2020, 6, 29), d(2020, 7, 5))
        );
        // ISO week of a late-December day belongs to the next year.
        assert_eq!(window_of(Period::Week, d(2019, 12, 30)).key, "2020-W01");
        let w = window_of(Period::Day, d(2020, 7, 3));
        assert_eq!(
            (w.key.as_str(), w.start, w.end),
            ("2020-07-03", d(2020, 7, 3), d(2020, 7, 3))
        );
    }

    #[test]
    fn selection_prefers_flags_then_the_days_after_training_then_the_last_windows() {
        let s = select(
            Some(d(2020, 3, 1)),
            None,
            6,
            Some(d(2020, 6, 30)),
            Some(d(2020, 7, 28)),
        );
        assert_eq!((s.from, s.to, s.last), (Some(d(2020, 3, 1)), None, None));
        let s = select(None, None, 6, Some(d(2020, 6, 30)), Some(d(2020, 7, 28)));
        assert_eq!((s.from, s.last), (Some(d(2020, 7, 1)), None));
        // Training covers every row: the last windows, in-sample.
        let s = select(None, None, 6, Some(d(2020, 6, 28)), Some(d(2020, 6, 28)));
        assert_eq!((s.from, s.last), (None, Some(6)));
        let s = select(None, None, 3, None, Some(d(2020, 6, 28)));
        assert_eq!(s.last, Some(3));
    }
}
