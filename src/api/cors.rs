//! Cross-origin rules. Pages of the origins in `--cors-origin` may read (the
//! CORS layer adds its headers to their reads); every route answers a
//! preflight (OPTIONS) with 204 and the methods and headers it takes, so a
//! browser never sees a 405. A browser write is let through only from the
//! agent's own origin (the Origin names the Host the request went to) or an
//! origin in `--cors-write-origin`: a page elsewhere that a user merely opens
//! cannot change how processes are scheduled, whatever its preflight said.

use actix_cors::Cors;
use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::http::Method;
use actix_web::{web, HttpRequest, HttpResponse};

use super::auth::WriteGuard;
use super::error::ApiError;
use super::host_check::strip_port;

/// Methods a preflight allows (the API has no other).
pub const ALLOW_METHODS: &str = "GET, POST, OPTIONS";
/// Request headers a preflight allows: a JSON body and a bearer token.
pub const ALLOW_HEADERS: &str = "Content-Type, Authorization";
/// How long a browser may reuse a preflight's answer.
const PREFLIGHT_MAX_AGE_S: u32 = 3600;

/// Marks a write response to a cross-origin page in `--cors-write-origin`,
/// whose CORS headers must therefore stay.
#[derive(Debug, Clone, Copy)]
pub struct CrossOriginWrite;

/// The CORS layer for reads: `*`, a comma-separated list of origins. It
/// leaves preflights to [`preflight`] and never refuses a request itself.
pub fn read_layer(origin: &str) -> Cors {
    let base = Cors::default()
        .allowed_methods([Method::GET])
        .disable_preflight()
        .max_age(PREFLIGHT_MAX_AGE_S as usize);
    if origin.trim() == "*" {
        base.allow_any_origin().send_wildcard()
    } else {
        origin
            .split(',')
            .map(str::trim)
            .filter(|o| !o.is_empty())
            .fold(base, |c, o| c.allowed_origin(o))
    }
}

/// Origins of pages that may write beside the agent's own.
#[derive(Debug, Clone, Default)]
pub struct WriteOrigins {
    /// `scheme://host[:port]`, lowercase, without the scheme's default port.
    listed: Vec<String>,
}

impl WriteOrigins {
    /// The list from `--cors-write-origin`; each must be `http(s)://host[:port]`.
    pub fn new(origins: &[String]) -> Result<Self, String> {
        let listed = origins
            .iter()
            .map(|o| {
                normalize_origin(o.trim().trim_end_matches('/')).ok_or_else(|| {
                    format!("--cors-write-origin {o:?} is not an origin such as https://ui.example:8443")
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { listed })
    }

    fn is_listed(&self, origin: &str) -> bool {
        normalize_origin(origin).is_some_and(|o| self.listed.contains(&o))
    }

    /// Whether a write with these headers may go on: `Ok(None)` without an
    /// Origin (not a browser) or from the agent's own origin, `Ok(Some(origin))`
    /// from a listed one (its answer keeps CORS headers), else 403.
    pub fn check(&self, headers: &HeaderMap) -> Result<Option<HeaderValue>, ApiError> {
        let Some(origin) = headers.get(header::ORIGIN) else {
            return Ok(None);
        };
        let text = String::from_utf8_lossy(origin.as_bytes());
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
        if host.is_some_and(|h| same_origin(&text, h)) {
            return Ok(None);
        }
        if self.is_listed(&text) {
            return Ok(Some(origin.clone()));
        }
        Err(ApiError::Forbidden(format!(
            "a write from the web page origin '{}' is refused: only the agent's own origin and \
             --cors-write-origin origins may write",
            super::auth::clip(&text)
        )))
    }
}

/// `scheme://host[:port]` in lowercase without the scheme's default port, or
/// `None` when `origin` is not an http(s) origin (e.g. `null`).
fn normalize_origin(origin: &str) -> Option<String> {
    let origin = origin.trim().to_ascii_lowercase();
    let (scheme, authority) = origin.split_once("://")?;
    let default_port = match scheme {
        "http" => ":80",
        "https" => ":443",
        _ => return None,
    };
    if authority.is_empty() || authority.contains(['/', '?', '#', '@']) {
        return None;
    }
    let authority = authority.strip_suffix(default_port).unwrap_or(authority);
    Some(format!("{scheme}://{authority}"))
}

/// Whether `origin` names the host and port of the request's Host header.
fn same_origin(origin: &str, host: &str) -> bool {
    let Some(origin) = normalize_origin(origin) else {
        return false;
    };
    let Some((scheme, authority)) = origin.split_once("://") else {
        return false;
    };
    let host = host.trim().to_ascii_lowercase();
    if strip_port(&host).is_empty() {
        return false;
    }
    let default_port = if scheme == "https" { ":443" } else { ":80" };
    let host = host.strip_suffix(default_port).unwrap_or(&host);
    authority == host
}

/// The answer to OPTIONS on any route: 204 with what a browser needs to send
/// the real request; the origin is granted by the CORS layer (reads) or here
/// (a `--cors-write-origin` origin).
pub async fn preflight(req: HttpRequest) -> HttpResponse {
    let allow = super::allowed_methods(&req.match_pattern().unwrap_or_default());
    let mut res = HttpResponse::NoContent();
    res.insert_header((header::ALLOW, allow))
        .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, ALLOW_METHODS))
        .insert_header((header::ACCESS_CONTROL_ALLOW_HEADERS, ALLOW_HEADERS))
        .insert_header((header::ACCESS_CONTROL_MAX_AGE, PREFLIGHT_MAX_AGE_S));
    let origin = req.headers().get(header::ORIGIN);
    let guard = req.app_data::<web::Data<WriteGuard>>();
    if let (Some(origin), Some(guard)) = (origin, guard) {
        let text = String::from_utf8_lossy(origin.as_bytes());
        if guard.policy.write_origins.is_listed(&text) {
            res.insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone()))
                .insert_header((header::VARY, "Origin"));
        }
    }
    res.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_origin_compares_host_and_port() {
        assert!(same_origin("http://127.0.0.1:8080", "127.0.0.1:8080"));
        assert!(same_origin("http://Node.Example", "node.example:80"));
        assert!(same_origin("https://node.example", "node.example"));
        assert!(same_origin("http://[::1]:8080", "[::1]:8080"));
        assert!(!same_origin("http://127.0.0.1:8081", "127.0.0.1:8080"));
        assert!(!same_origin("http://evil.example", "127.0.0.1:8080"));
        assert!(!same_origin("null", "127.0.0.1:8080"));
        assert!(!same_origin("http://a@127.0.0.1:8080", "127.0.0.1:8080"));
    }

    #[test]
    fn listed_origins_are_normalized() {
        let w = WriteOrigins::new(&["HTTPS://UI.example:443/".into()]).unwrap();
        assert!(w.is_listed("https://ui.example"));
        assert!(!w.is_listed("http://ui.example"));
        assert!(WriteOrigins::new(&["ui.example".into()]).is_err());
        assert!(WriteOrigins::new(&["http://ui.example/path".into()]).is_err());
    }
}
