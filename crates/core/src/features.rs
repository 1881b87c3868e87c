//! Feature definitions and the one function that computes them.
//!
//! [`compute`] turns a customer's [`History`] (built from strictly earlier
//! purchases) and the purchase being scored into feature values. The offline
//! pipeline walks each customer's purchases in order, calling [`compute`] and
//! then [`History::record`]; the online server calls [`compute`] on the
//! history state `build-features` left in the [`OnlineSnapshot`]. Both paths
//! run this code, so training and serving cannot drift apart.
//!
//! Missing values are encoded as `-1` (ages, cohorts, recency) so every
//! feature is a finite number the tree learners can split on.

use std::collections::{BTreeMap, VecDeque};

use chrono::{Datelike, NaiveDate, Weekday};
use serde::{Deserialize, Serialize};

use crate::contract::{Sex, Transaction};
use crate::target::{TargetRule, available_pct};

/// History windows, in days.
pub const SHORT_WINDOW_DAYS: i32 = 7;
pub const LONG_WINDOW_DAYS: i32 = 30;

/// Merchant groups the data contract knows, in a fixed order: a group's
/// position is its `group_code`. Unknown and empty groups get their own codes.
pub const KNOWN_GROUPS: [&str; 22] = [
    "AGENCIA DE TUR",
    "ALUG DE CARROS",
    "ARTIGOS ELETRO",
    "AUTO PECAS",
    "CIA AEREAS",
    "FARMACIAS",
    "HOSP E CLINICA",
    "HOTEIS",
    "JOALHERIA",
    "LOJA DE DEPART",
    "MAT CONSTRUCAO",
    "MOVEIS E DECOR",
    "M.O.T.O.",
    "SEM RAMO",
    "SERVICO",
    "SUPERMERCADOS",
    "VAREJO",
    "VESTUARIO",
    "RESTAURANTE",
    "POSTO DE GAS",
    "TRANS FINANC",
    "INEXISTENTE",
];

macro_rules! features {
    ($($variant:ident => $name:literal, $kind:ident;)*) => {
        /// Every candidate feature. The model's feature set is an ordered
        /// subset chosen in params.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum Feature { $($variant,)* }

        impl Feature {
            /// All candidates, in column order of [`compute`]'s output.
            pub const ALL: &'static [Feature] = &[$(Feature::$variant,)*];

            /// The column name in the master table.
            pub fn name(self) -> &'static str {
                match self { $(Feature::$variant => $name,)* }
            }

            /// What the feature describes.
            pub fn kind(self) -> FeatureKind {
                match self { $(Feature::$variant => FeatureKind::$kind,)* }
            }
        }
    };
}

features! {
    Idade => "idade", Profile;
    SexoM => "sexo_m", Profile;
    AccountAgeMonths => "account_age_months", Profile;
    Valor => "valor", Purchase;
    ValorMissing => "valor_missing", Purchase;
    AmountToLimit => "amount_to_limit", Purchase;
    Abroad => "abroad", Purchase;
    GroupCode => "group_code", Purchase;
    GroupNonVital => "group_non_vital", Purchase;
    Month => "month", Date;
    Weekday => "weekday", Date;
    IsWeekend => "is_weekend", Date;
    DayOfMonth => "day_of_month", Date;
    PurchasesBefore => "purchases_before", History;
    DaysSincePrev => "days_since_prev", History;
    PrevUtilisation => "prev_utilisation", History;
    Count7d => "count_7d", History;
    Spend7d => "spend_7d", History;
    Count30d => "count_30d", History;
    Spend30d => "spend_30d", History;
    NonVitalShare30d => "non_vital_share_30d", History;
    Revenge30d => "revenge_count_30d", History;
    LimiteTotal => "limite_total", LabelInput;
    LimiteDisp => "limite_disp", LabelInput;
    AvailablePct => "available_pct", LabelInput;
    // Appended after the first release so earlier variants keep their
    // encoded positions in model artifacts.
    IsHoliday => "is_holiday", Date;
    IsMonthStart => "is_month_start", Date;
    IsMonthEnd => "is_month_end", Date;
}

/// What a feature describes; `LabelInput` features read the same row's
/// values the target rule reads, so a model fed them learns the rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FeatureKind {
    Profile,
    Purchase,
    Date,
    History,
    LabelInput,
}

impl Feature {
    /// Looks a feature up by its column name.
    pub fn from_name(name: &str) -> Option<Feature> {
        Feature::ALL.iter().copied().find(|f| f.name() == name)
    }

    /// Whether the target rule reads this value from the same row (leakage).
    pub fn is_label_input(self) -> bool {
        self.kind() == FeatureKind::LabelInput
    }

    /// Position of this feature in [`compute`]'s output.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// One earlier purchase, as much of it as the history features need.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PastPurchase {
    /// Days since 0001-01-01 (chrono's `num_days_from_ce`).
    pub day: i32,
    pub amount: f64,
    pub non_vital: bool,
    pub revenge: bool,
}

/// A customer's history state: everything the history features need from
/// strictly earlier purchases. This is also the online feature-store record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    pub purchases_before: u32,
    pub last_day: Option<i32>,
    pub last_utilisation: Option<f64>,
    /// Purchases within [`LONG_WINDOW_DAYS`] of the latest one, oldest first.
    pub recent: VecDeque<PastPurchase>,
}

impl History {
    /// Adds a purchase (after its features were computed) and forgets what
    /// has fallen out of the longest window.
    pub fn record(&mut self, txn: &Transaction, rule: &TargetRule) {
        let day = txn.date.num_days_from_ce();
        self.purchases_before += 1;
        self.last_day = Some(self.last_day.map_or(day, |d| d.max(day)));
        self.last_utilisation = Some(utilisation(txn));
        self.recent.push_back(PastPurchase {
            day,
            amount: txn.valor.unwrap_or(0.0),
            non_vital: !rule.is_vital(&txn.grupo),
            revenge: rule.is_revenge(txn),
        });
        let newest = self.last_day.unwrap_or(day);
        while self
            .recent
            .front()
            .is_some_and(|p| p.day <= newest - LONG_WINDOW_DAYS)
        {
            self.recent.pop_front();
        }
    }
}

/// Share of the limit in use at a purchase (1 − available share).
fn utilisation(txn: &Transaction) -> f64 {
    1.0 - available_pct(txn.limite_disp, txn.limite_total) / 100.0
}

/// Computes every candidate feature for `txn`, given the customer's history
/// of strictly earlier purchases. Output is indexed by [`Feature::index`].
pub fn compute(history: &History, txn: &Transaction, rule: &TargetRule) -> [f64; Feature::ALL.len()] {
    let mut out = [0.0; Feature::ALL.len()];
    let mut set = |f: Feature, v: f64| out[f.index()] = v;
    let day = txn.date.num_days_from_ce();
    let flag = |b: bool| if b { 1.0 } else { 0.0 };

    set(Feature::Idade, txn.idade.map_or(-1.0, f64::from));
    set(
        Feature::SexoM,
        match txn.sexo {
            Some(Sex::M) => 1.0,
            Some(Sex::F) => 0.0,
            None => -1.0,
        },
    );
    set(
        Feature::AccountAgeMonths,
        txn.safra_abertura.map_or(-1.0, |c| {
            let opened = i64::from(c / 100) * 12 + i64::from(c % 100) - 1;
            let now = i64::from(txn.date.year()) * 12 + i64::from(txn.date.month0());
            (now - opened) as f64
        }),
    );

    let amount = txn.valor.unwrap_or(0.0);
    set(Feature::Valor, amount);
    set(Feature::ValorMissing, flag(txn.valor.is_none()));
    set(
        Feature::AmountToLimit,
        if txn.limite_total > 0.0 {
            amount / txn.limite_total
        } else {
            0.0
        },
    );
    set(
        Feature::Abroad,
        flag(!txn.pais_estabelecimento.is_empty() && txn.pais_estabelecimento != "BR"),
    );
    set(Feature::GroupCode, group_code(&txn.grupo) as f64);
    set(Feature::GroupNonVital, flag(!rule.is_vital(&txn.grupo)));

    set(Feature::Month, f64::from(txn.date.month()));
    set(
        Feature::Weekday,
        f64::from(txn.date.weekday().num_days_from_monday()),
    );
    set(
        Feature::IsWeekend,
        flag(matches!(txn.date.weekday(), Weekday::Sat | Weekday::Sun)),
    );
    set(Feature::DayOfMonth, f64::from(txn.date.day()));
    set(Feature::IsHoliday, flag(is_brazilian_holiday(txn.date)));
    set(Feature::IsMonthStart, flag(txn.date.day() <= MONTH_EDGE_DAYS));
    set(
        Feature::IsMonthEnd,
        flag((txn.date + chrono::Duration::days(i64::from(MONTH_EDGE_DAYS))).month() != txn.date.month()),
    );

    set(Feature::PurchasesBefore, f64::from(history.purchases_before));
    set(
        Feature::DaysSincePrev,
        history.last_day.map_or(-1.0, |d| f64::from((day - d).max(0))),
    );
    set(Feature::PrevUtilisation, history.last_utilisation.unwrap_or(-1.0));
    let (mut c7, mut s7, mut c30, mut s30, mut nv30, mut r30) = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    // `day <= today` guards a request dated before the stored history.
    for p in history.recent.iter().filter(|p| p.day <= day) {
        if p.day > day - LONG_WINDOW_DAYS {
            c30 += 1.0;
            s30 += p.amount;
            if p.non_vital {
                nv30 += p.amount;
            }
            if p.revenge {
                r30 += 1.0;
            }
            if p.day > day - SHORT_WINDOW_DAYS {
                c7 += 1.0;
                s7 += p.amount;
            }
        }
    }
    set(Feature::Count7d, c7);
    set(Feature::Spend7d, s7);
    set(Feature::Count30d, c30);
    set(Feature::Spend30d, s30);
    set(
        Feature::NonVitalShare30d,
        if s30 > 0.0 { nv30 / s30 } else { 0.0 },
    );
    set(Feature::Revenge30d, r30);

    set(Feature::LimiteTotal, txn.limite_total);
    set(Feature::LimiteDisp, txn.limite_disp);
    set(
        Feature::AvailablePct,
        available_pct(txn.limite_disp, txn.limite_total),
    );
    out
}

/// Days at each end of a month that count as its start or end (paydays and
/// bill due dates cluster there).
pub const MONTH_EDGE_DAYS: u32 = 3;

/// Brazilian national holidays: the fixed ones, plus Carnival Monday and
/// Tuesday, Good Friday and Corpus Christi, which move with Easter.
pub fn is_brazilian_holiday(date: NaiveDate) -> bool {
    const FIXED: [(u32, u32); 8] = [
        (1, 1),
        (4, 21),
        (5, 1),
        (9, 7),
        (10, 12),
        (11, 2),
        (11, 15),
        (12, 25),
    ];
    if FIXED.contains(&(date.month(), date.day())) {
        return true;
    }
    let Some(easter) = easter_sunday(date.year()) else {
        return false;
    };
    let offset = (date - easter).num_days();
    matches!(offset, -48 | -47 | -2 | 60)
}

/// Easter Sunday of the Gregorian calendar (anonymous Gregorian algorithm).
pub fn easter_sunday(year: i32) -> Option<NaiveDate> {
    let a = year % 19;
    let b = year / 100;
    let c = year % 100;
    let d = b / 4;
    let e = b % 4;
    let f = (b + 8) / 25;
    let g = (b - f + 1) / 3;
    let h = (19 * a + b - d - g + 15) % 30;
    let i = c / 4;
    let k = c % 4;
    let l = (32 + 2 * e + 2 * i - h - k) % 7;
    let m = (a + 11 * h + 22 * l) / 451;
    let month = (h + l - 7 * m + 114) / 31;
    let day = (h + l - 7 * m + 114) % 31 + 1;
    NaiveDate::from_ymd_opt(year, month as u32, day as u32)
}

/// A merchant group's position in [`KNOWN_GROUPS`]; empty and unknown
/// groups get the two codes after the known ones.
pub fn group_code(group: &str) -> usize {
    if group.is_empty() {
        return KNOWN_GROUPS.len();
    }
    KNOWN_GROUPS
        .iter()
        .position(|g| *g == group)
        .unwrap_or(KNOWN_GROUPS.len() + 1)
}

/// Picks the model's features, in order, out of [`compute`]'s output.
pub fn select(all: &[f64; Feature::ALL.len()], features: &[Feature]) -> Vec<f64> {
    features.iter().map(|f| all[f.index()]).collect()
}

/// The online feature store: each customer's history after the last
/// purchase `build-features` saw, keyed by pseudonymised customer id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OnlineSnapshot {
    /// Date of the latest purchase in the snapshot.
    pub as_of: Option<NaiveDate>,
    /// The rule the history's revenge counts were computed with.
    pub rule: TargetRule,
    /// The accepted values the rows behind the history were staged under
    /// (the quality suite's `ranges`): the server checks requests against
    /// the same ones (format 4, issue 15).
    pub ranges: crate::contract::ValueRanges,
    /// Each customer's history by pseudonym, as its bytes
    /// ([`pseudonym_key`]): a third of the memory of the hex text.
    pub customers: BTreeMap<PseudonymKey, History>,
    /// [`crate::pseudonym::Pseudonymiser::key_fingerprint`] of the key the
    /// customers were pseudonymised with: the server refuses to start with
    /// another key (every customer would be a cold start).
    pub key_fingerprint: String,
}

/// A pseudonym as the snapshot keys it: the bytes of its hex digits
/// ([`crate::pseudonym::Pseudonymiser::pseudonym`] writes 16).
pub type PseudonymKey = [u8; 16];

/// The key of a pseudonym; none for text that is not 32 hex digits (no
/// customer has it).
pub fn pseudonym_key(pseudonym: &str) -> Option<PseudonymKey> {
    let digits = pseudonym.as_bytes();
    if digits.len() != 32 {
        return None;
    }
    let nibble = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    };
    let mut key = [0u8; 16];
    for (i, pair) in digits.chunks_exact(2).enumerate() {
        key[i] = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(key)
}

impl OnlineSnapshot {
    /// The history of a customer, or `None` for a customer never seen
    /// (cold start: an empty [`History`] gives the documented defaults).
    pub fn history(&self, pseudonym: &str) -> Option<&History> {
        self.customers.get(&pseudonym_key(pseudonym)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pseudonym_keys_the_snapshot_by_its_bytes() {
        let key = crate::pseudonym::Pseudonymiser::development();
        let pseudonym = key.pseudonym("10013747760");
        let bytes = pseudonym_key(&pseudonym).expect("32 hex digits");
        assert_eq!(crate::hex(&bytes), pseudonym);
        assert_eq!(pseudonym_key(&pseudonym.to_uppercase()), Some(bytes));
        for bad in ["", "ab", &pseudonym[1..], &format!("{}z", &pseudonym[1..])] {
            assert_eq!(pseudonym_key(bad), None, "{bad:?}");
        }
    }
    use crate::contract::parse_fields;
    use proptest::prelude::*;

    fn rule() -> TargetRule {
        TargetRule {
            threshold_pct: 20.0,
            vital_groups: vec!["SUPERMERCADOS".into()],
        }
    }

    fn txn(date: &str, amount: &str, disp: &str, group: &str) -> Transaction {
        parse_fields(&[
            "1",
            "201901",
            "SAO PAULO",
            "SP",
            "34",
            "M",
            "1000.0",
            disp,
            date,
            amount,
            group,
            "SAO PAULO",
            "BR",
        ])
        .expect("valid row")
    }

    #[test]
    fn names_round_trip_and_are_unique() {
        for f in Feature::ALL {
            assert_eq!(Feature::from_name(f.name()), Some(*f));
        }
        let mut names: Vec<_> = Feature::ALL.iter().map(|f| f.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Feature::ALL.len());
        assert_eq!(Feature::ALL.iter().filter(|f| f.is_label_input()).count(), 3);
    }

    #[test]
    fn cold_start_values() {
        let f = compute(
            &History::default(),
            &txn("10.02.2020", " 50,00 ", "900.0", "VAREJO"),
            &rule(),
        );
        assert_eq!(f[Feature::PurchasesBefore.index()], 0.0);
        assert_eq!(f[Feature::DaysSincePrev.index()], -1.0);
        assert_eq!(f[Feature::PrevUtilisation.index()], -1.0);
        assert_eq!(f[Feature::Count30d.index()], 0.0);
        assert_eq!(f[Feature::AccountAgeMonths.index()], 13.0);
        assert_eq!(f[Feature::AmountToLimit.index()], 0.05);
        assert_eq!(f[Feature::AvailablePct.index()], 90.0);
    }

    #[test]
    fn windows_count_only_recent_earlier_purchases() {
        let r = rule();
        let mut h = History::default();
        h.record(&txn("01.01.2020", " 100,00 ", "100.0", "VAREJO"), &r); // revenge, 40 days before
        h.record(&txn("01.02.2020", " 10,00 ", "900.0", "SUPERMERCADOS"), &r);
        h.record(&txn("08.02.2020", " 30,00 ", "150.0", "VESTUARIO"), &r); // revenge
        let f = compute(&h, &txn("10.02.2020", " 5,00 ", "900.0", "VAREJO"), &r);
        assert_eq!(f[Feature::PurchasesBefore.index()], 3.0);
        assert_eq!(f[Feature::DaysSincePrev.index()], 2.0);
        assert!((f[Feature::PrevUtilisation.index()] - 0.85).abs() < 1e-12);
        assert_eq!(f[Feature::Count7d.index()], 1.0);
        assert_eq!(f[Feature::Spend7d.index()], 30.0);
        assert_eq!(f[Feature::Count30d.index()], 2.0);
        assert_eq!(f[Feature::Spend30d.index()], 40.0);
        assert!((f[Feature::NonVitalShare30d.index()] - 0.75).abs() < 1e-12);
        assert_eq!(f[Feature::Revenge30d.index()], 1.0);
        // The January purchase fell out of the 30-day state.
        assert_eq!(h.recent.len(), 2);
    }

    #[test]
    fn brazilian_holidays_fixed_and_moving() {
        let d = |y, m, day| NaiveDate::from_ymd_opt(y, m, day).expect("valid date");
        assert_eq!(easter_sunday(2020), Some(d(2020, 4, 12)));
        assert_eq!(easter_sunday(2019), Some(d(2019, 4, 21)));
        assert!(is_brazilian_holiday(d(2020, 2, 24))); // Carnival Monday
        assert!(is_brazilian_holiday(d(2020, 2, 25))); // Carnival Tuesday
        assert!(is_brazilian_holiday(d(2020, 4, 10))); // Good Friday
        assert!(is_brazilian_holiday(d(2020, 6, 11))); // Corpus Christi
        assert!(is_brazilian_holiday(d(2020, 9, 7))); // Independence
        assert!(!is_brazilian_holiday(d(2020, 2, 26)));
        let f = compute(
            &History::default(),
            &txn("30.04.2020", " 5,00 ", "900.0", "VAREJO"),
            &rule(),
        );
        assert_eq!(f[Feature::IsMonthEnd.index()], 1.0);
        assert_eq!(f[Feature::IsMonthStart.index()], 0.0);
        assert_eq!(f[Feature::IsHoliday.index()], 0.0);
    }

    proptest! {
        #[test]
        fn features_are_finite_and_deterministic(
            days in proptest::collection::vec((0i64..400, 0u32..100_000, 0u32..200_000, 0usize..23), 1..40)
        ) {
            let r = rule();
            let base = NaiveDate::from_ymd_opt(2020, 1, 1).expect("valid date");
            let mut sorted = days.clone();
            sorted.sort_by_key(|d| d.0);
            let mut h1 = History::default();
            let mut h2 = History::default();
            for (offset, cents, disp, g) in sorted {
                let date = (base + chrono::Duration::days(offset)).format("%d.%m.%Y").to_string();
                let amount = crate::contract::format_amount(Some(f64::from(cents) / 100.0));
                let disp = format!("{}", f64::from(disp) / 100.0);
                let group = KNOWN_GROUPS.get(g).copied().unwrap_or("");
                let t = txn(&date, &amount, &disp, group);
                let a = compute(&h1, &t, &r);
                let b = compute(&h2, &t, &r);
                prop_assert!(a.iter().all(|v| v.is_finite()));
                prop_assert_eq!(a, b);
                h1.record(&t, &r);
                h2.record(&t, &r);
            }
        }
    }
}
