//! Every error the API returns, mapped to its status code in one place, with the
//! documented body `{"success": false, "error": "..."}`; and the JSON body extractor
//! whose failures map onto it.

use std::future::Future;
use std::pin::Pin;

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{dev::Payload, web, FromRequest, HttpRequest, HttpResponse, ResponseError};
use actix_web::{mime, HttpMessage};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use serde::Serialize;
use utoipa::ToSchema;

use crate::strategy::{ReplaceError, ValidationError};

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Always false.
    pub success: bool,
    /// What went wrong, for a person to read.
    #[schema(example = "Invalid JSON format: nr_queued: invalid type: string \"x\", expected u64")]
    pub error: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not JSON, or not of the expected shape or types.
    #[error("Invalid JSON format: {0}")]
    InvalidJson(String),
    /// Well-formed metrics with values that make no sense.
    #[error("Invalid metrics data: {0}")]
    InvalidMetrics(String),
    /// Well-formed strategies that cannot be accepted.
    #[error("Invalid scheduling strategies: {0}")]
    InvalidStrategy(String),
    /// A bad query string or parameter.
    #[error("Invalid request: {0}")]
    BadRequest(String),
    #[error("Content-Type must be application/json (got {0})")]
    UnsupportedMediaType(String),
    #[error("Request body is larger than the limit of {0} bytes")]
    PayloadTooLarge(usize),
    #[error("No route for {method} {path}")]
    NotFound { method: String, path: String },
    #[error("Method {method} is not allowed on {path} (allowed: {allow})")]
    MethodNotAllowed {
        method: String,
        path: String,
        allow: String,
    },
    #[error("Failed to get pod-pid mappings: {0}")]
    PodScan(String),
    /// A write without a valid bearer token.
    #[error("Unauthorized: {0}")]
    Unauthorized(String),
    /// A write refused for where it came from (e.g. its Host header).
    #[error("Forbidden: {0}")]
    Forbidden(String),
    /// A client over its write rate.
    #[error("Too many writes: at most {limit} per second per client; retry in {retry_after_s} s")]
    TooManyRequests { retry_after_s: u64, limit: u32 },
    /// Any other error (e.g. a middleware's), with its status kept.
    #[error("{message}")]
    Other { status: StatusCode, message: String },
}

impl From<ValidationError> for ApiError {
    fn from(e: ValidationError) -> Self {
        ApiError::InvalidStrategy(e.to_string())
    }
}

impl From<ReplaceError> for ApiError {
    fn from(e: ReplaceError) -> Self {
        match e {
            ReplaceError::PodScan(source) => ApiError::PodScan(source.to_string()),
            ReplaceError::Save { path, source } => ApiError::Other {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                message: format!(
                    "Failed to save scheduling strategies to {}: {source}",
                    path.display()
                ),
            },
        }
    }
}

impl ApiError {
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            success: false,
            error: self.to_string(),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::InvalidJson(_)
            | ApiError::InvalidMetrics(_)
            | ApiError::InvalidStrategy(_)
            | ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::NotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::PodScan(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Other { status, .. } => *status,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status_code());
        match self {
            ApiError::MethodNotAllowed { allow, .. } => {
                if let Ok(v) = HeaderValue::from_str(allow) {
                    res.insert_header((header::ALLOW, v));
                }
            }
            ApiError::Unauthorized(_) => {
                res.insert_header((header::WWW_AUTHENTICATE, r#"Bearer realm="scx_pilot""#));
            }
            ApiError::TooManyRequests { retry_after_s, .. } => {
                res.insert_header((header::RETRY_AFTER, retry_after_s.to_string()));
            }
            _ => {}
        }
        res.json(self.body())
    }
}

/// The request body limit, set by `--max-body-bytes`.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;

/// A JSON request body: Content-Type checked (415), size bounded (413), parsed
/// with the path of the offending field in the error (400). Trailing data after
/// the JSON value is an error.
pub struct JsonBody<T>(pub T);

fn json_content_type(req: &HttpRequest) -> Result<(), ApiError> {
    let shown = || {
        req.headers()
            .get(header::CONTENT_TYPE)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .unwrap_or_else(|| "none".into())
    };
    match req.mime_type() {
        Ok(Some(m))
            if m.type_() == mime::APPLICATION
                && (m.subtype() == mime::JSON || m.suffix() == Some(mime::JSON)) =>
        {
            Ok(())
        }
        _ => Err(ApiError::UnsupportedMediaType(shown())),
    }
}

/// Parse `bytes` as `T`, naming the field that failed.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." {
            ApiError::InvalidJson(inner.to_string())
        } else {
            ApiError::InvalidJson(format!("{path}: {inner}"))
        }
    })?;
    de.end().map_err(|e| ApiError::InvalidJson(e.to_string()))?;
    Ok(value)
}

impl<T: DeserializeOwned + 'static> FromRequest for JsonBody<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let limit = req
            .app_data::<web::Data<BodyLimit>>()
            .map(|l| l.0)
            .unwrap_or(DEFAULT_BODY_LIMIT);
        let checked = json_content_type(req).and_then(|()| {
            let declared = req
                .headers()
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            match declared {
                Some(n) if n > limit as u64 => Err(ApiError::PayloadTooLarge(limit)),
                _ => Ok(declared.unwrap_or(0) as usize),
            }
        });
        let mut payload = payload.take();
        Box::pin(async move {
            let declared = checked?;
            let mut body = web::BytesMut::with_capacity(declared.min(limit));
            while let Some(chunk) = payload.next().await {
                let chunk = chunk.map_err(|e| {
                    ApiError::BadRequest(format!("failed to read the request body: {e}"))
                })?;
                if body.len() + chunk.len() > limit {
                    return Err(ApiError::PayloadTooLarge(limit));
                }
                body.extend_from_slice(&chunk);
            }
            parse_json(&body).map(JsonBody)
        })
    }
}
