//! `GET /experiment`: the routing in effect (experiment id, policy, each
//! variant's model), the bandit's state and what the experiment's queues
//! hold.

use actix_web::web;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::experiment::routing::{Algorithm, Policy};
use crate::{ApiError, AppState};

/// One variant as served.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VariantStatus {
    pub name: String,
    /// The registry alias or version the routing file names.
    pub model: String,
    pub model_version: String,
    pub registry_version: Option<String>,
}

/// One bandit arm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ArmStatus {
    pub variant: String,
    pub pulls: u64,
    pub feedbacks: u64,
    pub mean_reward: Option<f64>,
    /// Beta(α, β) with the prior α = β = 1.
    pub alpha: f64,
    pub beta: f64,
}

/// The `GET /experiment` response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ExperimentStatus {
    pub experiment: String,
    /// The policy as in the routing file (`kind` and its settings).
    #[schema(value_type = Object)]
    pub policy: Value,
    pub variants: Vec<VariantStatus>,
    /// A bandit policy's arms.
    pub bandit: Option<Vec<ArmStatus>>,
    /// The routing file, or none (the followed alias answers everything).
    pub routing_file: Option<String>,
    /// Recent predictions that can take feedback.
    pub pending_feedback: usize,
    /// Whether predictions and feedback are logged.
    pub prediction_log: bool,
}

/// The experiment in effect: policy, variants, bandit state.
#[utoipa::path(get, path = "/experiment", tag = "experiments", responses(
    (status = 200, description = "The routing in effect", body = ExperimentStatus),
    (status = 503, description = "Still loading", body = crate::ErrorBody)))]
pub(crate) async fn experiment(state: web::Data<AppState>) -> Result<web::Json<ExperimentStatus>, ApiError> {
    let deployment = state.deployment()?;
    let routing = &deployment.routing;
    let name = |i: usize| routing.variants[i].name.clone();
    let policy = match &routing.policy {
        Policy::Plain => json!({"kind": "plain"}),
        Policy::Ab { shares } => json!({
            "kind": "ab",
            "weights": routing.variants.iter().zip(shares).map(|(v, s)| (v.name.clone(), json!(s))).collect::<serde_json::Map<_, _>>(),
        }),
        Policy::Canary { variant, percent } => {
            json!({"kind": "canary", "variant": name(*variant), "percent": percent})
        }
        Policy::Shadow { variants, fraction } => json!({
            "kind": "shadow",
            "variants": variants.iter().map(|&i| name(i)).collect::<Vec<_>>(),
            "fraction": fraction,
        }),
        Policy::Bandit { algorithm, seed } => match algorithm {
            Algorithm::Thompson => json!({"kind": "bandit", "algorithm": "thompson", "seed": seed}),
            Algorithm::EpsilonGreedy { epsilon } => {
                json!({"kind": "bandit", "algorithm": "epsilon_greedy", "epsilon": epsilon, "seed": seed})
            }
        },
    };
    let variants = routing
        .variants
        .iter()
        .zip(&deployment.variants)
        .map(|(v, s)| VariantStatus {
            name: v.name.clone(),
            model: v.model.clone(),
            model_version: s.model_version().to_owned(),
            registry_version: s.origin.registry_version.clone(),
        })
        .collect();
    let bandit = deployment.bandit.as_ref().map(|b| {
        b.state()
            .arms
            .into_iter()
            .map(|arm| {
                let (alpha, beta) = arm.beta_posterior();
                ArmStatus {
                    mean_reward: arm.mean_reward(),
                    variant: arm.variant,
                    pulls: arm.pulls,
                    feedbacks: arm.feedbacks,
                    alpha,
                    beta,
                }
            })
            .collect()
    });
    Ok(web::Json(ExperimentStatus {
        experiment: routing.experiment.clone(),
        policy,
        variants,
        bandit,
        routing_file: state.routing_path().map(|p| p.display().to_string()),
        pending_feedback: state.pending.len(),
        prediction_log: state.log.writes(),
    }))
}
