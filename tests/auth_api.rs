//! Who may write, in process (actix_web::test): bearer token, Host check, rate
//! limit, and the OpenAPI document of all three.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix_http::Request;
use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::{header, StatusCode};
use actix_web::{test, web};
use serde_json::{json, Value};

use scx_pilot::api::auth::{HostCheck, WriteGuard, WritePolicy};
use scx_pilot::api::{self, ApiConfig, ApiState};
use scx_pilot::auth::Token;
use scx_pilot::metrics::MetricsStore;
use scx_pilot::sched::{Mode, StatusCell};
use scx_pilot::state::AgentState;

const TOKEN: &str = "0123456789abcdef0123456789abcdef";

#[path = "fixtures/samples.rs"]
mod samples;
use samples::METRICS;

/// A strategy for a sleeping child (a POST must name a live process).
fn strategies(sleeper: &std::process::Child) -> String {
    format!(
        r#"{{"strategies": [{{"priority": false, "execution_time": 10000000, "pid": {}}}]}}"#,
        sleeper.id()
    )
}

fn sleeper() -> std::process::Child {
    std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .unwrap()
}

fn state() -> web::Data<ApiState> {
    web::Data::new(ApiState::from(
        AgentState::new(MetricsStore::new(10), StatusCell::new(Mode::ApiOnly))
            .with_sampling(Duration::from_secs(1), 10),
    ))
}

fn config(policy: WritePolicy) -> ApiConfig {
    ApiConfig {
        writes: Arc::new(WriteGuard::new(policy)),
        ..ApiConfig::default()
    }
}

fn token_policy() -> WritePolicy {
    WritePolicy {
        token: Some(Token::new(TOKEN).unwrap()),
        hosts: Some(HostCheck::for_listen("127.0.0.1".parse().unwrap(), &[])),
        rate_per_s: None,
        ..WritePolicy::default()
    }
}

fn peer(ip: &str) -> SocketAddr {
    format!("{ip}:40000").parse().unwrap()
}

fn post(path: &str, body: &str, auth: Option<&str>, from: &str) -> Request {
    let mut req = test::TestRequest::post()
        .uri(path)
        .peer_addr(peer(from))
        .insert_header((header::HOST, "127.0.0.1:8080"))
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .set_payload(body.to_string());
    if let Some(a) = auth {
        req = req.insert_header((header::AUTHORIZATION, a));
    }
    req.to_request()
}

async fn send<S, B>(app: &S, req: Request) -> (StatusCode, header::HeaderMap, Value)
where
    S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let res = test::call_service(app, req).await;
    let status = res.status();
    let headers = res.headers().clone();
    let body = test::read_body(res).await;
    let v = serde_json::from_slice(&body)
        .unwrap_or_else(|e| panic!("{status}: {e}: {}", String::from_utf8_lossy(&body)));
    (status, headers, v)
}

fn assert_error(status: StatusCode, v: &Value, want: StatusCode, needle: &str) {
    assert_eq!(status, want, "{v}");
    assert_eq!(v["success"], json!(false), "{v}");
    let e = v["error"].as_str().unwrap();
    assert!(e.contains(needle), "{e:?} lacks {needle:?}");
    assert!(!e.contains(TOKEN), "the token leaked into an error: {e}");
}

#[actix_web::test]
async fn writes_need_the_bearer_token_reads_do_not() {
    let s = state();
    let app = test::init_service(api::app(s.clone(), &config(token_policy()))).await;
    let good = format!("Bearer {TOKEN}");
    let mut child = sleeper();
    let strategies = strategies(&child);
    for (path, body) in [
        ("/api/v1/metrics", METRICS),
        ("/api/v1/scheduling/strategies", strategies.as_str()),
    ] {
        let (st, h, v) = send(&app, post(path, body, None, "127.0.0.1")).await;
        assert_error(st, &v, StatusCode::UNAUTHORIZED, "Authorization: Bearer");
        assert_eq!(
            h.get(header::WWW_AUTHENTICATE).unwrap(),
            r#"Bearer realm="scx_pilot""#
        );
        assert!(h.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
        for wrong in [
            format!("Bearer {TOKEN}x"),
            format!("Bearer {}", &TOKEN[1..]),
            "Bearer ".to_string(),
            format!("Basic {TOKEN}"),
            TOKEN.to_string(),
        ] {
            let (st, _, v) = send(&app, post(path, body, Some(&wrong), "127.0.0.1")).await;
            assert_error(st, &v, StatusCode::UNAUTHORIZED, "");
        }
        let (st, _, v) = send(&app, post(path, body, Some(&good), "127.0.0.1")).await;
        assert_eq!(st, StatusCode::OK, "{v}");
        assert_eq!(v["success"], json!(true));
        // The scheme is case-insensitive (RFC 9110).
        let lower = format!("bearer {TOKEN}");
        let (st, _, _) = send(&app, post(path, body, Some(&lower), "127.0.0.1")).await;
        assert_eq!(st, StatusCode::OK);
    }
    // Nothing a rejected write carried was stored: only the accepted ones.
    assert_eq!(s.external.len(), 1);
    let _ = child.kill();
    let _ = child.wait();

    for path in [
        "/",
        "/health",
        "/api/v1/metrics",
        "/api/v1/scheduling/strategies",
        "/api/v1/openapi.json",
    ] {
        let req = test::TestRequest::get().uri(path).to_request();
        let res = test::call_service(&app, req).await;
        assert!(res.status().is_success(), "GET {path}: {}", res.status());
    }
    // A method a route does not serve is a 405 with its Allow list, token or
    // not: no such call exists, so there is nothing to authorize (a 401 sent
    // clients after a token for it, even on open routes such as /health).
    for (method, path, allow) in [
        (
            "DELETE",
            "/api/v1/scheduling/strategies",
            "GET, POST, OPTIONS",
        ),
        ("PUT", "/api/v1/scheduling/strategies", "GET, POST, OPTIONS"),
        ("POST", "/health", "GET, OPTIONS"),
        ("POST", "/livez", "GET, OPTIONS"),
        ("PATCH", "/api/v1/openapi.json", "GET, OPTIONS"),
    ] {
        for auth in [None, Some(good.as_str())] {
            let mut req = test::TestRequest::default()
                .method(method.parse().unwrap())
                .uri(path);
            if let Some(a) = auth {
                req = req.insert_header((header::AUTHORIZATION, a));
            }
            let (st, h, v) = send(&app, req.to_request()).await;
            assert_error(st, &v, StatusCode::METHOD_NOT_ALLOWED, "not allowed");
            assert_eq!(h.get(header::ALLOW).unwrap(), allow, "{method} {path}");
        }
    }
    // A path the API does not have stays behind the check (fail closed).
    let (st, _, v) = send(&app, post("/api/v1/nope", "{}", None, "127.0.0.1")).await;
    assert_error(st, &v, StatusCode::UNAUTHORIZED, "");
}

#[actix_web::test]
async fn a_rejected_write_changes_nothing() {
    let s = state();
    let app = test::init_service(api::app(s.clone(), &config(token_policy()))).await;
    let before = s.strategies_snapshot();
    let (st, _, _) = send(
        &app,
        post(
            "/api/v1/scheduling/strategies",
            r#"{"strategies": []}"#,
            Some("Bearer nope-nope-nope-nope"),
            "127.0.0.1",
        ),
    )
    .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    assert_eq!(s.strategies_snapshot().updated_at, before.updated_at);
}

#[actix_web::test]
async fn auth_none_lets_writes_through() {
    let policy = WritePolicy {
        token: None,
        ..token_policy()
    };
    let app = test::init_service(api::app(state(), &config(policy))).await;
    let (st, _, v) = send(&app, post("/api/v1/metrics", METRICS, None, "127.0.0.1")).await;
    assert_eq!(st, StatusCode::OK, "{v}");
}

#[actix_web::test]
async fn host_header_must_name_the_listen_address() {
    let policy = WritePolicy {
        hosts: Some(HostCheck::for_listen(
            "127.0.0.1".parse().unwrap(),
            &["node-7.cluster.example".into()],
        )),
        ..token_policy()
    };
    let app = test::init_service(api::app(state(), &config(policy))).await;
    let good = format!("Bearer {TOKEN}");
    for (host, want) in [
        ("127.0.0.1:8080", StatusCode::OK),
        ("localhost:8080", StatusCode::OK),
        ("node-7.cluster.example:8080", StatusCode::OK),
        ("evil.example:8080", StatusCode::FORBIDDEN),
        ("localhost.evil.example", StatusCode::FORBIDDEN),
        ("192.168.1.9:8080", StatusCode::FORBIDDEN),
    ] {
        let req = test::TestRequest::post()
            .uri("/api/v1/metrics")
            .peer_addr(peer("127.0.0.1"))
            .insert_header((header::HOST, host))
            .insert_header((header::AUTHORIZATION, good.as_str()))
            .insert_header((header::CONTENT_TYPE, "application/json"))
            .set_payload(METRICS)
            .to_request();
        let (st, _, v) = send(&app, req).await;
        assert_eq!(st, want, "Host {host}: {v}");
        if want == StatusCode::FORBIDDEN {
            assert_error(st, &v, want, "--allowed-host");
        }
    }
    // Reads are not checked: a dashboard may use any name.
    let req = test::TestRequest::get()
        .uri("/api/v1/metrics")
        .insert_header((header::HOST, "evil.example"))
        .to_request();
    assert_eq!(test::call_service(&app, req).await.status(), StatusCode::OK);
}

#[actix_web::test]
async fn write_rate_is_limited_per_client_with_429() {
    let policy = WritePolicy {
        rate_per_s: Some(3),
        ..token_policy()
    };
    let app = test::init_service(api::app(state(), &config(policy))).await;
    let good = format!("Bearer {TOKEN}");
    // A flood of wrong tokens from the operator's own address...
    let mut got_429 = false;
    for _ in 0..6 {
        let (st, _, _) = send(
            &app,
            post(
                "/api/v1/metrics",
                METRICS,
                Some("Bearer wrong-wrong-wrong"),
                "127.0.0.1",
            ),
        )
        .await;
        got_429 |= st == StatusCode::TOO_MANY_REQUESTS;
        assert!(st == StatusCode::UNAUTHORIZED || st == StatusCode::TOO_MANY_REQUESTS);
    }
    assert!(got_429, "rejected attempts are not limited");
    // ...does not use up the good writes' bucket.
    for i in 0..3 {
        let (st, _, v) = send(
            &app,
            post("/api/v1/metrics", METRICS, Some(&good), "127.0.0.1"),
        )
        .await;
        assert_eq!(st, StatusCode::OK, "write {i}: {v}");
    }
    let (st, h, v) = send(
        &app,
        post("/api/v1/metrics", METRICS, Some(&good), "127.0.0.1"),
    )
    .await;
    assert_error(
        st,
        &v,
        StatusCode::TOO_MANY_REQUESTS,
        "at most 3 per second",
    );
    let retry: u64 = h
        .get(header::RETRY_AFTER)
        .expect("Retry-After")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(retry, 1);
    // Another client has its own budget.
    let (st, _, _) = send(
        &app,
        post("/api/v1/metrics", METRICS, Some(&good), "10.0.0.7"),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    // Reads are never limited.
    for _ in 0..20 {
        let req = test::TestRequest::get()
            .uri("/health")
            .peer_addr(peer("127.0.0.1"))
            .to_request();
        let st = test::call_service(&app, req).await.status();
        assert!(
            st.is_success() || st == StatusCode::SERVICE_UNAVAILABLE,
            "{st}"
        );
    }
    // The bucket refills.
    actix_web::rt::time::sleep(Duration::from_millis(400)).await;
    let (st, _, _) = send(
        &app,
        post("/api/v1/metrics", METRICS, Some(&good), "127.0.0.1"),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
}

#[actix_web::test]
async fn openapi_documents_the_bearer_scheme_and_401_403_429_on_writes() {
    let doc: Value = serde_json::from_str(api::openapi::document()).unwrap();
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        json!("bearer"),
        "{}",
        doc["components"]
    );
    let paths = doc["paths"].as_object().unwrap();
    let mut writes = 0;
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            let is_write = matches!(method.as_str(), "post" | "put" | "patch" | "delete");
            let responses = &op["responses"];
            for code in ["401", "403", "429"] {
                assert_eq!(
                    !responses[code].is_null(),
                    is_write,
                    "{method} {path}: {code} documented = {}",
                    !is_write
                );
            }
            if is_write && path == "/api/v1/auth/token" {
                // How a client without a credential gets one: open.
                assert!(op["security"].is_null(), "{method} {path}");
            } else if is_write {
                writes += 1;
                assert_eq!(op["security"], json!([{"bearer": []}]), "{method} {path}");
                assert_eq!(
                    responses["401"]["content"]["application/json"]["schema"]["$ref"],
                    json!("#/components/schemas/ErrorBody")
                );
            } else {
                assert!(op["security"].is_null(), "{method} {path}");
            }
        }
    }
    assert!(writes >= 2, "{writes} write operations");
}
