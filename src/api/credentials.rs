//! Whether a request carries a credential: our static bearer token (compared in
//! constant time), or an RS256 JWT signed with our key, as Gthulhu's clients
//! present it. Neither the presented value nor the token ever appears in an
//! error: refusals are logged and sent back as they are.

use actix_web::http::header::{self, HeaderMap};
use subtle::ConstantTimeEq;

use super::error::ApiError;
use crate::auth::Token;
use crate::jwt::JwtKeys;

/// Who a request proved to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// The operator's token from --token-file.
    StaticToken,
    /// A JWT we issued, with its `client_id` claim.
    Jwt { client_id: String },
}

impl std::fmt::Display for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::StaticToken => f.write_str("static token"),
            Self::Jwt { client_id } => write!(f, "JWT of client {client_id}"),
        }
    }
}

/// What a protected request must carry one of.
#[derive(Clone, Copy)]
pub struct Accepted<'a> {
    pub token: &'a Token,
    pub jwt: Option<&'a JwtKeys>,
}

impl Accepted<'_> {
    /// The credential in `headers`' `Authorization: Bearer`, or why there is
    /// none; `what` names the request in the message ("write", "read").
    pub fn check(&self, headers: &HeaderMap, what: &str) -> Result<Credential, ApiError> {
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Err(ApiError::Unauthorized(format!(
                "this {what} needs an Authorization: Bearer <token> header"
            )));
        };
        let value = value.as_bytes();
        let presented = match value.split_first_chunk::<7>() {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case(b"bearer ") => rest.trim_ascii(),
            _ => {
                return Err(ApiError::Unauthorized(
                    "the Authorization header must use the Bearer scheme".into(),
                ))
            }
        };
        if bool::from(presented.ct_eq(self.token.as_bytes())) {
            return Ok(Credential::StaticToken);
        }
        let invalid = || ApiError::Unauthorized("the bearer token is not valid".into());
        let Some(jwt) = self.jwt else {
            return Err(invalid());
        };
        // A JWT is three dot-separated parts; anything else was meant as the
        // static token and gets the same answer as without JWTs.
        let Ok(text) = std::str::from_utf8(presented) else {
            return Err(invalid());
        };
        if text.bytes().filter(|&b| b == b'.').count() != 2 {
            return Err(invalid());
        }
        jwt.verify(text)
            .map(|claims| Credential::Jwt {
                client_id: claims.client_id,
            })
            .map_err(|e| ApiError::Unauthorized(format!("Invalid or expired token: {e}")))
    }
}
