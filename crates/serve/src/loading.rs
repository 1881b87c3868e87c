//! Loading what the server serves, at start and without a restart: the
//! routing file, a model per variant (each validated: envelope and
//! registry checksum, key fingerprints against the snapshot, a smoke
//! prediction), the online snapshot and the bandit's state, assembled into
//! a [`Deployment`] swapped in whole. A variant whose new model is refused
//! keeps serving the one it had; a new variant that cannot load refuses
//! the whole reload.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::Context;
use arc_swap::ArcSwapOption;
use revspend_core::artifact;
use revspend_core::contract::ValueRanges;
use revspend_core::features::OnlineSnapshot;
use revspend_core::model::ModelArtifact;
use revspend_core::pseudonym::{self, Pseudonymiser};

use crate::drift::DriftWindow;
use crate::experiment::Deployment;
use crate::experiment::bandit::Bandit;
use crate::experiment::feedback::PendingIndex;
use crate::experiment::routing::{Policy, Routing};
use crate::experiment::shadow::ShadowPool;
use crate::metrics::Metrics;
use crate::prediction_log::PredictionLog;
use crate::{AppState, BatchLimits, Config, ModelOrigin, ModelSource, ReloadOutcome, Serving};

impl AppState {
    /// A state over an already loaded model and snapshot, one variant and
    /// no prediction log; refused when the key is not the one both were
    /// made with ([`check_keys`]) or the model fails its smoke prediction.
    /// It cannot reload (no source).
    pub fn new(
        model: ModelArtifact,
        snapshot: OnlineSnapshot,
        pseudonymiser: Pseudonymiser,
        max_body_bytes: usize,
    ) -> anyhow::Result<AppState> {
        let origin = ModelOrigin {
            loaded_at: revspend_core::registry::now_rfc3339(),
            ..ModelOrigin::default()
        };
        let serving = Serving::new(model, Arc::new(snapshot), origin, &pseudonymiser)?;
        let metrics = Metrics::new();
        let log = Arc::new(PredictionLog::disabled(metrics.log_counters()));
        let state = AppState {
            current: ArcSwapOption::empty(),
            pseudonymiser,
            max_body_bytes,
            limits: BatchLimits::default(),
            body_timeout: crate::config::DEFAULT_BODY_TIMEOUT,
            source: None,
            snapshot_path: None,
            routing_path: None,
            state_dir: None,
            log_dir: None,
            feedback_window: chrono::Duration::hours(crate::config::DEFAULT_FEEDBACK_WINDOW_HOURS),
            reloading: std::sync::Mutex::new(()),
            reloads: Default::default(),
            admin_token: None,
            shadow: ShadowPool::start(
                crate::config::DEFAULT_SHADOW_QUEUE,
                log.clone(),
                metrics.shadow_counters(),
            ),
            pending: PendingIndex::new(crate::config::DEFAULT_FEEDBACK_CAPACITY),
            log,
            drift: None,
            metrics,
            access_log: crate::access_log::AccessLog::default(),
        };
        let routing = Arc::new(Routing::single("default"));
        state.current.store(Some(Arc::new(Deployment::new(
            routing,
            vec![Arc::new(serving)],
            None,
            &state.pending,
        ))));
        Ok(state)
    }

    /// Reads the routing, models and snapshot named in `config`. Without a
    /// snapshot every customer is a cold start.
    pub fn load(config: &Config, pseudonymiser: Pseudonymiser) -> anyhow::Result<AppState> {
        let state = AppState::unloaded(config, pseudonymiser)?;
        state.load_first()?;
        Ok(state)
    }

    /// The state of a server configured by `config` before its models are
    /// loaded ([`AppState::load_first`]): it answers `/health/live`, and
    /// 503 on `/health/ready` and the scoring routes. Opens the prediction
    /// log (closing files a killed run left open).
    pub fn unloaded(config: &Config, pseudonymiser: Pseudonymiser) -> anyhow::Result<AppState> {
        let mut metrics = Metrics::new();
        let drift = match &config.drift_profile {
            Some(path) => {
                let window = Arc::new(DriftWindow::load(path, config.drift_window)?);
                log::info!(
                    "drift gauges on: PSI per feature against {} over the last {} s of requests",
                    path.display(),
                    config.drift_window.as_secs_f64()
                );
                metrics.register_drift(window.clone());
                Some(window)
            }
            None => {
                log::warn!(
                    "drift gauges off: no reference profile (--drift-profile or REVSPEND_DRIFT_PROFILE; \
                     {} when it exists), or --no-drift",
                    crate::DEFAULT_DRIFT_PROFILE
                );
                None
            }
        };
        let log = Arc::new(match (&config.prediction_log, &drift) {
            (Some(dir), _) => PredictionLog::start(
                dir,
                config.log_file_max_bytes,
                config.log_queue,
                metrics.log_counters(),
                drift.clone(),
            )?,
            (None, Some(drift)) => {
                log::warn!(
                    "no --prediction-log: predictions and feedback are not logged (a thread still \
                     bins predictions for the drift gauges)"
                );
                PredictionLog::drift_only(config.log_queue, metrics.log_counters(), drift.clone())?
            }
            (None, None) => {
                log::warn!("no --prediction-log: predictions and feedback are not logged");
                PredictionLog::disabled(metrics.log_counters())
            }
        });
        Ok(AppState {
            current: ArcSwapOption::empty(),
            pseudonymiser,
            max_body_bytes: config.max_body_bytes,
            limits: config.batch,
            body_timeout: config.body_timeout,
            source: Some(config.model.clone()),
            snapshot_path: config.snapshot.clone(),
            routing_path: config.routing.clone(),
            state_dir: config.state_dir.clone(),
            log_dir: config.prediction_log.clone(),
            feedback_window: chrono::Duration::hours(config.feedback_window_hours),
            reloading: std::sync::Mutex::new(()),
            reloads: Default::default(),
            admin_token: None,
            shadow: ShadowPool::start(config.shadow_queue, log.clone(), metrics.shadow_counters()),
            pending: PendingIndex::new(config.feedback_capacity),
            log,
            drift,
            metrics,
            access_log: crate::access_log::AccessLog::new(config.access_log_every),
        })
    }

    /// Loads the routing, a model per variant and the snapshot named at
    /// start ([`AppState::unloaded`]) and puts them in service (until then
    /// the server is live but not ready: 503), then rebuilds the feedback
    /// index from the prediction log.
    pub fn load_first(&self) -> anyhow::Result<()> {
        let routing = self.read_routing()?;
        let snapshot = match self.snapshot_path.as_deref() {
            Some(path) => Some(Arc::new(load_snapshot(path)?)),
            None => None,
        };
        let (deployment, _) = self.assemble(routing, snapshot, None)?;
        log_deployment(&deployment);
        self.follow_drift(&deployment);
        self.current.store(Some(Arc::new(deployment)));
        self.metrics.reload(true);
        if let Some(dir) = &self.log_dir {
            let since = revspend_core::artifact::prediction_log::now() - self.feedback_window;
            let (predictions, feedbacks) = self
                .pending
                .rebuild(dir, since)
                .with_context(|| format!("cannot read the prediction log {} back", dir.display()))?;
            if predictions > 0 {
                log::info!(
                    "feedback index: {predictions} predictions ({feedbacks} with feedback) since {since} \
                     read back from {}",
                    dir.display()
                );
            }
        }
        Ok(())
    }

    /// The routing in effect: the routing file, or one variant serving the
    /// followed alias (or the model file) to everyone.
    fn read_routing(&self) -> anyhow::Result<Arc<Routing>> {
        match (&self.routing_path, &self.source) {
            (Some(path), _) => Ok(Arc::new(Routing::read(path)?)),
            (None, Some(ModelSource::Registry { alias, .. })) => Ok(Arc::new(Routing::single(alias))),
            (None, _) => Ok(Arc::new(Routing::single("default"))),
        }
    }

    /// Where a variant's model comes from: the alias or version it names in
    /// the registry the server follows.
    fn variant_source(&self, model: &str) -> anyhow::Result<ModelSource> {
        match &self.source {
            Some(ModelSource::Registry { dir, .. }) => Ok(ModelSource::Registry {
                dir: dir.clone(),
                alias: model.to_owned(),
            }),
            Some(ModelSource::File(path)) if self.routing_path.is_none() => {
                Ok(ModelSource::File(path.clone()))
            }
            Some(ModelSource::File(_)) => anyhow::bail!(
                "the routing file names registry aliases or versions: start serve with --registry"
            ),
            None => anyhow::bail!("this server was built from a model in memory: nothing to load"),
        }
    }

    /// The registry version each routed variant's alias points to now
    /// (none for a model file or an unreadable registry).
    pub fn variant_targets(&self) -> Vec<Option<String>> {
        let Ok(deployment) = self.deployment() else {
            return Vec::new();
        };
        let index = match &self.source {
            Some(ModelSource::Registry { dir, .. }) => {
                revspend_core::registry::Registry::new(dir).index().ok()
            }
            _ => None,
        };
        deployment
            .routing
            .variants
            .iter()
            .map(|v| {
                index
                    .as_ref()
                    .and_then(|i| i.resolve(&v.model))
                    .map(|e| e.version.clone())
            })
            .collect()
    }

    /// The registry version each variant serves now.
    pub fn served_targets(&self) -> Vec<Option<String>> {
        self.deployment().map_or_else(
            |_| Vec::new(),
            |d| {
                d.variants
                    .iter()
                    .map(|s| s.origin.registry_version.clone())
                    .collect()
            },
        )
    }

    /// A model per variant of `routing`, validated against `snapshot`,
    /// and the bandit its policy needs. With a `previous` deployment: a
    /// variant whose alias still points to the version it serves keeps its
    /// model when `snapshot` is the one it serves with; a variant whose new
    /// model is refused keeps the one it had (named in the second value); a
    /// new variant that cannot load fails the whole assembly.
    fn assemble(
        &self,
        routing: Arc<Routing>,
        snapshot: Option<Arc<OnlineSnapshot>>,
        previous: Option<&Deployment>,
    ) -> anyhow::Result<(Deployment, Vec<String>)> {
        let mut variants: Vec<Arc<Serving>> = Vec::with_capacity(routing.variants.len());
        let mut refused = Vec::new();
        for variant in &routing.variants {
            let source = self.variant_source(&variant.model)?;
            let before = previous.and_then(|d| {
                let i = d.routing.variants.iter().position(|v| v.model == variant.model)?;
                Some(d.variants[i].clone())
            });
            if let (Some(before), ModelSource::Registry { dir, alias }) = (&before, &source) {
                let target = revspend_core::registry::Registry::new(dir)
                    .resolve(alias)
                    .ok()
                    .map(|e| e.version);
                let same_snapshot = snapshot
                    .as_ref()
                    .is_some_and(|s| Arc::ptr_eq(s, &before.snapshot));
                if same_snapshot && target.is_some() && target == before.origin.registry_version {
                    variants.push(before.clone());
                    continue;
                }
            }
            match load_serving(&source, snapshot.clone(), &self.pseudonymiser) {
                Ok(serving) => variants.push(Arc::new(serving)),
                Err(e) => match before {
                    Some(before) => {
                        refused.push(format!(
                            "variant {}: {e:#} (it keeps serving {})",
                            variant.name,
                            before.model_version()
                        ));
                        variants.push(before);
                    }
                    None => return Err(e.context(format!("variant {}", variant.name))),
                },
            }
        }
        let bandit = self.bandit_for(&routing, previous)?;
        Ok((Deployment::new(routing, variants, bandit, &self.pending), refused))
    }

    /// The bandit a routing's policy needs: the previous one when the
    /// experiment and its variants are the same, else the experiment's
    /// persisted state (or a fresh one).
    fn bandit_for(
        &self,
        routing: &Routing,
        previous: Option<&Deployment>,
    ) -> anyhow::Result<Option<Arc<Bandit>>> {
        let old = previous.and_then(|d| d.bandit.clone());
        let Policy::Bandit { algorithm, seed } = &routing.policy else {
            if let Some(old) = old {
                old.persist()?;
            }
            return Ok(None);
        };
        if let (Some(old), Some(previous)) = (&old, previous)
            && previous.routing.experiment == routing.experiment
            && previous
                .routing
                .variants
                .iter()
                .map(|v| &v.name)
                .eq(routing.variants.iter().map(|v| &v.name))
            && previous.routing.policy == routing.policy
        {
            return Ok(Some(old.clone()));
        }
        if let Some(old) = old {
            old.persist()?;
        }
        let names: Vec<&str> = routing.variants.iter().map(|v| v.name.as_str()).collect();
        let bandit = Bandit::restore(
            &routing.experiment,
            *algorithm,
            *seed,
            &names,
            self.state_dir.as_deref(),
        )?;
        Ok(Some(Arc::new(bandit)))
    }

    /// Reads the routing file again, loads what each variant's alias names
    /// now (and the snapshot file again when `snapshot` is set), validates
    /// and swaps the new deployment in. A refused model leaves its variant
    /// serving the one it had; when nothing could change, the reload is an
    /// error naming why (logged and counted) and everything stays.
    pub fn reload(&self, snapshot: bool) -> anyhow::Result<ReloadOutcome> {
        let _one_at_a_time = self
            .reloading
            .lock()
            .map_err(|_| anyhow::anyhow!("a reload panicked earlier"))?;
        let result = self.try_reload(snapshot);
        let swapped = result.as_ref().is_ok_and(|o| o.outcome == "swapped");
        let refusal = match &result {
            Ok(o) if !o.refused.is_empty() => Some(o.refused.join("; ")),
            Ok(_) => None,
            Err(e) => Some(format!("{e:#}")),
        };
        if swapped {
            self.reloads.swapped.fetch_add(1, Ordering::Relaxed);
        }
        self.metrics.reload(swapped);
        if let Ok(o) = &result
            && swapped
        {
            log::info!(
                "reload: model {} -> {} (experiment {})",
                o.from,
                o.to,
                o.experiment
            );
        }
        if let Some(refusal) = refusal {
            self.reloads.refused.fetch_add(1, Ordering::Relaxed);
            if !swapped {
                self.metrics.reload(false);
            }
            if let Ok(mut last) = self.reloads.last_error.lock() {
                *last = Some(refusal.clone());
            }
            log::error!("reload refused, what was serving stays: {refusal}");
        }
        result
    }

    fn try_reload(&self, snapshot: bool) -> anyhow::Result<ReloadOutcome> {
        anyhow::ensure!(
            self.source.is_some(),
            "this server was built from a model in memory: nothing to reload"
        );
        let current = self
            .deployment()
            .map_err(|_| anyhow::anyhow!("the first model is still loading"))?;
        let routing = self.read_routing()?;
        let snapshot = match (&self.snapshot_path, snapshot) {
            (None, _) => None,
            (Some(path), true) => Some(Arc::new(load_snapshot(path)?)),
            (Some(_), false) => Some(current.primary().snapshot.clone()),
        };
        let (next, refused) = self.assemble(routing, snapshot, Some(&current))?;
        let changed = next.routing != current.routing
            || next.variants.len() != current.variants.len()
            || next
                .variants
                .iter()
                .zip(&current.variants)
                .any(|(a, b)| !Arc::ptr_eq(a, b));
        if !changed && !refused.is_empty() {
            anyhow::bail!("{}", refused.join("; "));
        }
        let outcome = ReloadOutcome {
            outcome: if changed { "swapped" } else { "unchanged" }.into(),
            from: current.primary().model_version().to_owned(),
            to: next.primary().model_version().to_owned(),
            registry_version: next.primary().origin.registry_version.clone(),
            experiment: next.routing.experiment.clone(),
            refused,
        };
        if changed {
            if next.routing != current.routing {
                log_deployment(&next);
            }
            if let Some(drift) = &self.drift
                && next.primary().model_version() != current.primary().model_version()
                && let Err(e) = drift.reread()
            {
                log::error!("drift gauges: {e:#} (the profile read before stays)");
            }
            self.follow_drift(&next);
            self.current.store(Some(Arc::new(next)));
        }
        Ok(outcome)
    }

    /// Points the drift gauges at the features of `deployment`'s primary
    /// model (a change of features empties the window).
    fn follow_drift(&self, deployment: &Deployment) {
        let Some(drift) = &self.drift else { return };
        let features = &deployment.primary().model.features;
        let before = drift.features();
        let missing = drift.follow(features);
        let now = drift.features();
        // Said when the features change (and at the first load), not at
        // every reload.
        if before == now && !before.is_empty() {
            return;
        }
        log::info!("drift gauges: {} features ({})", now.len(), now.join(", "));
        if !missing.is_empty() {
            log::warn!(
                "drift gauges: the profile {} has no histogram of {} (no gauge)",
                drift.source().display(),
                missing.join(", ")
            );
        }
    }

    /// The registry and alias the server follows, when it follows one.
    pub fn followed(&self) -> Option<(&Path, &str)> {
        match &self.source {
            Some(ModelSource::Registry { dir, alias }) => Some((dir.as_path(), alias.as_str())),
            _ => None,
        }
    }

    /// Reloads that swapped a model in, and reloads refused.
    pub fn reload_counts(&self) -> (u64, u64) {
        (
            self.reloads.swapped.load(Ordering::Relaxed),
            self.reloads.refused.load(Ordering::Relaxed),
        )
    }

    /// The snapshot file's path, when there is one.
    pub fn snapshot_path(&self) -> Option<&Path> {
        self.snapshot_path.as_deref()
    }

    /// The routing file's path, when there is one.
    pub fn routing_path(&self) -> Option<&Path> {
        self.routing_path.as_deref()
    }
}

/// Says what is being served.
fn log_deployment(deployment: &Deployment) {
    let variants: Vec<String> = deployment
        .routing
        .variants
        .iter()
        .zip(&deployment.variants)
        .map(|(v, s)| format!("{} = {} ({})", v.name, v.model, s.model_version()))
        .collect();
    log::info!(
        "experiment {}: {:?}; variants {}",
        deployment.routing.experiment,
        deployment.routing.policy,
        variants.join(", ")
    );
}

/// Reads the model a source names and validates it against `snapshot`
/// (none: every customer is a cold start).
fn load_serving(
    source: &ModelSource,
    snapshot: Option<Arc<OnlineSnapshot>>,
    pseudonymiser: &Pseudonymiser,
) -> anyhow::Result<Serving> {
    let (path, model, registry_version) = source.load()?;
    let snapshot = snapshot.unwrap_or_else(|| {
        log::warn!("no online snapshot: every request is served as a cold start");
        Arc::new(OnlineSnapshot {
            as_of: None,
            rule: model.rule.clone(),
            customers: Default::default(),
            // No customers to mismatch: only the model's key is checked.
            key_fingerprint: model.key_fingerprint.clone(),
            // The quality suite's defaults (`config/quality.yaml` ships them).
            ranges: ValueRanges::default(),
        })
    });
    log::info!(
        "model {} ({}, {} features, threshold {:.4}) from {}",
        model.model_version,
        model.algorithm,
        model.features.len(),
        model.threshold,
        path.display()
    );
    let origin = ModelOrigin {
        path: path.display().to_string(),
        registry_version,
        registry_alias: match source {
            ModelSource::Registry { alias, .. } => Some(alias.clone()),
            ModelSource::File(_) => None,
        },
        loaded_at: revspend_core::registry::now_rfc3339(),
    };
    let named = match &origin.registry_version {
        Some(v) => format!("registry version {v} (model {})", model.model_version),
        None => format!("model {} ({})", model.model_version, origin.path),
    };
    Serving::new(model, snapshot, origin, pseudonymiser).with_context(|| format!("{named} refused"))
}

/// Refuses to serve with a pseudonymisation key other than the one the
/// snapshot's customers and the model's training data were pseudonymised
/// with, or a snapshot and a model made with different keys: no customer
/// would be found and every request would silently be a cold start. The
/// error names every fingerprint (a keyed hash of a fixed string, not the
/// key).
pub fn check_keys(
    pseudonymiser: &Pseudonymiser,
    model: &ModelArtifact,
    snapshot: &OnlineSnapshot,
) -> anyhow::Result<()> {
    let key = pseudonymiser.key_fingerprint();
    let named =
        |fingerprint: &str| format!("{fingerprint} ({})", pseudonym::describe_fingerprint(fingerprint));
    if model.key_fingerprint != snapshot.key_fingerprint {
        anyhow::bail!(
            "the model {} was trained on data pseudonymised with the key of fingerprint {}, but \
             the online snapshot was built with the key of fingerprint {}: rebuild both with one \
             key (`dvc repro` with REVSPEND_PSEUDONYM_KEY set as for serving)",
            model.model_version,
            named(&model.key_fingerprint),
            named(&snapshot.key_fingerprint)
        );
    }
    if key != model.key_fingerprint {
        anyhow::bail!(
            "the pseudonymisation key has fingerprint {}, but the online snapshot and the model {} \
             were made with the key of fingerprint {}: no customer would be found. Start serve \
             with the key build-features used (REVSPEND_PSEUDONYM_KEY; --allow-development-key \
             for the public development key)",
            named(&key),
            model.model_version,
            named(&model.key_fingerprint)
        );
    }
    if pseudonymiser.is_development_key() {
        log::warn!("serving with the public development pseudonymisation key: for generated data only");
    }
    log::info!(
        "pseudonymisation key fingerprint {} matches the snapshot and the model",
        named(&key)
    );
    Ok(())
}

fn load_snapshot(path: &Path) -> anyhow::Result<OnlineSnapshot> {
    let snapshot = artifact::read_snapshot(path).context(
        "cannot load the online snapshot (build it with build-features, or pass --no-snapshot \
         to serve cold starts only)",
    )?;
    log::info!(
        "online snapshot of {} customers as of {} from {}",
        snapshot.customers.len(),
        snapshot.as_of.map_or_else(|| "-".to_owned(), |d| d.to_string()),
        path.display()
    );
    Ok(snapshot)
}
