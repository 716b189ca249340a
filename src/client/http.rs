//! The one HTTP client of the agent's API, shared by `scx_pilot top` and the
//! operator commands: a base URL, an optional write token, TLS trust for an
//! https:// URL (`--ca-cert`), a timeout, and JSON in and out. Every error
//! names the URL it is about.

use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::replies::ErrorReply;
use crate::auth::Token;

pub const HEALTH_PATH: &str = "/health";
pub const METRICS_PATH: &str = "/api/v1/metrics";
pub const STRATEGIES_PATH: &str = "/api/v1/scheduling/strategies";
pub const STRATEGY_CONFIG_PATH: &str = "/api/v1/scheduling/strategies/config";
pub const PODS_PATH: &str = "/api/v1/pods/pids";

/// /health answers 503 when the agent is unhealthy, with the same body as its 200.
const UNHEALTHY_STATUS: u16 = 503;

pub struct ApiClient {
    agent: ureq::Agent,
    base_url: String,
    /// Sent as the bearer token with writes.
    token: Option<Token>,
}

impl ApiClient {
    /// A client of the agent at `base_url`, trusting `ca_cert` (a PEM file)
    /// for https:// when given, else the system's public roots.
    pub fn new(base_url: &str, timeout: Duration, ca_cert: Option<&Path>) -> Result<Self> {
        Ok(Self {
            agent: crate::tls::http_agent(timeout, ca_cert)?,
            base_url: base_url.trim_end_matches('/').to_string(),
            token: None,
        })
    }

    /// The same client, authenticating its writes with `token`.
    pub fn with_token(self, token: Token) -> Self {
        Self {
            token: Some(token),
            ..self
        }
    }

    /// The base URL, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// GET `path`: the JSON body of a 2xx answer; any other status is an error.
    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        let url = self.url(path);
        read_json(&url, self.agent.get(&url).call())
    }

    /// GET /health, whose unhealthy answer is a body to read, not an error.
    pub fn health<T: DeserializeOwned>(&self) -> Result<T> {
        let url = self.url(HEALTH_PATH);
        let answer = match self.agent.get(&url).call() {
            Err(ureq::Error::Status(UNHEALTHY_STATUS, r)) => Ok(r),
            other => other,
        };
        read_json(&url, answer)
    }

    /// POST `body` as JSON (with the bearer token, when the client has one):
    /// the JSON body of a 2xx answer.
    pub fn post<B, T>(&self, path: &str, body: &B) -> Result<T>
    where
        B: Serialize + ?Sized,
        T: DeserializeOwned,
    {
        let url = self.url(path);
        let text = serde_json::to_string(body).context("serializing the request body")?;
        let mut request = self.agent.post(&url);
        if let Some(token) = &self.token {
            request = request.set("Authorization", &format!("Bearer {}", token.expose()));
        }
        let answer = request
            .set("Content-Type", "application/json")
            .send_string(&text);
        read_json(&url, answer)
    }
}

/// The JSON body of a 2xx answer; a status error carries the agent's message.
fn read_json<T: DeserializeOwned>(
    url: &str,
    answer: Result<ureq::Response, ureq::Error>,
) -> Result<T> {
    match answer {
        Ok(r) => serde_json::from_reader(r.into_reader()).map_err(|e| {
            let what = if e.is_data() {
                "the answer is not the JSON expected"
            } else {
                "the answer is not JSON"
            };
            anyhow::Error::new(e).context(format!("{url}: {what}"))
        }),
        Err(ureq::Error::Status(code, r)) => bail!("{url}: HTTP {code}: {}", error_message(r)),
        // A transport error names the URL itself; its text already holds its
        // causes, so it is not chained again.
        Err(e) => Err(anyhow!("{e}")),
    }
}

/// The agent's `{"error": ...}` message, else the body as it came.
fn error_message(r: ureq::Response) -> String {
    let text = r.into_string().unwrap_or_default();
    serde_json::from_str::<ErrorReply>(&text)
        .map(|e| e.error)
        .unwrap_or(text)
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;

    use super::*;

    /// An HTTP server on a free port that answers each request with the next
    /// of `answers` (status line and body), then stops.
    fn serve(answers: &[(&'static str, &'static str)]) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let answers = answers.to_vec();
        std::thread::spawn(move || {
            for (status, body) in answers {
                let (mut conn, _) = listener.accept().unwrap();
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                // Read the whole request: closing with unread bytes resets the connection.
                let mut body_len = 0;
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        body_len = v.trim().parse().unwrap();
                    }
                    line.clear();
                }
                let mut body_in = vec![0; body_len];
                reader.read_exact(&mut body_in).unwrap();
                let _ = write!(
                    conn,
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        base
    }

    fn client(base: &str) -> ApiClient {
        ApiClient::new(&format!("{base}/"), Duration::from_secs(5), None).unwrap()
    }

    #[test]
    fn unhealthy_is_a_body_other_errors_name_the_url_and_the_agents_message() {
        let base = serve(&[
            ("503 Service Unavailable", r#"{"status": "unhealthy"}"#),
            ("503 Service Unavailable", r#"{"error": "busy"}"#),
            (
                "400 Bad Request",
                r#"{"success": false, "error": "execution_time too small"}"#,
            ),
            ("500 Internal Server Error", "plain text"),
            ("200 OK", "not json"),
            ("200 OK", r#"{"error": 5}"#),
        ]);
        let c = client(&base);
        assert_eq!(c.base_url(), base, "no trailing slash");
        let health: serde_json::Value = c.health().unwrap();
        assert_eq!(health["status"], "unhealthy");
        let err = c.get::<serde_json::Value>("/x").unwrap_err();
        assert_eq!(err.to_string(), format!("{base}/x: HTTP 503: busy"));
        let err = c.post::<_, serde_json::Value>("/y", &[1]).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("{base}/y: HTTP 400: execution_time too small")
        );
        let err = c.get::<serde_json::Value>("/z").unwrap_err();
        assert_eq!(err.to_string(), format!("{base}/z: HTTP 500: plain text"));
        let err = c.get::<serde_json::Value>("/j").unwrap_err();
        assert_eq!(err.to_string(), format!("{base}/j: the answer is not JSON"));
        let err = c.get::<ErrorReply>("/t").unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("{base}/t: the answer is not the JSON expected")
        );
    }

    #[test]
    fn transport_errors_name_the_url_once() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let base = format!("http://127.0.0.1:{port}");
        let err = client(&base)
            .get::<serde_json::Value>("/health")
            .unwrap_err();
        let text = format!("{err:#}");
        assert_eq!(text.matches(&base).count(), 1, "{text}");
        assert!(text.starts_with(&format!("{base}/health: ")), "{text}");
    }
}
