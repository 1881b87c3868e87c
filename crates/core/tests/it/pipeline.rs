//! `dvc.yaml` against the stages (issue 11): every path a stage depends on
//! or writes is passed to its command as a flag, every path flag is tracked,
//! each stage reads its own params section, and its code deps are the
//! sources of exactly the workspace crates its binary is built from, so an
//! edit reruns what it can change and nothing else.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_norway::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// One stage of `dvc.yaml`, as the test needs it.
#[derive(Debug)]
struct Stage {
    name: String,
    binary: String,
    /// `--flag value` pairs of the command.
    flags: Vec<(String, String)>,
    deps: Vec<String>,
    /// outs, metrics and plots.
    outs: Vec<String>,
    params: Vec<String>,
    /// Outputs DVC caches (not `cache: false`): generated files git does not track.
    cached: Vec<String>,
}

/// The outs, metrics and plots of a stage that DVC caches, i.e. without
/// `cache: false` (those are the reports git tracks).
fn cached_outs(stage: &Value) -> Vec<String> {
    ["outs", "metrics", "plots"]
        .iter()
        .filter_map(|key| stage.get(*key).and_then(Value::as_sequence))
        .flatten()
        .filter(|entry| {
            entry
                .get(path_of(entry))
                .and_then(|o| o.get("cache"))
                .and_then(Value::as_bool)
                != Some(false)
        })
        .map(path_of)
        .collect()
}

/// A path entry: a plain string or a one-key map `{path: {options}}`.
fn path_of(entry: &Value) -> String {
    match entry {
        Value::String(s) => s.clone(),
        Value::Mapping(m) if m.len() == 1 => m
            .keys()
            .next()
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("bad dvc.yaml entry {entry:?}"))
            .to_owned(),
        other => panic!("bad dvc.yaml entry {other:?}"),
    }
}

fn list(stage: &Value, key: &str) -> Vec<String> {
    stage
        .get(key)
        .and_then(Value::as_sequence)
        .map(|s| s.iter().map(path_of).collect())
        .unwrap_or_default()
}

fn stages() -> Vec<Stage> {
    let text = std::fs::read_to_string(root().join("dvc.yaml")).expect("dvc.yaml");
    let doc: Value = serde_norway::from_str(&text).expect("dvc.yaml parses");
    let stages = doc.get("stages").and_then(Value::as_mapping).expect("stages");
    stages
        .iter()
        .map(|(name, stage)| {
            let name = name.as_str().expect("stage name").to_owned();
            let cmd = stage.get("cmd").and_then(Value::as_str).expect("cmd");
            let words: Vec<&str> = cmd.split_whitespace().collect();
            assert_eq!(
                words.first(),
                Some(&"scripts/stage"),
                "{name}: run through scripts/stage"
            );
            let binary = words.get(1).expect("binary").to_string();
            let mut flags = Vec::new();
            let mut rest = words[2..].iter().peekable();
            while let Some(w) = rest.next() {
                let flag = w
                    .strip_prefix("--")
                    .unwrap_or_else(|| panic!("{name}: {w:?} is not a flag"));
                let value = rest
                    .next_if(|v| !v.starts_with("--"))
                    .unwrap_or_else(|| panic!("{name}: --{flag} has no value"));
                flags.push((flag.to_owned(), value.to_string()));
            }
            let cached = cached_outs(stage);
            let mut outs = list(stage, "outs");
            outs.extend(list(stage, "metrics"));
            outs.extend(list(stage, "plots"));
            Stage {
                binary,
                flags,
                deps: list(stage, "deps"),
                outs,
                params: list(stage, "params"),
                cached,
                name,
            }
        })
        .collect()
}

/// Workspace crates by package name: their directory under `crates/` and
/// the workspace crates they depend on (normal, non-optional dependencies).
fn workspace_crates() -> BTreeMap<String, (String, Vec<String>)> {
    let mut crates = BTreeMap::new();
    for entry in std::fs::read_dir(root().join("crates")).expect("crates/") {
        let dir = entry.expect("entry").path();
        let Ok(manifest) = std::fs::read_to_string(dir.join("Cargo.toml")) else {
            continue;
        };
        let mut section = "";
        let mut name = None;
        let mut deps = Vec::new();
        for line in manifest.lines().map(str::trim) {
            if line.starts_with('[') {
                section = line;
                continue;
            }
            if section == "[package]"
                && let Some(v) = line.strip_prefix("name = ")
            {
                name = Some(v.trim_matches('"').to_owned());
            }
            if section == "[dependencies]"
                && line.contains("workspace = true")
                && !line.contains("optional = true")
            {
                let dep = line.split(['.', ' ', '=']).next().unwrap_or_default();
                deps.push(dep.to_owned());
            }
        }
        let dir_name = dir.file_name().and_then(|n| n.to_str()).expect("dir").to_owned();
        crates.insert(name.expect("package name"), (dir_name, deps));
    }
    let names: BTreeSet<String> = crates.keys().cloned().collect();
    for (_, deps) in crates.values_mut() {
        deps.retain(|d| names.contains(d));
    }
    crates
}

/// The directories (under `crates/`) of the workspace crates `package` is
/// built from, itself included.
fn built_from(crates: &BTreeMap<String, (String, Vec<String>)>, package: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![package.to_owned()];
    while let Some(p) = todo.pop() {
        let (dir, deps) = crates.get(&p).unwrap_or_else(|| panic!("no workspace crate {p}"));
        if seen.insert(dir.clone()) {
            todo.extend(deps.iter().cloned());
        }
    }
    seen
}

/// Whether `path` is a flag's value or lies under a directory flag's value.
fn passed(stage: &Stage, path: &str) -> bool {
    stage
        .flags
        .iter()
        .any(|(_, v)| path == v || path.starts_with(&format!("{v}/")))
}

/// The directory the `build_features.raw_glob` param reads from.
fn raw_dir() -> String {
    let text = std::fs::read_to_string(root().join("params.yaml")).expect("params.yaml");
    let params: Value = serde_norway::from_str(&text).expect("params.yaml parses");
    let glob = params["build_features"]["raw_glob"].as_str().expect("raw_glob");
    Path::new(glob).parent().expect("glob dir").display().to_string()
}

#[test]
fn every_tracked_path_is_passed_to_its_stage_as_a_flag() {
    let crates = workspace_crates();
    for stage in stages() {
        let code = built_from(&crates, &stage.binary);
        for dep in &stage.deps {
            let ok = dep == "Cargo.lock"
                || dep == "scripts/stage"
                || dep
                    .strip_prefix("crates/")
                    .and_then(|d| d.split('/').next())
                    .is_some_and(|d| code.contains(d))
                || passed(&stage, dep)
                || (stage.params.contains(&"build_features".to_owned()) && *dep == raw_dir());
            assert!(
                ok,
                "stage {}: dep {dep} is not passed as a flag nor source of its binary",
                stage.name
            );
        }
        for out in &stage.outs {
            assert!(
                passed(&stage, out),
                "stage {}: output {out} is not passed as a flag",
                stage.name
            );
        }
    }
}

#[test]
fn every_path_flag_is_tracked() {
    for stage in stages() {
        let tracked: Vec<&String> = stage.deps.iter().chain(&stage.outs).collect();
        for (flag, value) in &stage.flags {
            // params.yaml is tracked section by section (`params:`); the
            // registry accumulates across runs on purpose (see dvc.yaml).
            // The registry, the server's prediction log and the stage run log
            // accumulate across runs outside DVC.
            if value == "params.yaml" || ["registry", "prediction-log", "stage-runs"].contains(&flag.as_str())
            {
                continue;
            }
            let ok = tracked
                .iter()
                .any(|t| *t == value || t.starts_with(&format!("{value}/")));
            assert!(
                ok,
                "stage {}: --{flag} {value} is neither a dep nor an output",
                stage.name
            );
        }
    }
}

#[test]
fn each_stage_reads_its_own_params_section() {
    for stage in stages() {
        assert_eq!(stage.params, vec![stage.name.clone()], "stage {}", stage.name);
        assert!(
            stage
                .flags
                .iter()
                .any(|(f, v)| f == "params" && v == "params.yaml"),
            "stage {}: --params params.yaml",
            stage.name
        );
    }
}

#[test]
fn code_deps_are_exactly_the_crates_a_stage_is_built_from() {
    let crates = workspace_crates();
    for stage in stages() {
        let listed: BTreeSet<String> = stage
            .deps
            .iter()
            .filter_map(|d| d.strip_prefix("crates/"))
            .filter_map(|d| d.split('/').next())
            .map(str::to_owned)
            .collect();
        let code = built_from(&crates, &stage.binary);
        assert_eq!(
            listed, code,
            "stage {}: crate deps vs the crates its binary is built from",
            stage.name
        );
        for dir in &code {
            assert!(
                stage.deps.contains(&format!("crates/{dir}/src")),
                "stage {}: crates/{dir}/src is not a dep",
                stage.name
            );
        }
    }
}

/// The paths the Makefile's `clean` recipe removes.
fn make_clean_paths() -> BTreeSet<String> {
    let text = std::fs::read_to_string(root().join("Makefile")).expect("Makefile");
    let mut lines = text.lines().skip_while(|l| !l.starts_with("clean:")).skip(1);
    let mut recipe = String::new();
    for line in lines.by_ref() {
        if !line.starts_with('\t') {
            break;
        }
        recipe.push_str(line.trim().trim_end_matches('\\'));
        recipe.push(' ');
    }
    let words: Vec<&str> = recipe.split_whitespace().collect();
    assert_eq!(
        words.get(..2),
        Some(&["rm", "-rf"][..]),
        "clean is one rm -rf: {recipe}"
    );
    words[2..].iter().map(|w| (*w).to_owned()).collect()
}

/// Issue 11: `make clean` removes exactly what the pipeline generates and
/// git does not track; the registry has its own target.
#[test]
fn make_clean_removes_exactly_the_cached_outputs() {
    let mut generated: BTreeSet<String> = stages().into_iter().flat_map(|s| s.cached).collect();
    // What `dvc plots show` writes.
    generated.insert("dvc_plots".to_owned());
    assert_eq!(make_clean_paths(), generated);
}

/// Issue 12 item 10: the shipped pipeline runs its generated data on the
/// public development key because params.yaml opts into it, not by a silent
/// fallback; the ways this repository serves that pipeline (`make serve`,
/// docker compose, the end-to-end run) opt in explicitly too, compose never
/// spells the public key out, and the image itself does not opt in.
#[test]
fn the_development_key_is_opted_into_explicitly_wherever_the_default_pipeline_runs() {
    let read = |path: &str| std::fs::read_to_string(root().join(path)).expect(path);
    let params: Value = serde_norway::from_str(&read("params.yaml")).expect("params.yaml parses");
    assert_eq!(
        params["build_features"]["allow_development_key"].as_bool(),
        Some(true),
        "params.yaml: build_features.allow_development_key"
    );
    let makefile = read("Makefile");
    let serve_recipe: String = makefile
        .lines()
        .skip_while(|l| !l.starts_with("serve:"))
        .skip(1)
        .take_while(|l| l.starts_with('\t'))
        .collect();
    assert!(
        serve_recipe.contains("--allow-development-key"),
        "make serve: {serve_recipe}"
    );
    let compose = read("docker/compose.yaml");
    assert!(
        compose.contains("REVSPEND_ALLOW_DEVELOPMENT_KEY: ${REVSPEND_ALLOW_DEVELOPMENT_KEY:-true}"),
        "docker/compose.yaml opts in by default"
    );
    assert!(
        !compose.contains(revspend_core::pseudonym::DEVELOPMENT_KEY),
        "docker/compose.yaml spells out the public key"
    );
    let dockerfile = read("docker/Dockerfile");
    assert!(
        !dockerfile
            .lines()
            .any(|l| !l.trim_start().starts_with('#') && l.contains("ALLOW_DEVELOPMENT_KEY")),
        "the image must not opt into the development key"
    );
    assert!(read("scripts/e2e.sh").contains("--allow-development-key"));
}
