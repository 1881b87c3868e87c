//! The one API error type: 4xx carry a message a client can act on, 5xx
//! are opaque to the client and logged in full.

use std::fmt;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::{Deserialize, Serialize};

/// Every way a request can fail. 4xx carry a message a client can act on
/// (and the offending field when there is one); 5xx are opaque to the client
/// and logged in full.
#[derive(Debug)]
pub enum ApiError {
    BadRequest {
        message: String,
        field: Option<String>,
    },
    /// A request that parses but breaks one of the quality suite's row
    /// rules (`revspend_core::contract::rules`): a 422 naming the rule.
    RuleViolation {
        rule: &'static str,
        field: String,
        message: String,
    },
    UnsupportedMediaType {
        got: Option<String>,
    },
    PayloadTooLarge {
        limit: usize,
    },
    /// No admin token was sent.
    Unauthorized,
    /// The admin token is wrong, or the admin routes are disabled.
    Forbidden(String),
    /// The request cannot be done in the server's state (a refused reload,
    /// nothing to roll back).
    Conflict(String),
    /// The client did not send the body it announced in time.
    BodyTimeout {
        after: std::time::Duration,
    },
    /// A batch with more rows than the server takes.
    TooManyRows {
        rows: usize,
        limit: usize,
    },
    NotFound {
        path: String,
    },
    MethodNotAllowed {
        allow: &'static str,
    },
    /// The first model is still loading (or failed to load).
    NotReady,
    /// Feedback for a prediction this server does not know (never made,
    /// or older than the feedback index keeps).
    UnknownPrediction {
        id: String,
    },
    /// Feedback for a prediction that already had it.
    DuplicateFeedback {
        id: String,
    },
    /// The server cannot take this now (a full queue); retry shortly.
    Unavailable(String),
    Internal(anyhow::Error),
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::BadRequest {
            message: message.into(),
            field: None,
        }
    }

    /// A 400 about one request field.
    pub fn field(field: &str, message: impl Into<String>) -> ApiError {
        ApiError::BadRequest {
            message: message.into(),
            field: Some(field.to_owned()),
        }
    }

    /// A 422: the request breaks the row rule `rule` on `field`.
    pub fn rule(rule: &'static str, field: &str, message: impl Into<String>) -> ApiError {
        ApiError::RuleViolation {
            rule,
            field: field.to_owned(),
            message: message.into(),
        }
    }

    /// The request field at fault, when there is one.
    pub fn field_name(&self) -> Option<&str> {
        match self {
            ApiError::BadRequest { field, .. } => field.as_deref(),
            ApiError::RuleViolation { field, .. } => Some(field),
            ApiError::UnknownPrediction { .. } | ApiError::DuplicateFeedback { .. } => Some("prediction_id"),
            _ => None,
        }
    }

    /// The row rule broken, for a 422.
    pub fn rule_name(&self) -> Option<&'static str> {
        match self {
            ApiError::RuleViolation { rule, .. } => Some(rule),
            _ => None,
        }
    }

    /// The same error about a row inside a larger body: `prefix` before the
    /// message and the field renamed to its path there (`rename`).
    pub fn in_row(self, prefix: &str, rename: impl FnOnce(&str) -> String) -> ApiError {
        match self {
            ApiError::BadRequest { message, field } => ApiError::BadRequest {
                message: format!("{prefix}: {message}"),
                field: field.as_deref().map(rename),
            },
            ApiError::RuleViolation { rule, field, message } => ApiError::RuleViolation {
                rule,
                field: rename(&field),
                message: format!("{prefix}: {message}"),
            },
            other => other,
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiError::BadRequest { message, .. } | ApiError::RuleViolation { message, .. } => {
                f.write_str(message)
            }
            ApiError::UnsupportedMediaType { got } => write!(
                f,
                "expected Content-Type: application/json, got {}",
                got.as_deref().unwrap_or("no Content-Type")
            ),
            ApiError::PayloadTooLarge { limit } => {
                write!(f, "the request body is larger than the limit of {limit} bytes")
            }
            ApiError::Unauthorized => f.write_str("the admin routes need `Authorization: Bearer <token>`"),
            ApiError::Forbidden(m) | ApiError::Conflict(m) | ApiError::Unavailable(m) => f.write_str(m),
            ApiError::UnknownPrediction { id } => write!(
                f,
                "no prediction {id} can take feedback here: it was not made by this server, or it is \
                 older than the predictions kept for feedback (--feedback-capacity, \
                 --feedback-window-hours)"
            ),
            ApiError::DuplicateFeedback { id } => {
                write!(f, "prediction {id} already has its feedback; nothing was changed")
            }
            ApiError::BodyTimeout { after } => write!(
                f,
                "the request body did not arrive within {} ms",
                after.as_millis()
            ),
            ApiError::TooManyRows { rows, limit } => {
                write!(f, "the batch has {rows} rows, more than the limit of {limit}")
            }
            ApiError::NotFound { path } => write!(
                f,
                "no route {path}; the routes are POST /predict, /predict/batch, /invocations, \
                 /v2/models/revspend/infer, /admin/reload, /admin/rollback and GET /health/live, \
                 /health/ready, /version, /ping, /v2/..."
            ),
            ApiError::MethodNotAllowed { allow } => write!(f, "method not allowed; use {allow}"),
            ApiError::NotReady => {
                f.write_str("not ready: the model and the online snapshot are loading; retry shortly")
            }
            ApiError::Internal(_) => f.write_str("internal error"),
        }
    }
}

/// The JSON body of every error response: `field` when one field is to
/// blame, `rule` when the row breaks a quality rule (a 422).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({
    "error": "rule `ranges.data`: field `data`: outside the accepted range [2000-01-01, 2099-12-31] (got \"9999-01-01\")",
    "field": "data",
    "rule": "ranges.data"
}))]
pub struct ErrorBody {
    pub error: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The row rule a 422 names (`ranges.data`, `no_control_characters`,
    /// `account_opened_before_purchase`, `known_merchant_group`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::RuleViolation { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::PayloadTooLarge { .. } | ApiError::TooManyRows { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::NotFound { .. } | ApiError::UnknownPrediction { .. } => StatusCode::NOT_FOUND,
            ApiError::DuplicateFeedback { .. } => StatusCode::CONFLICT,
            ApiError::BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::NotReady | ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let ApiError::Internal(source) = self {
            log::error!("internal error: {source:#}");
        }
        let mut response = HttpResponse::build(self.status_code());
        if let ApiError::MethodNotAllowed { allow } = self {
            response.insert_header((header::ALLOW, HeaderValue::from_static(allow)));
        }
        if let ApiError::NotReady | ApiError::Unavailable(_) = self {
            response.insert_header((header::RETRY_AFTER, HeaderValue::from_static("1")));
        }
        if let ApiError::Unauthorized = self {
            response.insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
        }
        response.json(ErrorBody {
            error: self.to_string(),
            field: self.field_name().map(str::to_owned),
            rule: self.rule_name().map(str::to_owned),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::MessageBody;

    fn body_of(error: &ApiError) -> (StatusCode, ErrorBody) {
        let response = error.error_response();
        let status = response.status();
        let bytes = response.into_body().try_into_bytes().expect("sized body");
        (status, serde_json::from_slice(&bytes).expect("JSON error body"))
    }

    #[test]
    fn internal_errors_are_opaque_to_the_client() {
        let error = ApiError::Internal(anyhow::anyhow!("secret detail").context("reading /etc/model"));
        let (status, body) = body_of(&error);
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            body,
            ErrorBody {
                error: "internal error".into(),
                field: None,
                rule: None,
            }
        );
    }

    #[test]
    fn client_errors_carry_message_and_field() {
        let (status, body) = body_of(&ApiError::field("valor", "field `valor`: bad"));
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body.field.as_deref(), Some("valor"));
        assert_eq!(body.error, "field `valor`: bad");

        let (status, body) = body_of(&ApiError::PayloadTooLarge { limit: 10 });
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(body.error.contains("10 bytes"), "{}", body.error);
        assert_eq!(body.field, None);

        let response = ApiError::MethodNotAllowed { allow: "POST" }.error_response();
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(
            response.headers().get(header::ALLOW).map(|v| v.as_bytes()),
            Some(&b"POST"[..])
        );
    }
}
