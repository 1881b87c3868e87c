//! The report as text: a two-line header, then one aligned table per
//! section; and the warnings the command prints to stderr.

use std::fmt::Write;

use super::{ExperimentReport, VariantReport};

/// What the reader should be warned of: bad lines with the first examples,
/// records with an unreadable time.
pub fn warnings(report: &ExperimentReport) -> Vec<String> {
    let r = &report.reading;
    let mut out = Vec::new();
    if r.bad_lines > 0 {
        out.push(format!(
            "{} bad line(s) in the prediction log, not read; the first: {}",
            r.bad_lines,
            r.bad_examples.join("; ")
        ));
    }
    if r.bad_times > 0 {
        out.push(format!(
            "{} record(s) with a time that is not RFC 3339, not used",
            r.bad_times
        ));
    }
    out
}

/// A number with `digits` decimals, `-` for none.
fn num(x: Option<f64>, digits: usize) -> String {
    x.map_or_else(|| "-".into(), |x| format!("{x:.digits$}"))
}

/// A p-value: four decimals, or scientific below 0.0001.
fn p_text(p: Option<f64>) -> String {
    match p {
        Some(p) if p < 1e-4 => format!("{p:.1e}"),
        p => num(p, 4),
    }
}

/// The report as text: a header, then one aligned table per section.
pub fn render(report: &ExperimentReport) -> String {
    let table = crate::table;
    let r = &report.reading;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "experiment {} ({}), log {}, window {} .. {}",
        report.experiment,
        report.experiment_from,
        report.log_dir,
        report.from.as_deref().unwrap_or("start"),
        report.until.as_deref().unwrap_or("end"),
    );
    let others: Vec<String> = r
        .other_experiments
        .iter()
        .map(|(e, n)| format!("{e}: {n}"))
        .collect();
    let _ = writeln!(
        out,
        "read {} file(s), {} record(s); ignored {} of other experiments{}, {} outside the window; \
         {} bad line(s), {} unfinished line(s)",
        r.files,
        r.records,
        r.other_records(),
        if others.is_empty() {
            String::new()
        } else {
            format!(" ({})", others.join(", "))
        },
        r.outside_window,
        r.bad_lines,
        r.unfinished_lines,
    );

    // A variant that only scored as a shadow has nothing to show in the
    // traffic, outcome and reward tables but dashes: it gets its own.
    let primary: Vec<&VariantReport> = report
        .variants
        .iter()
        .filter(|v| v.requests > 0 || v.feedback.count > 0 || v.shadow.is_none())
        .collect();
    out.push_str("\ntraffic\n");
    let rows: Vec<Vec<String>> = primary
        .iter()
        .map(|v| {
            vec![
                v.variant.clone(),
                v.requests.to_string(),
                num(v.request_share, 3),
                num(v.decision_rate, 3),
                num(v.mean_probability, 3),
                num(v.cold_start_share, 3),
            ]
        })
        .collect();
    out.push_str(&table(
        &[
            "variant",
            "requests",
            "share",
            "decision_rate",
            "mean_prob",
            "cold_start",
        ],
        &rows,
    ));

    out.push_str("\noutcomes (feedback decision vs outcome)\n");
    let rows: Vec<Vec<String>> = primary
        .iter()
        .map(|v| {
            let f = &v.feedback;
            vec![
                v.variant.clone(),
                f.count.to_string(),
                f.with_outcome.to_string(),
                f.true_positives.to_string(),
                f.false_positives.to_string(),
                f.false_negatives.to_string(),
                num(f.precision, 3),
                num(f.recall, 3),
            ]
        })
        .collect();
    out.push_str(&table(
        &[
            "variant",
            "feedback",
            "with_outcome",
            "tp",
            "fp",
            "fn",
            "precision",
            "recall",
        ],
        &rows,
    ));

    out.push_str("\nreward (mean per feedback, 95% Student t interval)\n");
    let rows: Vec<Vec<String>> = primary
        .iter()
        .map(|v| {
            let w = &v.reward;
            vec![
                v.variant.clone(),
                w.n.to_string(),
                num(w.mean, 4),
                num(w.sd, 4),
                num(w.ci95.map(|c| c.low), 4),
                num(w.ci95.map(|c| c.high), 4),
            ]
        })
        .collect();
    out.push_str(&table(
        &["variant", "n", "mean", "sd", "ci95_low", "ci95_high"],
        &rows,
    ));

    let shadows: Vec<Vec<String>> = report
        .variants
        .iter()
        .filter_map(|v| {
            let s = v.shadow.as_ref()?;
            Some(vec![
                v.variant.clone(),
                s.scored.to_string(),
                s.matched.to_string(),
                num(s.agreement, 3),
                num(s.mean_abs_probability_diff, 4),
            ])
        })
        .collect();
    if !shadows.is_empty() {
        out.push_str("\nshadow (against the prediction the client got)\n");
        out.push_str(&table(
            &["variant", "scored", "matched", "agreement", "mean_abs_prob_diff"],
            &shadows,
        ));
    }

    let s = &report.significance;
    let _ = writeln!(
        out,
        "\nsignificance: {}, alpha = {}, against control {}",
        s.test,
        s.alpha,
        s.control.as_deref().unwrap_or("(none: no feedback)")
    );
    let _ = writeln!(out, "caveat: {}", s.caveat);
    let rows: Vec<Vec<String>> = s
        .comparisons
        .iter()
        .map(|c| {
            vec![
                c.variant.clone(),
                c.n.to_string(),
                c.control_n.to_string(),
                num(c.difference, 4),
                num(c.t, 3),
                num(c.df, 1),
                p_text(c.p_value),
                c.significant
                    .map_or_else(|| "-".into(), |s| if s { "yes" } else { "no" }.into()),
                c.note.clone().unwrap_or_default(),
            ]
        })
        .collect();
    out.push_str(&table(
        &[
            "variant",
            "n",
            "control_n",
            "difference",
            "t",
            "df",
            "p_value",
            "significant",
            "note",
        ],
        &rows,
    ));

    out.push_str("\nallocation (share of requests per tenth of the window's predictions, in time order)\n");
    let serving: Vec<String> = report
        .allocation
        .first()
        .map(|a| a.shares.iter().map(|s| s.variant.clone()).collect())
        .unwrap_or_default();
    let mut header = vec!["slice", "first", "last", "requests"];
    header.extend(serving.iter().map(String::as_str));
    let rows: Vec<Vec<String>> = report
        .allocation
        .iter()
        .map(|a| {
            let mut row = vec![
                a.slice.to_string(),
                a.first.clone(),
                a.last.clone(),
                a.requests.to_string(),
            ];
            row.extend(a.shares.iter().map(|s| format!("{:.3}", s.share)));
            row
        })
        .collect();
    out.push_str(&table(&header, &rows));

    if let Some(b) = &report.bandit {
        let _ = writeln!(
            out,
            "\nbandit ({}, {}, updated {}; P(best) from {} Beta posterior draws, seed {})",
            b.path, b.algorithm, b.updated, b.draws, b.seed
        );
        let rows: Vec<Vec<String>> = b
            .arms
            .iter()
            .map(|a| {
                vec![
                    a.variant.clone(),
                    a.pulls.to_string(),
                    num(a.pull_share, 3),
                    a.feedbacks.to_string(),
                    num(a.mean_reward, 4),
                    format!("{:.2}", a.alpha),
                    format!("{:.2}", a.beta),
                    format!("{:.4}", a.posterior_mean),
                    format!("{:.3}", a.p_best),
                ]
            })
            .collect();
        out.push_str(&table(
            &[
                "arm",
                "pulls",
                "pull_share",
                "feedbacks",
                "mean_reward",
                "alpha",
                "beta",
                "posterior_mean",
                "p_best",
            ],
            &rows,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p_values_keep_their_digits_when_small() {
        assert_eq!(p_text(Some(0.04321)), "0.0432");
        assert_eq!(p_text(Some(0.000012)), "1.2e-5");
        assert_eq!(p_text(None), "-");
    }
}
