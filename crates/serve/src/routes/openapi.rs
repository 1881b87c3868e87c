//! `GET /openapi.json`, generated from the handlers' and types'
//! definitions (utoipa), and `GET /docs`, Swagger UI served from assets
//! vendored in the binary: no CDN at run time, no download at build time.
//!
//! The request bodies are read by hand (as the CSV would hold them, with
//! field-by-field errors), so their schemas are the documentation types
//! below, with the README's examples.

use utoipa::{OpenApi, ToSchema};
use utoipa_swagger_ui::{Config, SwaggerUi};

use crate::{
    BatchItem, BatchResponse, ErrorBody, Health, ModelMetadata, ModelOrigin, Prediction, Readiness,
    ReloadOutcome, TensorMetadata, Version,
};

/// One card purchase in the raw file's field names. Values may be written
/// as the CSV holds them (strings such as `" 45,90 "`, `"02.07.2020"`) or
/// as JSON numbers and ISO dates. The raw file's header `" valor "` (with
/// its spaces) is accepted for `valor`; `valor` may be `null` (a missing
/// amount) but not absent.
#[derive(ToSchema)]
#[schema(example = json!({
    "id": "10013747760", "safra_abertura": "201711", "cidade": "SALVADOR", "estado": "BA",
    "idade": "30", "sexo": "M", "limite_total": "800.0", "limite_disp": "35.00",
    "data": "02.07.2020", "valor": " 45,90 ", "grupo_estabelecimento": "VESTUARIO",
    "cidade_estabelecimento": "SALVADOR", "pais_estabelecimento": "BR"
}))]
#[allow(dead_code)]
pub struct Transaction {
    /// Customer id: digits, as a string or an integer.
    id: String,
    /// Account-opening cohort `yyyymm`.
    safra_abertura: Option<String>,
    cidade: Option<String>,
    estado: Option<String>,
    idade: Option<String>,
    /// `F` or `M`.
    sexo: Option<String>,
    /// Total limit: `"8.500,00"`, `"8500.0"` or a number.
    limite_total: String,
    /// Available limit at the time of the purchase.
    limite_disp: String,
    /// `dd.mm.yyyy` or `yyyy-mm-dd`.
    data: String,
    /// Amount: `" 1.234,56 "`, `" -   "` (missing), a number or null.
    /// Required: absent is an error, null is a missing amount.
    #[schema(required = true)]
    valor: Option<String>,
    /// Merchant group, e.g. `VESTUARIO`, `SUPERMERCADOS`.
    grupo_estabelecimento: Option<String>,
    cidade_estabelecimento: Option<String>,
    pais_estabelecimento: Option<String>,
}

/// MLflow's scoring request: exactly one of the four shapes, and optional
/// `params` (ignored: the model takes none).
#[derive(ToSchema)]
#[schema(example = json!({"dataframe_records": [{
    "id": "10013747760", "limite_total": "800.0", "limite_disp": "35.00",
    "data": "02.07.2020", "valor": " 45,90 ", "grupo_estabelecimento": "VESTUARIO"
}]}))]
#[allow(dead_code)]
pub struct MlflowRequest {
    /// `{"columns": [...], "data": [[...], ...]}`, optional `index`.
    #[schema(value_type = Option<Object>)]
    dataframe_split: Option<serde_json::Value>,
    /// An array of records (column → value).
    dataframe_records: Option<Vec<Transaction>>,
    /// An array of records.
    instances: Option<Vec<Transaction>>,
    /// An array of records, or an object of columns (column → values).
    #[schema(value_type = Option<Object>)]
    inputs: Option<serde_json::Value>,
    #[schema(value_type = Option<Object>)]
    params: Option<serde_json::Value>,
}

/// MLflow's scoring answer: one record per row, in order.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct MlflowResponse {
    predictions: Vec<Prediction>,
}

/// An Open Inference Protocol tensor.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Tensor {
    /// For inputs, a raw field name (`id`, `limite_total`, …); for outputs
    /// `probability`, `is_revenge_spending`, `cold_start`, `prediction_id`.
    name: String,
    /// `[N]` or `[N, 1]`.
    shape: Vec<i64>,
    /// `BYTES`, `FP64`, `INT64`, `BOOL`, …
    datatype: String,
    /// N values, flat or one per row.
    #[schema(value_type = Vec<Object>)]
    data: Vec<serde_json::Value>,
}

/// An Open Inference Protocol inference request.
#[derive(ToSchema)]
#[schema(example = json!({"id": "req-1", "inputs": [
    {"name": "id", "shape": [1], "datatype": "BYTES", "data": ["10013747760"]},
    {"name": "limite_total", "shape": [1], "datatype": "BYTES", "data": ["800.0"]},
    {"name": "limite_disp", "shape": [1], "datatype": "BYTES", "data": ["35.00"]},
    {"name": "data", "shape": [1], "datatype": "BYTES", "data": ["02.07.2020"]},
    {"name": "valor", "shape": [1], "datatype": "BYTES", "data": [" 45,90 "]},
    {"name": "grupo_estabelecimento", "shape": [1], "datatype": "BYTES", "data": ["VESTUARIO"]}
]}))]
#[allow(dead_code)]
pub struct InferRequest {
    id: Option<String>,
    inputs: Vec<Tensor>,
    /// The output tensors wanted, by `name` (all by default).
    #[schema(value_type = Option<Vec<Object>>)]
    outputs: Option<Vec<serde_json::Value>>,
}

/// An Open Inference Protocol inference answer.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct InferResponse {
    model_name: String,
    model_version: String,
    id: Option<String>,
    outputs: Vec<Tensor>,
}

/// The OpenAPI document of every route.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "revspend",
        description = "Flags revenge spending: a superfluous card purchase made while the card's \
                       available limit is nearly used up, judged from what is known before the \
                       purchase is authorised."
    ),
    paths(
        super::predict::predict,
        super::batch::batch,
        super::feedback::feedback,
        super::experiment::experiment,
        super::mlflow::invocations,
        super::mlflow::ping,
        super::v2::live,
        super::v2::ready,
        super::v2::server_metadata,
        super::v2::model_metadata,
        super::v2::model_ready,
        super::v2::infer,
        super::v2::version_metadata,
        super::v2::version_ready,
        super::v2::version_infer,
        super::health::live,
        super::health::ready,
        super::health::health,
        super::version::version,
        super::metrics::metrics,
        super::admin::reload,
        super::admin::rollback,
    ),
    components(schemas(
        Transaction, Prediction, BatchItem, BatchResponse, ErrorBody, Health, Readiness, Version,
        ModelOrigin, ModelMetadata, TensorMetadata, ReloadOutcome, MlflowRequest, MlflowResponse,
        Tensor, InferRequest, InferResponse, super::feedback::FeedbackRequest,
        super::feedback::FeedbackResult, super::feedback::FeedbackBatch, super::feedback::FeedbackItem,
        super::experiment::ExperimentStatus, super::experiment::VariantStatus, super::experiment::ArmStatus
    )),
    modifiers(&BearerAuth),
    tags(
        (name = "predict", description = "Scoring purchases"),
        (name = "experiments", description = "Online experiments: the routing in effect, and feedback"),
        (name = "mlflow", description = "MLflow's scoring protocol"),
        (name = "v2", description = "The Open Inference Protocol (KServe V2)"),
        (name = "operations", description = "Health, version, metrics"),
        (name = "admin", description = "Model lifecycle, behind REVSPEND_ADMIN_TOKEN"),
    )
)]
pub struct ApiDoc;

/// The admin routes' bearer token as a security scheme.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// `/docs` (Swagger UI) and `/openapi.json`.
///
/// Swagger UI's online validator is off: by default, served from any host
/// but localhost or 127.0.0.1, the page loads a badge from
/// validator.swagger.io with this server's `/openapi.json` URL in the query
/// (scripts/check-docs-browser.sh opens the page under another name to see
/// it; issue 15).
pub(crate) fn docs() -> SwaggerUi {
    SwaggerUi::new("/docs/{_:.*}")
        .url("/openapi.json", ApiDoc::openapi())
        .config(Config::default().validator_url("none"))
}
