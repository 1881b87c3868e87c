//! `/admin/*`, behind a bearer token (`REVSPEND_ADMIN_TOKEN`, compared in
//! constant time; without it the routes are disabled and say so): 401
//! without a token, 403 with a wrong one.
//!
//! - `POST /admin/reload`: load what the registry alias names now (and the
//!   snapshot file again), validate, swap; a refused model leaves the
//!   serving one in place (409 with the reason).
//! - `POST /admin/rollback`: move the followed alias back to its previous
//!   version in the registry (logged there with the reason), then reload.

use actix_web::http::header;
use actix_web::{HttpRequest, web};
use serde_json::{Value, json};

use crate::{ApiError, AppState};

/// Checks the `Authorization: Bearer` header against the token.
fn authorise(req: &HttpRequest, state: &AppState) -> Result<(), ApiError> {
    let Some(token) = &state.admin_token else {
        return Err(ApiError::Forbidden(
            "the admin routes are disabled: start the server with REVSPEND_ADMIN_TOKEN set".into(),
        ));
    };
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or(ApiError::Unauthorized)?;
    if token.matches(given.trim().as_bytes()) {
        Ok(())
    } else {
        Err(ApiError::Forbidden("the admin token is wrong".into()))
    }
}

/// Reloads the routing file, each variant's model and the snapshot.
///
/// Each new model is validated before it is swapped in; a refused one leaves its variant serving the
/// model it had, and a routing file that does not check leaves the routing in effect.
#[utoipa::path(
    post,
    path = "/admin/reload",
    tag = "admin",
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "Reloaded", body = crate::ReloadOutcome),
        (status = 401, description = "No token", body = crate::ErrorBody),
        (status = 403, description = "Wrong token, or admin routes disabled", body = crate::ErrorBody),
        (status = 409, description = "The new model was refused; the serving one stays", body = crate::ErrorBody),
    )
)]
pub(crate) async fn reload(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<web::Json<Value>, ApiError> {
    authorise(&req, &state)?;
    let outcome = web::block(move || state.reload(true))
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("the reload task failed: {e}")))?
        .map_err(|e| ApiError::Conflict(format!("reload refused, the serving model stays: {e:#}")))?;
    Ok(web::Json(json!(outcome)))
}

/// Moves `production` back to its previous version and swaps it in.
#[utoipa::path(
    post,
    path = "/admin/rollback",
    tag = "admin",
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The alias moved back and the model reloaded"),
        (status = 401, description = "No token", body = crate::ErrorBody),
        (status = 403, description = "Wrong token, or admin routes disabled", body = crate::ErrorBody),
        (status = 409, description = "Nothing to roll back, or the reload was refused", body = crate::ErrorBody),
    )
)]
pub(crate) async fn rollback(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<web::Json<Value>, ApiError> {
    authorise(&req, &state)?;
    let Some((dir, alias)) = state.followed().map(|(d, a)| (d.to_owned(), a.to_owned())) else {
        return Err(ApiError::Conflict(
            "this server serves a model file, not a registry alias: nothing to roll back".into(),
        ));
    };
    let done = web::block(move || -> Result<Value, ApiError> {
        let change = revspend_core::registry::Registry::new(&dir)
            .rollback(&alias, &revspend_core::registry::current_user())
            .map_err(|e| ApiError::Conflict(format!("cannot roll back `{alias}`: {e}")))?;
        let outcome = state.reload(false).map_err(|e| {
            ApiError::Conflict(format!(
                "rolled back in the registry, but the reload was refused: {e:#}"
            ))
        })?;
        Ok(json!({ "alias": change, "reload": outcome }))
    })
    .await
    .map_err(|e| ApiError::Internal(anyhow::anyhow!("the rollback task failed: {e}")))??;
    Ok(web::Json(done))
}
