//! `generate`: the synthetic raw data, and the drift scenarios that change
//! its last period in documented ways (what each one does to the rows is
//! documented in the `generate` crate).

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{Duration, NaiveDate};
use serde::{Deserialize, Serialize};

use super::{Check, Checked, ParamsError, fraction, in_range, invalid};
use crate::contract::{KNOWN_GROUPS, normalise_group};

/// `generate`: the synthetic raw data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerateParams {
    /// RNG seed; same seed, same bytes.
    pub seed: u64,
    /// Number of customers, 1..=10,000,000 (default 2,000).
    pub customers: u64,
    /// Number of purchase rows, at least `customers` (default 60,000).
    pub rows: u64,
    /// First day of data, `yyyy-mm-dd` (default 2020-01-01).
    pub start_date: NaiveDate,
    /// Days of data, 28..=3650 (default 180).
    pub days: u32,
    /// Files the rows are written to, each a run of consecutive days,
    /// 1..=days (default 6).
    pub files: u32,
    /// Drift scenarios, each from a date inside the generated days, at
    /// most [`MAX_SCENARIOS`] (default none: the data of the plain
    /// generator). Rows dated before a
    /// scenario's `from` are the rows the run without it writes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scenarios: Vec<Scenario>,
}

/// The most scenarios a run takes.
pub const MAX_SCENARIOS: usize = 100;

/// A change in the population or its behaviour from a date on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Scenario {
    LimitShock(LimitShock),
    MerchantMix(MerchantMix),
    NewCustomers(NewCustomers),
}

impl Scenario {
    /// The first day the scenario applies to.
    pub fn from(&self) -> NaiveDate {
        match self {
            Scenario::LimitShock(s) => s.from,
            Scenario::MerchantMix(s) => s.from,
            Scenario::NewCustomers(s) => s.from,
        }
    }

    /// The `kind` params spell.
    pub fn kind(&self) -> &'static str {
        match self {
            Scenario::LimitShock(_) => "limit_shock",
            Scenario::MerchantMix(_) => "merchant_mix",
            Scenario::NewCustomers(_) => "new_customers",
        }
    }
}

/// `kind: limit_shock`: the bank cuts the available limit of a share of the
/// customers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitShock {
    /// First day of the cut, `yyyy-mm-dd` (quoted in YAML), inside the
    /// generated days.
    pub from: NaiveDate,
    /// Share of the customers whose limit is cut (drawn with the seed), in
    /// (0, 1].
    pub share: f64,
    /// What is left of their available limit, and of the most it can be
    /// restored to, in (0, 1): 0.5 halves it.
    pub cut: f64,
}

/// `kind: merchant_mix`: the mix of merchant groups moves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MerchantMix {
    /// First day of the new mix, `yyyy-mm-dd` (quoted in YAML), inside the
    /// generated days.
    pub from: NaiveDate,
    /// Multiplies the weight of every non-vital group, in (0, 100]
    /// (default 1: unchanged).
    #[serde(default = "one")]
    pub factor: f64,
    /// Named groups given a new weight (after `factor`), each in [0, 1000];
    /// the other groups keep theirs. Names as the contract's known groups,
    /// normalised (`SERVIÇO` and `servico` both name `SERVICO`); for scale,
    /// SUPERMERCADOS weighs 22 and RESTAURANTE 10 in the plain mix.
    #[serde(default)]
    pub weights: BTreeMap<String, f64>,
}

fn one() -> f64 {
    1.0
}

/// `kind: new_customers`: a population of new accounts starts buying.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewCustomers {
    /// Their accounts open in the 30 days up to this date, `yyyy-mm-dd`
    /// (quoted in YAML), and they buy from it on; inside the generated days.
    pub from: NaiveDate,
    /// How many, 1..=1,000,000 (with `customers`, at most 10,000,000).
    pub count: u64,
    /// Their ages are drawn uniformly in [min_age, max_age], 18..=100
    /// (defaults 18 and 30).
    #[serde(default = "default_min_age")]
    pub min_age: u16,
    #[serde(default = "default_max_age")]
    pub max_age: u16,
}

fn default_min_age() -> u16 {
    18
}

fn default_max_age() -> u16 {
    30
}

impl GenerateParams {
    /// Reads the `generate` section of a params file: params.yaml, or a file
    /// holding that section alone (`config/scenarios/*.yaml`). The section
    /// is parsed strictly; the others are their own stages' to parse.
    pub fn load(path: &Path) -> Result<GenerateParams, ParamsError> {
        /// Any params file with a `generate` section.
        #[derive(Deserialize)]
        struct File {
            generate: GenerateParams,
        }
        let text = std::fs::read_to_string(path).map_err(|source| ParamsError::Io {
            path: path.to_owned(),
            source,
        })?;
        let file: File = serde_norway::from_str(&text).map_err(|source| ParamsError::Yaml {
            path: path.to_owned(),
            source,
        })?;
        Ok(file.generate)
    }

    /// The last generated day.
    pub fn last_date(&self) -> NaiveDate {
        self.start_date + Duration::days(i64::from(self.days) - 1)
    }

    /// Days from `start_date` to `date` (a scenario's first day).
    pub fn day_of(&self, date: NaiveDate) -> u32 {
        u32::try_from((date - self.start_date).num_days()).unwrap_or(0)
    }
}

impl Check for GenerateParams {
    type Checked = Checked<GenerateParams>;

    fn check(mut self) -> Result<Checked<GenerateParams>, ParamsError> {
        in_range("generate.customers", self.customers, 1, 10_000_000)?;
        in_range("generate.rows", self.rows, self.customers, 1_000_000_000)?;
        in_range("generate.days", self.days, 28, 3650)?;
        in_range("generate.files", self.files, 1, self.days)?;
        // The generator gives each scenario random streams of its own, numbered by position.
        in_range(
            "generate.scenarios (count)",
            self.scenarios.len(),
            0,
            MAX_SCENARIOS,
        )?;
        let mut customers = self.customers;
        let (first, last) = (self.start_date, self.last_date());
        for (i, scenario) in self.scenarios.iter_mut().enumerate() {
            let key = |field: &str| format!("generate.scenarios[{i}].{field}");
            let from = scenario.from();
            if from < first || from > last {
                return Err(invalid(
                    &key("from"),
                    format!("{from} is outside the generated days {first}..={last}"),
                ));
            }
            match scenario {
                Scenario::LimitShock(s) => {
                    fraction(&key("share"), s.share)?;
                    if !(s.cut > 0.0 && s.cut < 1.0) {
                        return Err(invalid(&key("cut"), format!("{} is outside (0, 1)", s.cut)));
                    }
                }
                Scenario::MerchantMix(s) => check_mix(s, &key)?,
                Scenario::NewCustomers(s) => {
                    in_range(&key("count"), s.count, 1, 1_000_000)?;
                    customers += s.count;
                    if customers > 10_000_000 {
                        return Err(invalid(
                            &key("count"),
                            format!("brings the customers to {customers}, above 10000000"),
                        ));
                    }
                    in_range(&key("min_age"), s.min_age, 18, 100)?;
                    in_range(&key("max_age"), s.max_age, s.min_age, 100)?;
                }
            }
        }
        Ok(Checked(self))
    }
}

/// Checks a new merchant mix and normalises the group names it weighs.
fn check_mix(s: &mut MerchantMix, key: &dyn Fn(&str) -> String) -> Result<(), ParamsError> {
    if !(s.factor.is_finite() && s.factor > 0.0 && s.factor <= 100.0) {
        return Err(invalid(
            &key("factor"),
            format!("{} is outside (0, 100]", s.factor),
        ));
    }
    let mut weights = BTreeMap::new();
    for (name, &weight) in &s.weights {
        let field = key(&format!("weights.{name}"));
        let clean = normalise_group(name);
        if !KNOWN_GROUPS.contains(&clean.as_str()) {
            return Err(invalid(
                &field,
                format!(
                    "not a merchant group of the contract ({})",
                    KNOWN_GROUPS.join(", ")
                ),
            ));
        }
        if !(weight.is_finite() && (0.0..=1000.0).contains(&weight)) {
            return Err(invalid(&field, format!("{weight} is outside [0, 1000]")));
        }
        if weights.insert(clean.clone(), weight).is_some() {
            return Err(invalid(&field, format!("names {clean} twice")));
        }
    }
    if s.factor == 1.0 && weights.is_empty() {
        return Err(invalid(
            &key("factor"),
            "the mix changes nothing: set a factor other than 1 or some weights",
        ));
    }
    if weights.len() == KNOWN_GROUPS.len() && weights.values().all(|&w| w == 0.0) {
        return Err(invalid(
            &key("weights"),
            "every group weighs 0: nothing can be bought",
        ));
    }
    s.weights = weights;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str =
        "seed: 1\ncustomers: 100\nrows: 1000\nstart_date: \"2020-01-01\"\ndays: 210\nfiles: 7\n";

    fn parse(scenarios: &str) -> GenerateParams {
        serde_norway::from_str(&format!("{BASE}scenarios:\n{scenarios}")).expect("generate params parse")
    }

    fn refused(scenarios: &str, field: &str) {
        let err = parse(scenarios).check().expect_err(field).to_string();
        assert!(err.contains(field), "{field}: {err}");
    }

    /// The section alone, or within the whole params file.
    #[test]
    fn the_section_loads_from_params_yaml_or_alone() {
        let dir = tempfile::tempdir().expect("temp dir");
        let alone = dir.path().join("alone.yaml");
        let indented: String = BASE.lines().map(|l| format!("  {l}\n")).collect();
        std::fs::write(&alone, format!("# a fragment\ngenerate:\n{indented}")).expect("write");
        let p = GenerateParams::load(&alone).expect("a section alone");
        assert_eq!((p.customers, p.days), (100, 210));
        let whole = GenerateParams::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../params.yaml"))
            .expect("params.yaml");
        assert_eq!(p.scenarios, whole.scenarios);
        std::fs::write(&alone, format!("generate:\n{indented}  scenarioz: []\n")).expect("write");
        let err = GenerateParams::load(&alone).expect_err("typo");
        assert!(format!("{err:#}").contains("alone.yaml"), "{err}");
        let missing = dir.path().join("missing.yaml");
        assert!(GenerateParams::load(&missing).is_err());
    }

    #[test]
    fn no_scenarios_is_the_plain_generator_and_serialises_as_before() {
        let p: GenerateParams = serde_norway::from_str(BASE).expect("parse");
        assert!(p.scenarios.is_empty());
        let json = serde_json::to_string(&p).expect("serialise");
        assert!(!json.contains("scenarios"), "{json}");
        p.check().expect("valid");
    }

    #[test]
    fn every_kind_parses_with_its_defaults() {
        let p = parse(
            "  - {kind: limit_shock, from: \"2020-06-29\", share: 0.3, cut: 0.5}\n\
             \x20 - {kind: merchant_mix, from: \"2020-06-29\", factor: 1.5, weights: {\"servi\u{e7}o\": 4}}\n\
             \x20 - {kind: new_customers, from: \"2020-07-10\", count: 50}\n",
        );
        let c = p.check().expect("valid");
        assert_eq!(c.scenarios.len(), 3);
        assert_eq!(c.day_of(c.scenarios[0].from()), 180);
        match &c.scenarios[1] {
            Scenario::MerchantMix(m) => {
                assert_eq!(m.weights.get("SERVICO"), Some(&4.0), "names are normalised");
            }
            other => panic!("{other:?}"),
        }
        match &c.scenarios[2] {
            Scenario::NewCustomers(n) => assert_eq!((n.min_age, n.max_age), (18, 30)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unknown_kinds_and_fields_are_refused() {
        let text = format!("{BASE}scenarios:\n  - {{kind: price_war, from: \"2020-06-29\"}}\n");
        let err = serde_norway::from_str::<GenerateParams>(&text).expect_err("kind");
        assert!(err.to_string().contains("price_war"), "{err}");
        let text = format!(
            "{BASE}scenarios:\n  - {{kind: limit_shock, from: \"2020-06-29\", share: 0.3, cut: 0.5, cuts: 1}}\n"
        );
        let err = serde_norway::from_str::<GenerateParams>(&text).expect_err("field");
        assert!(err.to_string().contains("cuts"), "{err}");
    }

    #[test]
    fn bad_values_are_refused_naming_the_key() {
        refused(
            "  - {kind: limit_shock, from: \"2020-06-29\", share: 0.0, cut: 0.5}\n",
            "generate.scenarios[0].share",
        );
        refused(
            "  - {kind: limit_shock, from: \"2020-06-29\", share: 0.2, cut: 0.5}\n  - {kind: limit_shock, from: \"2020-06-29\", share: 0.2, cut: 1.0}\n",
            "generate.scenarios[1].cut",
        );
        refused(
            "  - {kind: limit_shock, from: \"2020-06-29\", share: 1.5, cut: 0.5}\n",
            "generate.scenarios[0].share",
        );
        refused(
            "  - {kind: limit_shock, from: \"2020-06-29\", share: 0.5, cut: 0.0}\n",
            "generate.scenarios[0].cut",
        );
        // 2020-01-01 + 210 days is 2020-07-29: the first day after the window.
        refused(
            "  - {kind: limit_shock, from: \"2020-07-29\", share: 0.5, cut: 0.5}\n",
            "generate.scenarios[0].from",
        );
        refused(
            "  - {kind: merchant_mix, from: \"2019-12-31\", factor: 2}\n",
            "generate.scenarios[0].from",
        );
        refused(
            "  - {kind: merchant_mix, from: \"2020-06-29\", factor: 0}\n",
            "generate.scenarios[0].factor",
        );
        refused(
            "  - {kind: merchant_mix, from: \"2020-06-29\"}\n",
            "generate.scenarios[0].factor",
        );
        refused(
            "  - {kind: merchant_mix, from: \"2020-06-29\", weights: {PADARIA: 3}}\n",
            "generate.scenarios[0].weights.PADARIA",
        );
        refused(
            "  - {kind: merchant_mix, from: \"2020-06-29\", weights: {VAREJO: -1}}\n",
            "generate.scenarios[0].weights.VAREJO",
        );
        refused(
            "  - {kind: merchant_mix, from: \"2020-06-29\", weights: {SERVICO: 1, \"servi\u{e7}o\": 2}}\n",
            "generate.scenarios[0].weights.",
        );
        refused(
            "  - {kind: new_customers, from: \"2020-06-29\", count: 0}\n",
            "generate.scenarios[0].count",
        );
        refused(
            "  - {kind: new_customers, from: \"2020-06-29\", count: 10, min_age: 16}\n",
            "generate.scenarios[0].min_age",
        );
        refused(
            "  - {kind: new_customers, from: \"2020-06-29\", count: 10, min_age: 40, max_age: 30}\n",
            "generate.scenarios[0].max_age",
        );
    }

    #[test]
    fn at_most_a_hundred_scenarios() {
        let one = "  - {kind: merchant_mix, from: \"2020-06-29\", factor: 2}\n";
        parse(&one.repeat(MAX_SCENARIOS)).check().expect("a hundred");
        refused(&one.repeat(MAX_SCENARIOS + 1), "generate.scenarios");
    }

    #[test]
    fn a_mix_that_weighs_every_group_zero_is_refused() {
        let weights: Vec<String> = KNOWN_GROUPS.iter().map(|g| format!("\"{g}\": 0")).collect();
        refused(
            &format!(
                "  - {{kind: merchant_mix, from: \"2020-06-29\", weights: {{{}}}}}\n",
                weights.join(", ")
            ),
            "generate.scenarios[0].weights",
        );
    }
}
