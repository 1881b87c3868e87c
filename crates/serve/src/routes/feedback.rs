//! `POST /feedback`: what happened after a prediction (the purchase was
//! revenge spending or not, or a numeric reward), seconds or days later.
//! It is logged next to the prediction and rewards the variant that made
//! it (the bandit learns from it). An unknown or duplicate prediction id
//! gets a 4xx and changes nothing. A JSON array sends many at once, each
//! with its own result.

use actix_web::{HttpRequest, web};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{check_json_content_type, read_body};
use crate::experiment::Deployment;
use crate::experiment::feedback::Refusal;
use crate::experiment::routing::{Policy, RewardTable};
use crate::{ApiError, AppState};
use revspend_core::artifact::prediction_log::{self, FeedbackRecord};

/// One feedback.
#[derive(Debug, Clone, PartialEq, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"prediction_id": "01a22db4-c095-754f-ad8f-596a0f323c2c", "outcome": true}))]
pub struct FeedbackRequest {
    /// The `prediction_id` of a response.
    pub prediction_id: String,
    /// Whether the purchase turned out to be revenge spending: the reward
    /// follows from the routing file's reward table (by default 1 for a
    /// right decision, 0 for a wrong one).
    #[serde(default)]
    pub outcome: Option<bool>,
    /// Or the reward itself (in [0, 1] under a bandit).
    #[serde(default)]
    pub reward: Option<f64>,
}

/// What one feedback did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FeedbackResult {
    pub prediction_id: String,
    pub experiment: String,
    /// The variant and model of the prediction, credited with the reward.
    pub variant: String,
    pub model_version: String,
    pub reward: f64,
    /// Whether the reward reached a bandit (the prediction's experiment
    /// runs one now).
    pub bandit: bool,
}

/// One entry of a batch's answer: the result, or why it was refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum FeedbackItem {
    Accepted {
        index: usize,
        #[serde(flatten)]
        result: FeedbackResult,
    },
    Refused {
        index: usize,
        status: u16,
        error: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        field: Option<String>,
    },
}

/// The answer to a JSON array of feedback.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FeedbackBatch {
    pub accepted: usize,
    pub refused: usize,
    pub results: Vec<FeedbackItem>,
}

/// Reports what happened after a prediction.
///
/// One object, or a JSON array of them (each gets its own result, in
/// order). Logged next to the prediction; rewards its variant.
#[utoipa::path(
    post,
    path = "/feedback",
    tag = "experiments",
    request_body(content = FeedbackRequest, content_type = "application/json",
                 description = "One feedback, or a JSON array of them"),
    responses(
        (status = 200, description = "Taken (for an array: one result per entry)", body = FeedbackResult),
        (status = 400, description = "Not a feedback: the field is named", body = crate::ErrorBody),
        (status = 404, description = "No such prediction (or older than the server keeps)", body = crate::ErrorBody),
        (status = 409, description = "The prediction already has its feedback", body = crate::ErrorBody),
        (status = 422, description = "A reward outside [0, 1] under a bandit", body = crate::ErrorBody),
        (status = 503, description = "The prediction log is full; retry", body = crate::ErrorBody),
    )
)]
pub(crate) async fn feedback(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<web::Json<Value>, ApiError> {
    check_json_content_type(&req)?;
    let bytes = read_body(&req, body, state.limits.max_body_bytes, state.body_timeout).await?;
    let value: Value = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("the request body is not valid JSON: {e}")))?;
    let deployment = state.deployment()?;
    // Logging waits for the writer and the bandit writes its state: off
    // the async workers.
    web::block(move || match value {
        Value::Array(items) => {
            let batch = take_many(&state, &deployment, items)?;
            Ok(web::Json(serde_json::json!(batch)))
        }
        single => {
            let mut results = take_many(&state, &deployment, vec![single])?.results;
            match results.pop() {
                Some(FeedbackItem::Accepted { result, .. }) => Ok(web::Json(serde_json::json!(result))),
                Some(FeedbackItem::Refused { .. }) | None => Err(ApiError::Internal(anyhow::anyhow!(
                    "a refused single feedback was not returned as an error"
                ))),
            }
        }
    })
    .await
    .map_err(|e| ApiError::Internal(anyhow::anyhow!("the feedback task failed: {e}")))?
}

/// A feedback checked against the index, ready to log.
struct Taken {
    index: usize,
    id: u128,
    record: FeedbackRecord,
    bandit: bool,
}

/// Takes each entry: checks it, finds its prediction, logs the accepted
/// ones and credits them. A single entry's refusal is the request's error;
/// in an array each refusal is its own result.
fn take_many(
    state: &AppState,
    deployment: &Deployment,
    items: Vec<Value>,
) -> Result<FeedbackBatch, ApiError> {
    let single = items.len() == 1;
    let mut results: Vec<Option<FeedbackItem>> = vec![None; items.len()];
    let mut taken: Vec<Taken> = Vec::with_capacity(items.len());
    for (index, item) in items.into_iter().enumerate() {
        match take_one(state, deployment, index, item, single) {
            Ok(t) => taken.push(t),
            Err(e) if single => return Err(e),
            Err(e) => {
                use actix_web::ResponseError;
                results[index] = Some(FeedbackItem::Refused {
                    index,
                    status: e.status_code().as_u16(),
                    error: format!("[{index}]: {e}"),
                    field: e.field_name().map(|f| format!("[{index}].{f}")),
                });
            }
        }
    }
    if !taken.is_empty() {
        let records: Vec<FeedbackRecord> = taken.iter().map(|t| t.record.clone()).collect();
        if !state.log.feedback(records) {
            for t in &taken {
                state.pending.give_back(t.id);
            }
            return Err(ApiError::Unavailable(
                "the prediction log cannot take feedback now (queue full or a write error): \
                 nothing was recorded; retry"
                    .into(),
            ));
        }
        if let Some(bandit) = &deployment.bandit {
            let rewards: Vec<(&str, f64)> = taken
                .iter()
                .filter(|t| t.bandit)
                .map(|t| (t.record.variant.as_str(), t.record.reward))
                .collect();
            if !rewards.is_empty()
                && let Err(e) = bandit.credit(&rewards)
            {
                // Logged and learned in memory; the state file catches up at
                // the next write or at shutdown.
                log::error!("{e:#}");
            }
        }
    }
    let accepted = taken.len();
    for t in taken {
        state.metrics.feedback(&t.record.variant, "accepted");
        results[t.index] = Some(FeedbackItem::Accepted {
            index: t.index,
            result: FeedbackResult {
                prediction_id: t.record.prediction_id,
                experiment: t.record.experiment,
                variant: t.record.variant,
                model_version: t.record.model_version,
                reward: t.record.reward,
                bandit: t.bandit,
            },
        });
    }
    let results: Vec<FeedbackItem> = results.into_iter().flatten().collect();
    Ok(FeedbackBatch {
        accepted,
        refused: results.len() - accepted,
        results,
    })
}

fn take_one(
    state: &AppState,
    deployment: &Deployment,
    index: usize,
    item: Value,
    single: bool,
) -> Result<Taken, ApiError> {
    let request: FeedbackRequest = serde_json::from_value(item).map_err(|e| {
        let at = if single {
            String::new()
        } else {
            format!("[{index}]: ")
        };
        ApiError::bad_request(format!(
            "{at}a feedback is {{\"prediction_id\": \"...\", \"outcome\": true|false}} or \
             {{\"prediction_id\": \"...\", \"reward\": number}}: {e}"
        ))
    })?;
    let id = uuid::Uuid::parse_str(request.prediction_id.trim()).map_err(|e| {
        state.metrics.feedback("", "invalid");
        ApiError::field(
            "prediction_id",
            format!("`prediction_id` is not a prediction id (a UUID): {e}"),
        )
    })?;
    let under_bandit = matches!(deployment.routing.policy, Policy::Bandit { .. });
    let reward_given = match (request.outcome, request.reward) {
        (Some(_), Some(_)) => {
            return Err(ApiError::field("reward", "give `outcome` or `reward`, not both"));
        }
        (None, None) => {
            return Err(ApiError::field(
                "outcome",
                "give `outcome` (true: the purchase was revenge spending) or `reward`",
            ));
        }
        (None, Some(r)) if !r.is_finite() => {
            return Err(ApiError::field(
                "reward",
                format!("`reward` must be a finite number, got {r}"),
            ));
        }
        (None, Some(r)) if under_bandit && !(0.0..=1.0).contains(&r) => {
            return Err(ApiError::rule(
                "bandit_reward_range",
                "reward",
                format!("`reward` {r} is outside [0, 1], the range of a Beta-Bernoulli bandit's rewards"),
            ));
        }
        (None, Some(r)) => Some(r),
        (Some(_), None) => None,
    };
    let pending = state.pending.take(id.as_u128()).map_err(|refusal| {
        let id = id.to_string();
        match refusal {
            Refusal::Unknown => {
                state.metrics.feedback("", "unknown");
                ApiError::UnknownPrediction { id }
            }
            Refusal::Duplicate => {
                state.metrics.feedback("", "duplicate");
                ApiError::DuplicateFeedback { id }
            }
        }
    })?;
    // The reward table of the experiment the prediction was made in; one
    // that ended meanwhile is rewarded by the default table.
    let same_experiment = *pending.experiment == *deployment.experiment;
    let table = if same_experiment {
        deployment.routing.reward
    } else {
        RewardTable::default()
    };
    let reward = reward_given
        .or_else(|| request.outcome.map(|o| table.reward(pending.decision, o)))
        .unwrap_or_default();
    Ok(Taken {
        index,
        id: id.as_u128(),
        bandit: same_experiment && deployment.bandit.is_some(),
        record: FeedbackRecord {
            time: prediction_log::timestamp(prediction_log::now()),
            prediction_id: id.to_string(),
            experiment: pending.experiment.to_string(),
            variant: pending.variant.to_string(),
            model_version: pending.model_version.to_string(),
            decision: pending.decision,
            outcome: request.outcome,
            reward,
        },
    })
}
