//! Gthulhu-compatible auth and CORS through the real binary over real HTTP:
//! the token endpoint as each Gthulhu client calls and decodes it (Go's
//! strictness), its JWT on protected routes, forged tokens refused, nothing
//! logged that holds a token, OPTIONS on every route, and which web pages
//! may write.

#[path = "fixtures/agent.rs"]
mod agent;
#[path = "fixtures/gthulhu_wire.rs"]
mod gthulhu_wire;
#[path = "fixtures/samples.rs"]
mod samples;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use agent::{Agent, TempDir};
use gthulhu_wire::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

/// An answer: status, the CORS and Allow headers, body (JSON, or Null when empty).
struct Answer {
    status: u16,
    body: Value,
    headers: Vec<(&'static str, String)>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    }
}

const KEPT_HEADERS: [&str; 4] = [
    "access-control-allow-origin",
    "access-control-allow-methods",
    "access-control-allow-headers",
    "allow",
];

fn call(
    agent: &Agent,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: Option<&[u8]>,
) -> Answer {
    let mut req = ureq::request(method, &agent.url(path)).timeout(Duration::from_secs(10));
    for (k, v) in headers {
        req = req.set(k, v);
    }
    let result = match body {
        Some(b) => req.send_bytes(b),
        None => req.call(),
    };
    let response = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{method} {path}: {e}"),
    };
    let status = response.status();
    let headers = KEPT_HEADERS
        .iter()
        .filter_map(|h| response.header(h).map(|v| (*h, v.to_string())))
        .collect();
    let text = response.into_string().unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{method} {path}: {status} not JSON ({e}): {text}"))
    };
    Answer {
        status,
        body,
        headers,
    }
}

/// Replay one client request byte for byte (headers and body).
fn replay(agent: &Agent, req: &WireRequest) -> Answer {
    call(
        agent,
        req.method,
        req.path,
        &req.headers,
        req.body.as_deref(),
    )
}

fn bearer(token: &str) -> Vec<(&'static str, String)> {
    vec![
        ("Content-Type", "application/json".to_string()),
        ("Authorization", format!("Bearer {token}")),
    ]
}

fn post_metrics(agent: &Agent, headers: &[(&str, String)]) -> Answer {
    let body = samples::metrics_of(4242).to_string();
    call(agent, "POST", METRICS_PATH, headers, Some(body.as_bytes()))
}

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// A 401 as Go clients decode it, naming `needle`.
fn assert_401(a: &Answer, needle: &str, what: &str) {
    assert_eq!(a.status, 401, "{what}: {}", a.body);
    go_decode(ERROR_ANSWER, &a.body).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(a.body["success"], json!(false), "{what}");
    let error = a.body["error"].as_str().unwrap();
    assert!(error.contains(needle), "{what}: {error:?} lacks {needle:?}");
}

/// base64url without padding, for hand-made tokens.
fn b64url(bytes: &[u8]) -> String {
    const ABC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().fold(0u32, |n, &b| n << 8 | u32::from(b)) << (8 * (3 - chunk.len()));
        for i in 0..=chunk.len() {
            out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

fn claims(exp_offset_s: i64) -> Value {
    let now = now_unix();
    json!({"client_id": "forger", "iss": "bss-api-server", "sub": "forger",
           "iat": now - 3600, "nbf": now - 3600, "exp": now + exp_offset_s})
}

/// A PKCS#1 PEM private key file as a signing key.
fn rsa_key(path: &Path) -> EncodingKey {
    use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey};
    let key = rsa::RsaPrivateKey::from_pkcs1_pem(read(path).trim()).unwrap();
    EncodingKey::from_rsa_der(key.to_pkcs1_der().unwrap().as_bytes())
}

fn sign(alg: Algorithm, key: &EncodingKey, claims: &Value) -> String {
    jsonwebtoken::encode(&Header::new(alg), claims, key).unwrap()
}

#[test]
fn gthulhu_clients_get_a_token_in_both_shapes_and_use_it() {
    let mut agent = Agent::start_temp("gth-token", &["--auth-reads"]);
    let state = agent.state_dir.clone();
    let public = state.join("jwt_public.pem");
    let pem = read(&public);
    assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\n"), "{pem}");
    assert_eq!(mode(&public), 0o600, "the public key is a credential");
    assert_eq!(mode(&state.join("jwt_private.pem")), 0o600);

    // The scheduler of 2025-08 and the plugin of 2025-12 read the top level,
    // the plugin of 2026-02 reads `data`: one answer serves all three.
    let answer = replay(&agent, &scheduler_2025_08::token_request(&pem));
    let old = scheduler_2025_08::accept_token(answer.status, &answer.body).unwrap();
    let mid = plugin_2025_12::accept_token(answer.status, &answer.body).unwrap();
    let new = plugin_2026_02::accept_token(answer.status, &answer.body).unwrap();
    assert_eq!(old.token, new.token);
    assert_eq!(mid.token, new.token);
    assert_eq!(
        answer.body["message"],
        json!("Token generated successfully")
    );
    let until = new.reuse_until_unix.unwrap();
    assert!(
        (until - (now_unix() + 24 * 3600)).abs() < 60,
        "expired_at {until}"
    );
    let jwt = new.token.clone();

    // The web UI: pasted (trimmed) key, its own origin.
    let ui = replay(
        &agent,
        &web_ui_2025_08::token_request(&pem, Some(&agent.base)),
    );
    let ui_token = web_ui_2025_08::accept_token(&ui.body).unwrap();

    // A manager-style request with client_id and an unknown field.
    let body = json!({"public_key": pem, "client_id": "manager-1", "expired_at": 0}).to_string();
    let json_only = [("Content-Type", "application/json".to_string())];
    let a = call(
        &agent,
        "POST",
        TOKEN_PATH,
        &json_only,
        Some(body.as_bytes()),
    );
    assert_eq!(a.status, 200, "{}", a.body);

    // The JWT passes the auth layer on writes and (with --auth-reads) reads.
    let a = post_metrics(&agent, &bearer(&jwt));
    assert_eq!(a.status, 200, "metrics POST with a JWT: {}", a.body);
    let a = post_metrics(&agent, &bearer(&ui_token));
    assert_eq!(a.status, 200, "metrics POST with the UI's JWT: {}", a.body);
    // Gthulhu's own metrics body: whatever the body checks say, not an auth refusal.
    let a = replay(&agent, &scheduler_2025_08::metrics_post(&jwt, SAMPLE_BSS));
    assert!(![401, 403].contains(&a.status), "{}: {}", a.status, a.body);
    for req in [
        scheduler_2025_08::strategies_get(&jwt),
        plugin_2026_02::strategies_get(Some(&jwt)),
    ] {
        let a = replay(&agent, &req);
        assert_eq!(a.status, 200, "{}", a.body);
        accept_strategies(STRATEGIES_ANSWER_BOOL, &a.body).unwrap();
    }
    // Without a token, reads under /api/v1 are refused; the open paths are not.
    let a = replay(&agent, &plugin_2026_02::strategies_get(None));
    assert_401(
        &a,
        "Authorization: Bearer",
        "strategies GET without a token",
    );
    let static_token = read(&state.join("token")).trim().to_string();
    let a = call(&agent, "GET", STRATEGIES_PATH, &bearer(&static_token), None);
    assert_eq!(a.status, 200, "the static token reads too: {}", a.body);
    for path in ["/health", "/", "/api/v1/openapi.json", "/metrics"] {
        let r = ureq::get(&agent.url(path)).call();
        let status = match r {
            Ok(r) => r.status(),
            Err(ureq::Error::Status(s, _)) => s,
            Err(e) => panic!("{path}: {e}"),
        };
        assert!(status == 200 || status == 503, "{path}: {status}");
    }

    assert!(agent.terminate().is_some(), "no exit after SIGTERM");
    let log = agent.stderr_text();
    for t in [&jwt, &ui_token, &static_token] {
        let signature = t.rsplit('.').next().unwrap();
        assert!(!log.contains(signature), "a token reached the log:\n{log}");
    }
    assert!(
        log.contains("issued a token to the client \"manager-1\""),
        "{log}"
    );
}

#[test]
fn forged_expired_and_tampered_tokens_get_401_json_and_are_not_logged() {
    let mut agent = Agent::start_temp("gth-forged", &["--auth-reads"]);
    let state = agent.state_dir.clone();
    let pem = read(&state.join("jwt_public.pem"));
    let ours = rsa_key(&state.join("jwt_private.pem"));
    let other_dir = TempDir::new("gth-otherkey");
    let other_path = other_dir.path().join("other.pem");
    scx_pilot::jwt::JwtKeys::load_or_generate(&other_path, Duration::from_secs(3600)).unwrap();
    let other = rsa_key(&other_path);

    let a = replay(&agent, &plugin_2026_02::token_request(&pem));
    let valid = plugin_2026_02::accept_token(a.status, &a.body)
        .unwrap()
        .token;
    let parts: Vec<&str> = valid.split('.').collect();
    let mut admin = claims(3600);
    admin["client_id"] = json!("admin");
    let other_payload = sign(Algorithm::RS256, &ours, &admin);
    let other_payload = other_payload.split('.').nth(1).unwrap();

    let forged = [
        ("expired", sign(Algorithm::RS256, &ours, &claims(-60))),
        (
            "signed with another key",
            sign(Algorithm::RS256, &other, &claims(3600)),
        ),
        (
            "alg none",
            format!(
                "{}.{}.",
                b64url(br#"{"alg":"none","typ":"JWT"}"#),
                b64url(claims(3600).to_string().as_bytes())
            ),
        ),
        (
            "HS256 keyed with the public key",
            sign(
                Algorithm::HS256,
                &EncodingKey::from_secret(pem.as_bytes()),
                &claims(3600),
            ),
        ),
        (
            "tampered payload",
            format!("{}.{}.{}", parts[0], other_payload, parts[2]),
        ),
        (
            "tampered signature",
            format!("{}.{}.{}x", parts[0], parts[1], parts[2]),
        ),
    ];
    for (what, token) in &forged {
        assert_401(
            &post_metrics(&agent, &bearer(token)),
            "Invalid or expired token",
            what,
        );
        let a = replay(&agent, &plugin_2026_02::strategies_get(Some(token)));
        assert_401(&a, "Invalid or expired token", what);
    }
    assert_eq!(post_metrics(&agent, &bearer(&valid)).status, 200);

    assert!(agent.terminate().is_some(), "no exit after SIGTERM");
    let log = agent.stderr_text();
    for token in forged
        .iter()
        .map(|(_, t)| t.as_str())
        .chain([valid.as_str()])
    {
        let payload = token.split('.').nth(1).unwrap();
        assert!(!log.contains(payload), "a token reached the log:\n{log}");
    }
    assert!(log.contains("write rejected"), "{log}");
}

#[test]
fn the_token_endpoint_refuses_other_keys_and_bad_json() {
    let agent = Agent::start_temp("gth-tokref", &[]);
    let other_dir = TempDir::new("gth-otherkey2");
    let (other, _) = scx_pilot::jwt::JwtKeys::load_or_generate(
        &other_dir.path().join("k.pem"),
        Duration::from_secs(3600),
    )
    .unwrap();
    let a = replay(
        &agent,
        &scheduler_2025_08::token_request(other.public_key_pem()),
    );
    assert_401(&a, "Public key verification failed", "another key");
    scheduler_2025_08::accept_token(a.status, &a.body).unwrap_err();
    let a = replay(&agent, &scheduler_2025_08::token_request("not a key"));
    assert_401(&a, "Public key verification failed", "not a PEM");
    let json_only = [("Content-Type", "application/json".to_string())];
    for body in ["{", "{}", r#"{"public_key": 5}"#] {
        let a = call(
            &agent,
            "POST",
            TOKEN_PATH,
            &json_only,
            Some(body.as_bytes()),
        );
        assert_eq!(a.status, 400, "{body}: {}", a.body);
        go_decode(ERROR_ANSWER, &a.body).unwrap();
    }
}

#[test]
fn auth_none_keeps_writes_open_and_still_hands_out_tokens() {
    let agent = Agent::start_temp("gth-none", &["--auth", "none", "--jwt-token-hours", "48"]);
    let pem = read(&agent.state_dir.join("jwt_public.pem"));
    let a = replay(&agent, &plugin_2026_02::token_request(&pem));
    let t = plugin_2026_02::accept_token(a.status, &a.body).unwrap();
    let until = t.reuse_until_unix.unwrap();
    assert!(
        (until - (now_unix() + 48 * 3600)).abs() < 60,
        "expired_at {until}"
    );
    let json_only = [("Content-Type", "application/json".to_string())];
    assert_eq!(post_metrics(&agent, &json_only).status, 200);
    assert_eq!(post_metrics(&agent, &bearer(&t.token)).status, 200);
}

#[test]
fn jwt_off_serves_no_tokens_and_writes_no_keys() {
    let agent = Agent::start_temp("gth-off", &["--jwt", "off"]);
    let a = replay(&agent, &scheduler_2025_08::token_request("x"));
    assert_eq!(a.status, 404, "{}", a.body);
    go_decode(ERROR_ANSWER, &a.body).unwrap();
    assert!(!agent.state_dir.join("jwt_private.pem").exists());
    assert!(!agent.state_dir.join("jwt_public.pem").exists());
}

#[test]
fn bad_settings_stop_the_agent_with_a_clear_error() {
    let dir = TempDir::new("gth-bad");
    let run = |extra: &[&str]| {
        let out = agent::command(dir.path())
            .args(["--api-only", "--listen", "127.0.0.1:0"])
            .args(extra)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{extra:?} started");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = run(&["--auth", "none", "--auth-reads"]);
    assert!(err.contains("--auth-reads needs --auth token"), "{err}");
    let err = run(&["--cors-write-origin", "ui.example"]);
    assert!(err.contains("--cors-write-origin"), "{err}");
    let key = dir.path().join("open.pem");
    std::fs::write(&key, "x").unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = run(&["--jwt-key", key.to_str().unwrap()]);
    assert!(
        err.contains(key.to_str().unwrap()) && err.contains("chmod 600"),
        "{err}"
    );
}

#[test]
fn options_answers_every_route_and_only_allowed_pages_write() {
    let allowed = "http://ui.example:3000";
    let agent = Agent::start_temp("gth-cors", &["--cors-write-origin", allowed]);
    let token = read(&agent.state_dir.join("token")).trim().to_string();
    for e in scx_pilot::api::ENDPOINTS {
        for headers in [
            vec![],
            vec![
                ("Origin", "http://elsewhere.example".to_string()),
                ("Access-Control-Request-Method", "POST".to_string()),
                (
                    "Access-Control-Request-Headers",
                    "content-type,authorization".to_string(),
                ),
            ],
        ] {
            let a = call(&agent, "OPTIONS", e.path, &headers, None);
            assert!(
                a.status == 200 || a.status == 204,
                "OPTIONS {}: {}",
                e.path,
                a.status
            );
            let methods = a.header("access-control-allow-methods").unwrap_or_default();
            assert!(
                methods.contains("POST") && methods.contains("GET"),
                "{}: {methods}",
                e.path
            );
            let h = a.header("access-control-allow-headers").unwrap_or_default();
            assert!(
                h.contains("Authorization") && h.contains("Content-Type"),
                "{}: {h}",
                e.path
            );
            assert!(
                a.header("allow").unwrap_or_default().contains(e.method),
                "{}",
                e.path
            );
        }
    }

    let with_origin = |origin: &str| {
        let mut h = bearer(&token);
        h.push(("Origin", origin.to_string()));
        h
    };
    let a = post_metrics(&agent, &with_origin("http://evil.example"));
    assert_eq!(a.status, 403, "{}", a.body);
    go_decode(ERROR_ANSWER, &a.body).unwrap();
    assert!(a.header("access-control-allow-origin").is_none());
    let a = post_metrics(&agent, &with_origin("null"));
    assert_eq!(a.status, 403, "{}", a.body);
    let a = post_metrics(&agent, &with_origin(&agent.base));
    assert_eq!(a.status, 200, "same origin: {}", a.body);
    let a = post_metrics(&agent, &with_origin(allowed));
    assert_eq!(a.status, 200, "allow-listed: {}", a.body);
    // Its page may read the answer (`*` here, as --cors-origin is `*`).
    let acao = a.header("access-control-allow-origin").unwrap_or_default();
    assert!(acao == allowed || acao == "*", "{acao}");
    let pre = [
        ("Origin", allowed.to_string()),
        ("Access-Control-Request-Method", "POST".to_string()),
    ];
    let a = call(&agent, "OPTIONS", METRICS_PATH, &pre, None);
    assert!(a.header("access-control-allow-origin").is_some());
}
