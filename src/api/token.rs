//! `POST /api/v1/auth/token`: Gthulhu's way to get a bearer token. The client
//! sends the PEM of our public key; when it is ours, it gets an RS256 JWT
//! ([`crate::jwt`]). The answer carries the token twice: at the top level,
//! where Gthulhu's clients of 2025 read it, and under `data` with its expiry,
//! where those of 2026 read it; each ignores the other.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::WriteGuard;
use super::error::{ApiError, ErrorBody, JsonBody};

/// Where the endpoint is served.
pub const TOKEN_PATH: &str = "/api/v1/auth/token";

/// The request: the public key the client holds. Other fields (such as the
/// `expired_at` some Gthulhu components send) are ignored.
#[derive(Debug, Deserialize, ToSchema)]
pub struct TokenRequest {
    /// Our public key, PEM (PKIX, `BEGIN PUBLIC KEY`), as in the agent's
    /// jwt_public.pem.
    pub public_key: String,
    /// Who asks; becomes the token's `client_id` and `sub` (made up from the
    /// time when absent or empty).
    #[serde(default)]
    pub client_id: Option<String>,
}

/// The token and when it stops being valid.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenData {
    pub token: String,
    /// Unix seconds.
    pub expired_at: i64,
}

/// The answer: both shapes Gthulhu's clients read.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    pub success: bool,
    #[schema(example = "Token generated successfully")]
    pub message: String,
    /// RFC3339, UTC.
    pub timestamp: String,
    /// The JWT (read by Gthulhu's clients of 2025).
    pub token: String,
    /// The JWT and its expiry (read by Gthulhu's clients of 2026).
    pub data: TokenData,
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/token",
    tag = "auth",
    request_body(content = TokenRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "A token for the client; use it as `Authorization: Bearer <token>`", body = TokenResponse),
        (status = 400, description = "Malformed JSON or no public_key", body = ErrorBody),
        (status = 401, description = "The public key is not this agent's", body = ErrorBody),
        (status = 404, description = "Tokens are off (--jwt off)", body = ErrorBody),
        (status = 405, description = "Wrong method", body = ErrorBody),
        (status = 415, description = "Content-Type is not application/json", body = ErrorBody),
    )
)]
pub async fn post_token(
    guard: web::Data<WriteGuard>,
    body: JsonBody<TokenRequest>,
) -> Result<HttpResponse, ApiError> {
    let Some(keys) = guard.policy.jwt.as_deref() else {
        return Err(ApiError::Other {
            status: StatusCode::NOT_FOUND,
            message: "No token endpoint: the agent runs with --jwt off".into(),
        });
    };
    let request = body.0;
    let issued = keys
        .issue(&request.public_key, request.client_id.as_deref())
        .map_err(|e| {
            if e.is_client_error() {
                ApiError::Unauthorized(format!("Public key verification failed: {e}"))
            } else {
                ApiError::Other {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    message: e.to_string(),
                }
            }
        })?;
    let client = match request.client_id.filter(|id| !id.is_empty()) {
        Some(id) => format!("{:?}", super::auth::clip(&id)),
        None => "without a client_id".into(),
    };
    let mut res = HttpResponse::Ok().json(TokenResponse {
        success: true,
        message: "Token generated successfully".into(),
        timestamp: crate::timefmt::now(),
        token: issued.token.clone(),
        data: TokenData {
            token: issued.token,
            expired_at: issued.expired_at_unix,
        },
    });
    super::auth::note(
        &mut res,
        format!(
            "issued a token to the client {client} valid until Unix {}",
            issued.expired_at_unix
        ),
    );
    Ok(res)
}
