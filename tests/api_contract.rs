//! The HTTP API's contract, in process (actix_web::test): every endpoint and
//! every error class, with status codes and bodies.

use std::path::Path;
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::Duration;

use actix_http::{HttpMessage, Request};
use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::{header, StatusCode};
use actix_web::{test, web};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use scx_pilot::api::{self, ApiConfig, ApiState, ENDPOINTS};
use scx_pilot::mailbox::Mailbox;
use scx_pilot::metrics::{BssData, MetricsStore, PolicyCounters, Sample};
use scx_pilot::sched::{Mode, StatusCell};
use scx_pilot::state::AgentState;
use scx_pilot::strategy::{DesiredStrategies, PidStrategy};

#[path = "fixtures/samples.rs"]
mod samples;
#[path = "fixtures/temp.rs"]
mod temp;
use samples::METRICS;
use temp::TempDir;

struct Fixture {
    state: web::Data<ApiState>,
    metrics: Arc<MetricsStore>,
    status: StatusCell,
    to_scheduler: Arc<Mailbox<DesiredStrategies>>,
}

fn fixture(mode: Mode) -> Fixture {
    let metrics = MetricsStore::new(100);
    let status = StatusCell::new(mode);
    let to_scheduler = Mailbox::shared();
    let mut state =
        AgentState::new(metrics.clone(), status.clone()).with_sampling(Duration::from_secs(1), 100);
    if mode == Mode::Kernel {
        state = state.with_scheduler_mailbox(to_scheduler.clone());
    }
    Fixture {
        state: web::Data::new(ApiState::from(state)),
        metrics,
        status,
        to_scheduler,
    }
}

async fn send<S, R, B>(app: &S, req: R) -> (StatusCode, header::HeaderMap, Value)
where
    S: Service<R, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let res = test::call_service(app, req).await;
    let status = res.status();
    let headers = res.headers().clone();
    let body = test::read_body(res).await;
    let value = serde_json::from_slice(&body).unwrap_or_else(|e| {
        panic!(
            "{status}: body is not JSON ({e}): {}",
            String::from_utf8_lossy(&body)
        )
    });
    (status, headers, value)
}

fn post_json(path: &str, body: &str) -> Request {
    test::TestRequest::post()
        .uri(path)
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .set_payload(body.to_string())
        .to_request()
}

fn get(path: &str) -> Request {
    test::TestRequest::get().uri(path).to_request()
}

fn assert_rfc3339_utc(v: &Value) -> DateTime<Utc> {
    let s = v.as_str().unwrap_or_else(|| panic!("not a string: {v}"));
    assert!(s.ends_with('Z'), "{s} is not UTC 'Z'");
    DateTime::parse_from_rfc3339(s)
        .unwrap_or_else(|e| panic!("{s}: {e}"))
        .with_timezone(&Utc)
}

fn assert_error(status: StatusCode, body: &Value, want: StatusCode, contains: &str) {
    assert_eq!(status, want, "{body}");
    assert_eq!(body["success"], json!(false), "{body}");
    let err = body["error"].as_str().unwrap_or_else(|| panic!("{body}"));
    assert!(err.contains(contains), "error {err:?} lacks {contains:?}");
    assert_eq!(body.as_object().unwrap().len(), 2, "extra fields: {body}");
}

fn sample(at: DateTime<Utc>, kernel: u64) -> Sample {
    Sample {
        timestamp: at,
        bss: BssData {
            usersched_pid: 77,
            nr_online_cpus: 2,
            nr_kernel_dispatches: kernel,
            ..Default::default()
        },
        policy: PolicyCounters {
            nr_preemptions: kernel / 10,
            ..Default::default()
        },
    }
}

/// A sleeping child process, killed on drop.
struct Sleeper(Child);

impl Sleeper {
    fn new() -> Self {
        Self(
            Command::new("sleep")
                .arg("60")
                .spawn()
                .expect("spawn sleep"),
        )
    }
    fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[actix_web::test]
async fn post_metrics_documented_example_and_get_shows_it_as_external() {
    let f = fixture(Mode::ApiOnly);
    let app = test::init_service(api::app(f.state.clone(), &ApiConfig::default())).await;

    let (status, _, body) = send(&app, post_json("/api/v1/metrics", METRICS)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["success"], json!(true));
    assert_eq!(body["message"], json!("Metrics received successfully"));
    assert_rfc3339_utc(&body["timestamp"]);
    assert_eq!(body.as_object().unwrap().len(), 3);

    // A newer report of the same reporter replaces it; extras are ignored,
    // usersched_last_run_at (Gthulhu's BssData) is kept.
    let newer = METRICS.replace(
        "\"nr_queued\": 10",
        "\"nr_queued\": 11, \"usersched_last_run_at\": 99, \"extra\": 1",
    );
    let (status, _, _) = send(&app, post_json("/api/v1/metrics", &newer)).await;
    assert_eq!(status, StatusCode::OK);
    let other = METRICS.replace("1234", "4321");
    send(&app, post_json("/api/v1/metrics", &other)).await;

    let (status, _, body) = send(&app, get("/api/v1/metrics")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["success"], json!(true));
    assert_eq!(body["message"], json!("Metrics retrieved successfully"));
    assert_eq!(body["mode"], json!("api-only"));
    assert_eq!(body["metrics"], Value::Null);
    let external = body["external"].as_array().unwrap();
    assert_eq!(external.len(), 2, "{body}");
    let mine = external
        .iter()
        .find(|e| e["data"]["usersched_pid"] == json!(1234))
        .unwrap();
    assert_eq!(mine["source"], json!("external"));
    assert_eq!(mine["data"]["nr_queued"], json!(11));
    assert_eq!(mine["data"]["nr_sched_congested"], json!(3));
    assert_eq!(mine["data"]["usersched_last_run_at"], json!(99));
    assert!(mine["data"].get("extra").is_none());
    let theirs = external
        .iter()
        .find(|e| e["data"]["usersched_pid"] == json!(4321))
        .unwrap();
    // Not reported: left out.
    assert!(theirs["data"].get("usersched_last_run_at").is_none());
    assert_eq!(theirs["reporter"], json!("usersched_pid 4321"));
    // The original's fields: the newest report (api-only: no own sample).
    assert_eq!(body["data"], theirs["data"]);
    assert_eq!(body["metrics_timestamp"], theirs["received_at"]);
    assert_rfc3339_utc(&mine["received_at"]);
}

/// The documented `BssData` for `pid` with `nr_queued`, as a JSON value.
fn report(pid: u32, nr_queued: u64) -> Value {
    let mut v: Value = serde_json::from_str(METRICS).unwrap();
    v["usersched_pid"] = json!(pid);
    v["nr_queued"] = json!(nr_queued);
    v
}

#[actix_web::test]
async fn metrics_batch_keeps_each_reporters_newest_report() {
    let f = fixture(Mode::ApiOnly);
    let app = test::init_service(api::app(f.state.clone(), &ApiConfig::default())).await;
    let mut newest = report(10, 2);
    newest["timestamp"] = json!("2026-01-01T00:00:02Z");
    let mut older = report(10, 1);
    older["timestamp"] = json!("2026-01-01T00:00:01+00:00");
    // Extra fields are ignored, as in the single POST.
    let mut undated = report(11, 7);
    undated["usersched_last_run_at"] = json!(5);
    let batch = json!([newest, undated, older]);
    let (status, _, body) =
        send(&app, post_json("/api/v1/metrics/batch", &batch.to_string())).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["success"], json!(true));
    assert_eq!(
        body["message"],
        json!("Metrics batch received successfully")
    );
    assert_rfc3339_utc(&body["timestamp"]);
    assert_eq!(
        (body["received"].clone(), body["stored"].clone()),
        (json!(3), json!(2))
    );

    let (_, _, body) = send(&app, get("/api/v1/metrics")).await;
    let external = body["external"].as_array().unwrap();
    assert_eq!(external.len(), 2, "{body}");
    let of = |pid: u32| {
        external
            .iter()
            .find(|e| e["data"]["usersched_pid"] == json!(pid))
            .unwrap_or_else(|| panic!("no report of {pid}: {body}"))
    };
    assert_eq!(of(10)["data"]["nr_queued"], json!(2));
    assert_eq!(
        assert_rfc3339_utc(&of(10)["received_at"]),
        DateTime::parse_from_rfc3339("2026-01-01T00:00:02Z").unwrap()
    );
    assert_eq!(of(11)["data"]["nr_queued"], json!(7));

    // A later batch with an older report of 10 does not replace its newest.
    let mut stale = report(10, 99);
    stale["timestamp"] = json!("2025-12-31T23:59:59Z");
    let (status, _, body) = send(
        &app,
        post_json("/api/v1/metrics/batch", &json!([stale]).to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["stored"], json!(0));
    let (_, _, body) = send(&app, get("/api/v1/metrics")).await;
    let ten = body["external"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["data"]["usersched_pid"] == json!(10))
        .unwrap()
        .clone();
    assert_eq!(ten["data"]["nr_queued"], json!(2));
}

#[actix_web::test]
async fn metrics_batch_bad_input_stores_nothing() {
    let f = fixture(Mode::ApiOnly);
    let app = test::init_service(api::app(f.state.clone(), &ApiConfig::default())).await;
    let future = (Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let mut bad_type = report(3, 1);
    bad_type["nr_queued"] = json!("x");
    let mut bad_time = report(3, 1);
    bad_time["timestamp"] = json!("yesterday");
    let mut in_future = report(3, 1);
    in_future["timestamp"] = json!(future);
    let mut numeric_time = report(3, 1);
    numeric_time["timestamp"] = json!(12);
    let mut missing = report(3, 1);
    missing.as_object_mut().unwrap().remove("nr_running");
    let cases: Vec<(String, StatusCode, &str)> = vec![
        (
            json!([report(1, 1), report(2, 1), bad_type]).to_string(),
            StatusCode::BAD_REQUEST,
            "[2].nr_queued: invalid type",
        ),
        (
            json!([report(1, 1), report(0, 1)]).to_string(),
            StatusCode::BAD_REQUEST,
            "[1].usersched_pid must be greater than 0",
        ),
        (
            json!([report(1, 1), missing]).to_string(),
            StatusCode::BAD_REQUEST,
            "[1]: missing field `nr_running`",
        ),
        (
            json!([bad_time]).to_string(),
            StatusCode::BAD_REQUEST,
            "[0].timestamp: \"yesterday\" is not RFC3339",
        ),
        (
            json!([in_future]).to_string(),
            StatusCode::BAD_REQUEST,
            "is in the future",
        ),
        (
            json!([numeric_time]).to_string(),
            StatusCode::BAD_REQUEST,
            "[0].timestamp: expected an RFC3339 string",
        ),
        (
            json!([1, 2]).to_string(),
            StatusCode::BAD_REQUEST,
            "[0]: expected a BssData object",
        ),
        (
            "[]".into(),
            StatusCode::BAD_REQUEST,
            "a batch holds 1..=1000 reports, got 0",
        ),
        (
            METRICS.into(),
            StatusCode::BAD_REQUEST,
            "Invalid JSON format",
        ),
        ("[{".into(), StatusCode::BAD_REQUEST, "Invalid JSON format"),
    ];
    for (body, want, needle) in cases {
        let (status, _, v) = send(&app, post_json("/api/v1/metrics/batch", &body)).await;
        assert_error(status, &v, want, needle);
    }
    // 1001 reports are over the default body limit (413); with a raised
    // limit the count bound answers (400).
    let too_many = serde_json::to_string(&vec![report(1, 1); api::MAX_BATCH_REPORTS + 1]).unwrap();
    let (status, _, v) = send(&app, post_json("/api/v1/metrics/batch", &too_many)).await;
    assert_error(
        status,
        &v,
        StatusCode::PAYLOAD_TOO_LARGE,
        "larger than the limit",
    );
    let raised = ApiConfig {
        body_limit: 4 << 20,
        ..ApiConfig::default()
    };
    let big = test::init_service(api::app(f.state.clone(), &raised)).await;
    let (status, _, v) = send(&big, post_json("/api/v1/metrics/batch", &too_many)).await;
    assert_error(
        status,
        &v,
        StatusCode::BAD_REQUEST,
        "a batch holds 1..=1000 reports, got 1001",
    );
    assert_eq!(
        f.state.external.len(),
        0,
        "a rejected batch stored something"
    );
    let (status, headers, v) = send(&app, get("/api/v1/metrics/batch")).await;
    assert_error(status, &v, StatusCode::METHOD_NOT_ALLOWED, "");
    assert_eq!(headers.get(header::ALLOW).unwrap(), "POST, OPTIONS");
}

#[actix_web::test]
async fn external_reporters_are_bounded() {
    let f = fixture(Mode::ApiOnly);
    let app = test::init_service(api::app(f.state.clone(), &ApiConfig::default())).await;
    for pid in 1..=(scx_pilot::external::MAX_EXTERNAL_REPORTERS as u32 + 5) {
        let body = METRICS.replace("1234", &pid.to_string());
        let (status, _, _) = send(&app, post_json("/api/v1/metrics", &body)).await;
        assert_eq!(status, StatusCode::OK);
    }
    assert_eq!(
        f.state.external.len(),
        scx_pilot::external::MAX_EXTERNAL_REPORTERS
    );
    let (_, _, body) = send(&app, get("/api/v1/metrics")).await;
    assert_eq!(
        body["external"].as_array().unwrap().len(),
        scx_pilot::external::MAX_EXTERNAL_REPORTERS
    );
}

#[actix_web::test]
async fn get_metrics_serves_the_scheduler_sample_with_rates() {
    let f = fixture(Mode::Kernel);
    let app = test::init_service(api::app(f.state.clone(), &ApiConfig::default())).await;
    let t0 = Utc::now() - chrono::Duration::seconds(2);
    f.metrics.push(sample(t0, 1000));
    f.metrics
        .push(sample(t0 + chrono::Duration::milliseconds(500), 3000));

    let (status, _, body) = send(&app, get("/api/v1/metrics")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["mode"], json!("kernel"));
    let m = &body["metrics"];
    assert_eq!(m["source"], json!("scheduler"));
    assert_eq!(
        assert_rfc3339_utc(&m["timestamp"]).timestamp_millis(),
        (t0 + chrono::Duration::milliseconds(500)).timestamp_millis()
    );
    assert_eq!(m["data"]["nr_kernel_dispatches"], json!(3000));
    assert_eq!(m["data"]["usersched_pid"], json!(77));
    // Every documented field is there.
    for field in [
        "usersched_pid",
        "nr_queued",
        "nr_scheduled",
        "nr_running",
        "nr_online_cpus",
        "nr_user_dispatches",
        "nr_kernel_dispatches",
        "nr_cancel_dispatches",
        "nr_bounce_dispatches",
        "nr_failed_dispatches",
        "nr_sched_congested",
    ] {
        assert!(m["data"][field].is_u64(), "{field} missing in {m}");
    }
    assert_eq!(m["policy"]["nr_preemptions"], json!(300));
    assert_eq!(m["rates"]["kernel_dispatches_per_s"], json!(4000.0));
    assert_eq!(m["rates"]["interval_s"], json!(0.5));
    assert_eq!(body["external"], json!([]));
}

#[actix_web::test]
async fn history_window_rates_and_bad_queries() {
    let f = fixture(Mode::Kernel);
    let app = test::init_service(api::app(f.state.clone(), &ApiConfig::default())).await;

    let (status, _, body) = send(&app, get("/api/v1/metrics/history")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["samples"], json!([]));
    assert_eq!(body["seconds"], json!(100)); // default 300, capped at the 100 s kept

    let t0 = Utc::now() - chrono::Duration::seconds(20);
    for i in 0..10 {
        f.metrics
            .push(sample(t0 + chrono::Duration::seconds(i), 100 * i as u64));
    }
    let (status, _, body) = send(&app, get("/api/v1/metrics/history?seconds=3")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["message"],
        json!("Metrics history retrieved successfully")
    );
    assert_eq!(body["interval_ms"], json!(1000));
    let samples = body["samples"].as_array().unwrap();
    assert_eq!(samples.len(), 4, "{body}");
    assert_eq!(samples[0]["data"]["nr_kernel_dispatches"], json!(600));
    assert_eq!(samples[0]["rates"], Value::Null);
    assert_eq!(samples[1]["rates"]["kernel_dispatches_per_s"], json!(100.0));
    assert_rfc3339_utc(&samples[3]["timestamp"]);

    for (q, needle) in [
        ("seconds=0", "within 1..=100"),
        ("seconds=101", "within 1..=100"),
        ("seconds=-1", "seconds"),
        ("seconds=abc", "seconds"),
        ("seconds=99999999999999999999999", "seconds"),
    ] {
        let (status, _, body) = send(&app, get(&format!("/api/v1/metrics/history?{q}"))).await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, needle);
    }
}

#[actix_web::test]
async fn post_metrics_bad_input_classes() {
    let f = fixture(Mode::ApiOnly);
    let config = ApiConfig {
        body_limit: 1024,
        ..ApiConfig::default()
    };
    let app = test::init_service(api::app(f.state.clone(), &config)).await;

    let cases: Vec<(&str, String, StatusCode, &str)> = vec![
        (
            "malformed",
            "{\"usersched_pid\": 1,".into(),
            StatusCode::BAD_REQUEST,
            "Invalid JSON format: ",
        ),
        (
            "not an object",
            "[1,2]".into(),
            StatusCode::BAD_REQUEST,
            "Invalid JSON format: ",
        ),
        (
            "empty",
            String::new(),
            StatusCode::BAD_REQUEST,
            "Invalid JSON format: ",
        ),
        (
            "trailing",
            format!("{METRICS} x"),
            StatusCode::BAD_REQUEST,
            "trailing",
        ),
        (
            "wrong type",
            METRICS.replace("\"nr_queued\": 10", "\"nr_queued\": \"ten\""),
            StatusCode::BAD_REQUEST,
            "nr_queued: invalid type",
        ),
        (
            "negative",
            METRICS.replace("\"nr_running\": 2", "\"nr_running\": -2"),
            StatusCode::BAD_REQUEST,
            "nr_running",
        ),
        (
            "float",
            METRICS.replace("\"nr_running\": 2", "\"nr_running\": 2.5"),
            StatusCode::BAD_REQUEST,
            "nr_running",
        ),
        (
            "u32 overflow",
            METRICS.replace("1234", "4294967296"),
            StatusCode::BAD_REQUEST,
            "usersched_pid",
        ),
        (
            "u64 overflow",
            METRICS.replace("\"nr_queued\": 10", "\"nr_queued\": 18446744073709551616"),
            StatusCode::BAD_REQUEST,
            "nr_queued",
        ),
        (
            "missing field",
            METRICS.replace("\"nr_queued\": 10,", ""),
            StatusCode::BAD_REQUEST,
            "missing field `nr_queued`",
        ),
        (
            "pid zero",
            METRICS.replace("1234", "0"),
            StatusCode::BAD_REQUEST,
            "Invalid metrics data: usersched_pid must be greater than 0",
        ),
        (
            "too large",
            format!("{{\"pad\": \"{}\"}}", "x".repeat(2000)),
            StatusCode::PAYLOAD_TOO_LARGE,
            "larger than the limit of 1024 bytes",
        ),
    ];
    for (name, body, want, needle) in cases {
        let (status, _, resp) = send(&app, post_json("/api/v1/metrics", &body)).await;
        assert_eq!(status, want, "{name}: {resp}");
        assert_error(status, &resp, want, needle);
    }
    assert!(f.state.external.is_empty(), "a bad report was stored");

    // Wrong or missing Content-Type: 415, even with a valid body.
    for ct in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        let mut req = test::TestRequest::post()
            .uri("/api/v1/metrics")
            .set_payload(METRICS);
        if let Some(ct) = ct {
            req = req.insert_header((header::CONTENT_TYPE, ct));
        }
        let (status, _, body) = send(&app, req.to_request()).await;
        assert_error(
            status,
            &body,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Type must be application/json",
        );
    }
    // JSON with a charset is JSON.
    let req = test::TestRequest::post()
        .uri("/api/v1/metrics")
        .insert_header((header::CONTENT_TYPE, "application/json; charset=utf-8"))
        .set_payload(METRICS)
        .to_request();
    let (status, _, _) = send(&app, req).await;
    assert_eq!(status, StatusCode::OK);
}

#[actix_web::test]
async fn body_limit_applies_without_content_length() {
    let f = fixture(Mode::ApiOnly);
    let config = ApiConfig {
        body_limit: 1024,
        ..ApiConfig::default()
    };
    let app = test::init_service(api::app(f.state.clone(), &config)).await;
    // No Content-Length (as with chunked bodies): the limit is enforced while reading.
    let mut req = test::TestRequest::post()
        .uri("/api/v1/scheduling/strategies")
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .set_payload(vec![b' '; 5000])
        .to_request();
    req.headers_mut().remove(header::CONTENT_LENGTH);
    assert!(req.headers().get(header::CONTENT_LENGTH).is_none());
    let (status, _, body) = send(&app, req).await;
    assert_error(
        status,
        &body,
        StatusCode::PAYLOAD_TOO_LARGE,
        "larger than the limit",
    );
}

#[actix_web::test]
async fn strategies_documented_example_round_trip() {
    let f = fixture(Mode::Kernel);
    let app = test::init_service(api::app(f.state.clone(), &ApiConfig::default())).await;

    let (status, _, body) = send(&app, get("/api/v1/scheduling/strategies")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["message"],
        json!("Scheduling strategies retrieved successfully")
    );
    assert_eq!(body["scheduling"], json!([]), "empty is [] not null");

    // The documented request, for a process that exists here.
    let sleeper = Sleeper::new();
    let request = samples::strategies_for(sleeper.pid());
    let (status, _, body) = send(&app, post_json("/api/v1/scheduling/strategies", &request)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["success"], json!(true));
    assert_eq!(
        body["message"],
        json!("Scheduling strategies saved successfully")
    );
    assert_rfc3339_utc(&body["timestamp"]);
    assert_eq!(body.as_object().unwrap().len(), 3);
    // The scheduler got the resolved set: the PID (selectors need pod labels).
    let sent = f
        .to_scheduler
        .take()
        .expect("a set was sent to the scheduler");
    assert_eq!(
        sent,
        DesiredStrategies::from([(
            sleeper.pid(),
            PidStrategy {
                slice_ns: 10_000_000,
                priority: false
            }
        )])
    );

    let (_, _, body) = send(&app, get("/api/v1/scheduling/strategies/config")).await;
    let stored = body["strategies"].as_array().unwrap();
    assert_eq!(stored.len(), 2);
    assert_eq!(
        stored[0]["selectors"],
        json!([{"key": "nf", "value": "upf"}])
    );
    assert_eq!(stored[0]["resolution"]["pids"], json!([]));
    assert!(stored[0]["resolution"]["note"]
        .as_str()
        .unwrap()
        .contains("pod labels are not available"));
    assert_eq!(stored[1]["pid"], json!(sleeper.pid()));
    assert_eq!(body["applied_to_scheduler"], json!(true));
    assert_eq!(body["selectors_supported"], json!(false));
}

#[actix_web::test]
async fn strategies_resolve_live_pids_and_reach_the_scheduler() {
    let f = fixture(Mode::Kernel);
    let app = test::init_service(api::app(f.state.clone(), &ApiConfig::default())).await;
    let (a, b) = (Sleeper::new(), Sleeper::new());
    let body = json!({"strategies": [
        {"priority": true, "execution_time": 20_000_000, "pid": a.pid()},
        {"execution_time": 50_000, "pid": b.pid()},
        {"priority": true, "execution_time": 1_000_000_000, "pid": b.pid()},
    ]});
    let (status, _, resp) = send(
        &app,
        post_json("/api/v1/scheduling/strategies", &body.to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{resp}");

    let sent = f.to_scheduler.take().unwrap();
    let mut want = DesiredStrategies::new();
    want.insert(
        a.pid(),
        PidStrategy {
            slice_ns: 20_000_000,
            priority: true,
        },
    );
    want.insert(
        b.pid(),
        PidStrategy {
            slice_ns: 50_000,
            priority: false,
        },
    );
    assert_eq!(sent, want);

    let (_, _, resp) = send(&app, get("/api/v1/scheduling/strategies")).await;
    let mut expected = vec![
        json!({"priority": true, "execution_time": 20_000_000, "pid": a.pid()}),
        json!({"priority": false, "execution_time": 50_000, "pid": b.pid()}),
    ];
    expected.sort_by_key(|v| v["pid"].as_u64());
    assert_eq!(resp["scheduling"], json!(expected));

    // POST replaces the whole set.
    let body =
        json!({"strategies": [{"priority": false, "execution_time": 3_000_000, "pid": b.pid()}]});
    send(
        &app,
        post_json("/api/v1/scheduling/strategies", &body.to_string()),
    )
    .await;
    let sent = f.to_scheduler.take().unwrap();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[&b.pid()].slice_ns, 3_000_000);
    let (_, _, resp) = send(&app, get("/api/v1/scheduling/strategies")).await;
    assert_eq!(
        resp["scheduling"],
        json!([{"priority": false, "execution_time": 3_000_000, "pid": b.pid()}])
    );

    // An empty set clears everything.
    send(
        &app,
        post_json("/api/v1/scheduling/strategies", r#"{"strategies": []}"#),
    )
    .await;
    assert!(f.to_scheduler.take().unwrap().is_empty());
    let (_, _, resp) = send(&app, get("/api/v1/scheduling/strategies")).await;
    assert_eq!(resp["scheduling"], json!([]));
}

#[actix_web::test]
async fn strategies_invalid_requests_change_nothing() {
    let f = fixture(Mode::Kernel);
    let app = test::init_service(api::app(f.state.clone(), &ApiConfig::default())).await;
    let keeper = Sleeper::new();
    let good = json!({"strategies": [{"priority": true, "execution_time": 5_000_000, "pid": keeper.pid()}]});
    send(
        &app,
        post_json("/api/v1/scheduling/strategies", &good.to_string()),
    )
    .await;
    f.to_scheduler.take().unwrap();
    let (_, _, before) = send(&app, get("/api/v1/scheduling/strategies/config")).await;

    let me = std::process::id();
    let k = keeper.pid();
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"strategies": [{"execution_time": 1_000_000_001u64, "pid": k}]}),
            "strategies[0].execution_time",
        ),
        (
            json!({"strategies": [{"execution_time": 1_000_000, "pid": 0}]}),
            "strategies[0].pid: PID 0",
        ),
        (
            json!({"strategies": [{"execution_time": 1_000_000, "pid": 1}]}),
            "strategies[0].pid: PID 1",
        ),
        (
            json!({"strategies": [{"execution_time": 1_000_000, "pid": me}]}),
            "is scx_pilot itself",
        ),
        (
            json!({"strategies": [{"execution_time": 1_000_000}]}),
            "strategies[0].pid: a strategy must target something",
        ),
        (
            // `selectors: []` is no selectors, so no target.
            json!({"strategies": [{"execution_time": 1_000_000, "selectors": []}]}),
            "strategies[0].pid: a strategy must target something",
        ),
        (
            json!({"strategies": [{"execution_time": 1_000_000, "pid": k, "selectors": [{"key": "a", "value": "b"}]}]}),
            "not both",
        ),
        (
            json!({"strategies": [{"execution_time": 1_000_000, "selectors": [{"key": "", "value": "b"}]}]}),
            "strategies[0].selectors[0].key",
        ),
        (
            json!({"strategies": [{"execution_time": 1_000_000, "pid": k, "prio": true}]}),
            "strategies[0].prio: unknown field `prio`",
        ),
        (
            json!({"strategies": [{"execution_time": 1_000_000, "selectors": [{"key": "a", "value": "b", "op": "in"}]}]}),
            "unknown field `op`",
        ),
        (
            json!({"strategies": [], "mode": "merge"}),
            "unknown field `mode`",
        ),
        (
            json!({"strategies": [{"execution_time": "fast", "pid": k}]}),
            "strategies[0].execution_time: invalid type",
        ),
        (
            json!({"strategies": [{"execution_time": 1_000_000, "pid": -5}]}),
            "strategies[0].pid",
        ),
        (
            json!({"strategies": [{"execution_time": 1_000_000, "pid": 4_294_967_296u64}]}),
            "strategies[0].pid",
        ),
        (
            json!({"strategies": [{"priority": "yes", "execution_time": 1_000_000, "pid": k}]}),
            "strategies[0].priority",
        ),
        (
            json!({"strategies": [{"priority": 2, "execution_time": 1_000_000, "pid": k}]}),
            "strategies[0].priority: invalid value: integer `2`, expected a bool or the integer 0 or 1",
        ),
        (
            json!({"strategies": [{"priority": -1, "execution_time": 1_000_000, "pid": k}]}),
            "strategies[0].priority",
        ),
        (
            json!({"strategy": []}),
            "unknown field `strategy`, expected `strategies`",
        ),
        (json!({}), "missing field `strategies`"),
        (json!({"strategies": {}}), "strategies: invalid type"),
    ];
    for (body, needle) in cases {
        let (status, _, resp) = send(
            &app,
            post_json("/api/v1/scheduling/strategies", &body.to_string()),
        )
        .await;
        assert_error(status, &resp, StatusCode::BAD_REQUEST, needle);
    }
    let too_many: Vec<Value> = (0..300)
        .map(|_| json!({"execution_time": 1_000_000, "pid": k}))
        .collect();
    let (status, _, resp) = send(
        &app,
        post_json(
            "/api/v1/scheduling/strategies",
            &json!({ "strategies": too_many }).to_string(),
        ),
    )
    .await;
    assert_error(
        status,
        &resp,
        StatusCode::BAD_REQUEST,
        "too many strategies",
    );

    assert!(
        f.to_scheduler.take().is_none(),
        "an invalid set reached the scheduler"
    );
    let (_, _, after) = send(&app, get("/api/v1/scheduling/strategies/config")).await;
    assert_eq!(before["strategies"], after["strategies"]);
    assert_eq!(before["updated_at"], after["updated_at"]);
}

#[actix_web::test]
async fn kernel_threads_are_refused() {
    // PID 2 is kthreadd on Linux, seen from the host's PID namespace (in a
    // container's own namespace no kernel thread is visible to test with).
    let stat = std::fs::read_to_string("/proc/2/stat").unwrap_or_default();
    assert!(
        stat.contains("(kthreadd)"),
        "this test needs the host's PID namespace, where PID 2 is kthreadd; /proc/2/stat: {stat:?}"
    );
    let f = fixture(Mode::Kernel);
    let app = test::init_service(api::app(f.state.clone(), &ApiConfig::default())).await;
    let body = json!({"strategies": [{"execution_time": 1_000_000, "pid": 2}]});
    let (status, _, resp) = send(
        &app,
        post_json("/api/v1/scheduling/strategies", &body.to_string()),
    )
    .await;
    assert_error(status, &resp, StatusCode::BAD_REQUEST, "kernel thread");
}

#[actix_web::test]
async fn the_scheduler_gets_the_newest_of_the_sets_it_did_not_take() {
    let f = fixture(Mode::Kernel);
    let app = test::init_service(api::app(f.state.clone(), &ApiConfig::default())).await;
    let s = Sleeper::new();
    // Six sets without the scheduler reading: the last one replaced the others.
    for i in 1..=6u64 {
        let body = json!({"strategies": [{"execution_time": i * 100_000, "pid": s.pid()}]});
        let (status, _, _) = send(
            &app,
            post_json("/api/v1/scheduling/strategies", &body.to_string()),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
    }
    let newest = f
        .to_scheduler
        .take()
        .expect("a set was sent to the scheduler");
    assert_eq!(newest[&s.pid()].slice_ns, 600_000);
    assert!(f.to_scheduler.take().is_none(), "an older set was kept");
}

/// A /proc with two processes of one pod, each in its own container (the
/// sandbox's `pause` and the app), and one outside pods.
fn fake_proc(name: &str) -> TempDir {
    let dir = TempDir::new(name);
    let root = dir.path();
    let uid = "65979e01-4cb1-4d08-9dba-45530253ff00";
    let cid = "5148a146ffbbe8672f11494843d54b8769d2eccc677c02027fc09aba192e3c67";
    let app_cid = "9f2c0a1b7e3d4c5b6a79881706f5e4d3c2b1a0f9e8d7c6b5a4938271605f4e3d";
    let add = |pid: u32, comm: &str, ppid: u32, cgroup: String| {
        let d = root.join(pid.to_string());
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("comm"), format!("{comm}\n")).unwrap();
        std::fs::write(
            d.join("stat"),
            format!("{pid} ({comm}) S {ppid} 1 1 0 -1 0"),
        )
        .unwrap();
        std::fs::write(d.join("cgroup"), cgroup).unwrap();
    };
    let uid_us = uid.replace('-', "_");
    add(717720, "pause", 717576, format!("0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid_us}.slice/cri-containerd-{cid}.scope\n"));
    add(718001, "loki", 717576, format!("0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid_us}.slice/cri-containerd-{app_cid}.scope\n"));
    add(900, "sshd", 1, "0::/system.slice/ssh.service\n".into());
    dir
}

#[actix_web::test]
async fn pods_pids_documented_shape_from_a_proc_root() {
    let proc_dir = fake_proc("pods");
    let root = proc_dir.path().to_path_buf();
    let f = fixture(Mode::ApiOnly);
    let state = web::Data::new(ApiState::from(
        AgentState::new(f.metrics.clone(), f.status.clone()).with_proc_root(&root),
    ));
    let app = test::init_service(api::app(state, &ApiConfig::default())).await;
    let (status, _, body) = send(&app, get("/api/v1/pods/pids")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["success"], json!(true));
    assert_eq!(
        body["message"],
        json!("Pod-PID mappings retrieved successfully")
    );
    assert_rfc3339_utc(&body["timestamp"]);
    // One entry per pod, as the contract's example: its containers' processes
    // together, the first one's container at the top, each process's own.
    let pause_cid = "5148a146ffbbe8672f11494843d54b8769d2eccc677c02027fc09aba192e3c67";
    let app_cid = "9f2c0a1b7e3d4c5b6a79881706f5e4d3c2b1a0f9e8d7c6b5a4938271605f4e3d";
    assert_eq!(
        body["pods"],
        json!([{
            "pod_name": "",
            "namespace": "",
            "pod_uid": "65979e01-4cb1-4d08-9dba-45530253ff00",
            "container_id": pause_cid,
            "processes": [
                {"pid": 717720, "command": "pause", "ppid": 717576, "container_id": pause_cid},
                {"pid": 718001, "command": "loki", "ppid": 717576, "container_id": app_cid}
            ]
        }])
    );
    let data_pods = body["data"]["pods"].as_array().unwrap();
    assert_eq!(data_pods.len(), 1, "{body}");
    let containers: Vec<_> = data_pods[0]["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["container_id"].clone())
        .collect();
    assert_eq!(containers, [json!(pause_cid), json!(app_cid)]);
}

#[actix_web::test]
async fn pods_pids_empty_is_a_list_and_unreadable_proc_is_the_documented_error() {
    let empty_dir = TempDir::new("empty_proc");
    let empty = empty_dir.path().to_path_buf();
    let f = fixture(Mode::ApiOnly);
    let state = web::Data::new(ApiState::from(
        AgentState::new(f.metrics.clone(), f.status.clone()).with_proc_root(&empty),
    ));
    let app = test::init_service(api::app(state, &ApiConfig::default())).await;
    let (status, _, body) = send(&app, get("/api/v1/pods/pids")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["pods"], json!([]));

    let state = web::Data::new(ApiState::from(
        AgentState::new(f.metrics.clone(), f.status.clone())
            .with_proc_root(Path::new("/nonexistent/proc")),
    ));
    let app = test::init_service(api::app(state, &ApiConfig::default())).await;
    let (status, _, body) = send(&app, get("/api/v1/pods/pids")).await;
    assert_error(
        status,
        &body,
        StatusCode::INTERNAL_SERVER_ERROR,
        "Failed to get pod-pid mappings: ",
    );
}

#[actix_web::test]
async fn health_reflects_mode_attachment_and_sample_age() {
    // api-only: healthy, scheduler disabled.
    let f = fixture(Mode::ApiOnly);
    let app = test::init_service(api::app(f.state.clone(), &ApiConfig::default())).await;
    let (status, _, body) = send(&app, get("/health")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], json!("healthy"));
    assert_eq!(body["service"], json!("BSS Metrics API Server"));
    assert_rfc3339_utc(&body["timestamp"]);
    assert_eq!(body["mode"], json!("api-only"));
    assert_eq!(body["components"]["scheduler"]["status"], json!("disabled"));
    // No scheduler of ours: the kernel's own applies every cgroup control.
    assert!(body["components"]["scheduler"].get("cgroup_cpu").is_none());
    assert_eq!(
        body["components"]["kubernetes"]["status"],
        json!("not configured")
    );
    assert_eq!(body["components"]["kubernetes"]["connected"], json!(false));

    // Scheduler mode, not attached yet: 503.
    let f = fixture(Mode::Kernel);
    let app = test::init_service(api::app(f.state.clone(), &ApiConfig::default())).await;
    let (status, _, body) = send(&app, get("/health")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["status"], json!("unhealthy"));
    assert_eq!(body["components"]["scheduler"]["status"], json!("down"));
    assert_eq!(body["components"]["sampler"]["status"], json!("waiting"));

    // Attached with a fresh sample: 200.
    let now = Utc::now();
    f.status.update(|s| {
        s.attached = true;
        s.ops_name = Some("pilot".into());
        s.attached_at = Some(now);
        s.last_sample_at = Some(now);
        s.strategy_pids = 3;
    });
    let (status, _, body) = send(&app, get("/health")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], json!("healthy"));
    assert_eq!(body["problems"], json!([]));
    let sched = &body["components"]["scheduler"];
    assert_eq!(sched["attached"], json!(true));
    assert_eq!(sched["ops_name"], json!("pilot"));
    assert_eq!(sched["strategy_pids"], json!(3));
    // What the README promises an operator: pod CPU limits are not enforced.
    assert_eq!(
        sched["cgroup_cpu"],
        json!({"weights_honoured": true, "limits_enforced": false})
    );
    assert_eq!(
        assert_rfc3339_utc(&body["components"]["sampler"]["last_sample_at"]).timestamp_millis(),
        now.timestamp_millis()
    );

    // Stale samples: 503.
    f.status
        .update(|s| s.last_sample_at = Some(now - chrono::Duration::seconds(10)));
    let (status, _, body) = send(&app, get("/health")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["components"]["sampler"]["status"], json!("stale"));
    assert!(body["problems"][0].as_str().unwrap().contains("old"));

    // The kernel unloaded the scheduler: 503 with the reason.
    f.status.update(|s| {
        s.attached = false;
        s.last_sample_at = Some(Utc::now());
        s.last_exit = Some("runnable task stall".into());
    });
    let (status, _, body) = send(&app, get("/health")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        body["components"]["scheduler"]["last_exit"],
        json!("runnable task stall")
    );
    assert!(body["problems"][0]
        .as_str()
        .unwrap()
        .contains("runnable task stall"));
}

#[actix_web::test]
async fn liveness_always_and_readiness_while_scheduling_even_degraded() {
    let f = fixture(Mode::ApiOnly);
    let app = test::init_service(api::app(f.state.clone(), &ApiConfig::default())).await;
    let (status, _, body) = send(&app, get("/readyz")).await;
    assert_eq!((status, &body["status"]), (StatusCode::OK, &json!("ready")));

    // Scheduler mode, not attached: alive, not ready, with the reason.
    let f = fixture(Mode::User);
    let app = test::init_service(api::app(f.state.clone(), &ApiConfig::default())).await;
    let (status, _, body) = send(&app, get("/livez")).await;
    assert_eq!((status, &body["status"]), (StatusCode::OK, &json!("alive")));
    f.status
        .update(|s| s.last_exit = Some("runnable task stall".into()));
    let (status, _, body) = send(&app, get("/readyz")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["status"], json!("not ready"));
    assert_eq!(
        body["reason"],
        json!("scheduler is not attached (last exit: runnable task stall)")
    );

    // Attached while the dispatcher is in fallback: /health says 503, but
    // the node is scheduled, so ready (degraded) and alive.
    f.status.update(|s| {
        s.attached = true;
        s.last_sample_at = Some(Utc::now());
        s.dispatcher = Some(scx_pilot::sched::DispatcherStatus {
            fallback_active: true,
            fallbacks: 2,
            ..Default::default()
        });
    });
    let (status, _, _) = send(&app, get("/health")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let (status, _, body) = send(&app, get("/readyz")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["reason"], Value::Null);
    assert!(
        body["degraded"][0].as_str().unwrap().contains("fallback"),
        "{body}"
    );
    let (status, _, _) = send(&app, get("/livez")).await;
    assert_eq!(status, StatusCode::OK);
}

#[actix_web::test]
async fn index_lists_every_endpoint_and_each_one_is_routed() {
    let f = fixture(Mode::ApiOnly);
    let app = test::init_service(api::app(f.state.clone(), &ApiConfig::default())).await;
    let (status, _, body) = send(&app, get("/")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["name"], json!("scx_pilot"));
    assert_eq!(body["version"], json!(env!("CARGO_PKG_VERSION")));
    assert_eq!(body["mode"], json!("api-only"));
    let listed = body["endpoints"].as_array().unwrap();
    assert_eq!(listed.len(), ENDPOINTS.len());
    for e in listed {
        assert!(!e["description"].as_str().unwrap().is_empty());
    }
    // Every listed method+path is routed (neither 404 nor 405).
    for e in ENDPOINTS {
        let req = test::TestRequest::default()
            .method(e.method.parse().unwrap())
            .uri(e.path)
            .insert_header((header::CONTENT_TYPE, "application/json"))
            .set_payload("{}")
            .to_request();
        let res = test::call_service(&app, req).await;
        assert!(
            res.status() != StatusCode::NOT_FOUND && res.status() != StatusCode::METHOD_NOT_ALLOWED,
            "{} {} -> {}",
            e.method,
            e.path,
            res.status()
        );
    }
}

#[actix_web::test]
async fn unknown_routes_404_and_wrong_methods_405_with_allow() {
    let f = fixture(Mode::ApiOnly);
    let app = test::init_service(api::app(f.state.clone(), &ApiConfig::default())).await;
    for path in ["/nope", "/api/v1", "/api/v1/metrics/", "/api/v2/metrics"] {
        let (status, _, body) = send(&app, get(path)).await;
        assert_error(status, &body, StatusCode::NOT_FOUND, path);
    }
    let (status, _, body) = send(&app, test::TestRequest::post().uri("/nope").to_request()).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "POST /nope");
    // A client whose base URL ends in '/' asks for `//api/v1/...`: served as
    // the route it names (the original server redirected there).
    for path in [
        "//api/v1/scheduling/strategies",
        "/api//v1/metrics",
        "//health",
    ] {
        let (status, _, body) = send(&app, get(path)).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
    }
    let (status, _, body) = send(&app, get("//nope")).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "/nope");

    let mut paths: Vec<&str> = ENDPOINTS.iter().map(|e| e.path).collect();
    paths.dedup();
    for path in paths {
        let allowed: Vec<&str> = ENDPOINTS
            .iter()
            .filter(|e| e.path == path)
            .map(|e| e.method)
            .collect();
        // What a preflight answers too: OPTIONS is served on every path.
        let allow = format!("{}, OPTIONS", allowed.join(", "));
        for method in ["GET", "POST", "PUT", "DELETE", "PATCH"] {
            if allowed.contains(&method) {
                continue;
            }
            let req = test::TestRequest::default()
                .method(method.parse().unwrap())
                .uri(path)
                .to_request();
            let (status, headers, body) = send(&app, req).await;
            assert_error(status, &body, StatusCode::METHOD_NOT_ALLOWED, "not allowed");
            assert_eq!(
                headers.get(header::ALLOW).unwrap().to_str().unwrap(),
                allow,
                "{method} {path}"
            );
        }
    }
}

#[actix_web::test]
async fn cors_is_for_reads_only() {
    let f = fixture(Mode::ApiOnly);
    let app = test::init_service(api::app(f.state.clone(), &ApiConfig::default())).await;
    let req = test::TestRequest::get()
        .uri("/api/v1/metrics")
        .insert_header((header::ORIGIN, "http://dashboard.example"))
        .to_request();
    let (status, headers, _) = send(&app, req).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        headers.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).unwrap(),
        "*"
    );

    // A preflight is answered (never 405), but a write from another page's
    // origin is refused and carries no CORS headers; the agent's own origin
    // (the Host the request went to) may write.
    let req = test::TestRequest::default()
        .method(actix_web::http::Method::OPTIONS)
        .uri("/api/v1/scheduling/strategies")
        .insert_header((header::ORIGIN, "http://dashboard.example"))
        .insert_header((header::ACCESS_CONTROL_REQUEST_METHOD, "POST"))
        .to_request();
    let res = test::call_service(&app, req).await;
    let (status, headers) = (res.status(), res.headers().clone());
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        headers.get(header::ACCESS_CONTROL_ALLOW_METHODS).unwrap(),
        "GET, POST, OPTIONS"
    );
    // The route's own methods, as a 405 there lists them.
    assert_eq!(headers.get(header::ALLOW).unwrap(), "GET, POST, OPTIONS");
    let req = test::TestRequest::post()
        .uri("/api/v1/metrics")
        .insert_header((header::ORIGIN, "http://dashboard.example"))
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .set_payload(METRICS)
        .to_request();
    let (status, headers, body) = send(&app, req).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "--cors-write-origin");
    assert!(headers.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
    let req = test::TestRequest::post()
        .uri("/api/v1/metrics")
        .insert_header((header::HOST, "127.0.0.1:8080"))
        .insert_header((header::ORIGIN, "http://127.0.0.1:8080"))
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .set_payload(METRICS)
        .to_request();
    let (status, headers, _) = send(&app, req).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());

    // A configured origin list: listed origins get CORS headers, others none
    // (so browsers keep the response from their pages).
    let config = ApiConfig {
        cors_origin: "http://ok.example, http://also.example".into(),
        ..ApiConfig::default()
    };
    let app = test::init_service(api::app(f.state.clone(), &config)).await;
    let req = test::TestRequest::get()
        .uri("/health")
        .insert_header((header::ORIGIN, "http://also.example"))
        .to_request();
    let (status, headers, _) = send(&app, req).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        headers.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).unwrap(),
        "http://also.example"
    );
    let req = test::TestRequest::get()
        .uri("/health")
        .insert_header((header::ORIGIN, "http://evil.example"))
        .to_request();
    let (status, headers, _) = send(&app, req).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
    // Their preflight is answered without an allowed origin, which a
    // browser takes as a refusal.
    let req = test::TestRequest::default()
        .method(actix_web::http::Method::OPTIONS)
        .uri("/health")
        .insert_header((header::ORIGIN, "http://evil.example"))
        .insert_header((header::ACCESS_CONTROL_REQUEST_METHOD, "GET"))
        .to_request();
    let res = test::call_service(&app, req).await;
    let (status, headers) = (res.status(), res.headers().clone());
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(headers.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());

    // CORS off.
    let config = ApiConfig {
        cors_origin: String::new(),
        ..ApiConfig::default()
    };
    let app = test::init_service(api::app(f.state.clone(), &config)).await;
    let req = test::TestRequest::get()
        .uri("/health")
        .insert_header((header::ORIGIN, "http://dashboard.example"))
        .to_request();
    let (status, headers, _) = send(&app, req).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
}

#[actix_web::test]
async fn garbage_never_gets_a_500() {
    let f = fixture(Mode::Kernel);
    let app = test::init_service(api::app(f.state.clone(), &ApiConfig::default())).await;
    let bodies: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"null".to_vec(),
        b"\xff\xfe\x00garbage".to_vec(),
        b"{\"strategies\": [null]}".to_vec(),
        b"{\"strategies\": [{\"execution_time\": 1e400}]}".to_vec(),
        "{\"usersched_pid\": 1, \"nr_queued\": {\"a\": [".repeat(50).into_bytes(),
        b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[".to_vec(),
        "\u{2028}{}".as_bytes().to_vec(),
    ];
    for path in ["/api/v1/metrics", "/api/v1/scheduling/strategies"] {
        for body in &bodies {
            let req = test::TestRequest::post()
                .uri(path)
                .insert_header((header::CONTENT_TYPE, "application/json"))
                .set_payload(body.clone())
                .to_request();
            let (status, _, resp) = send(&app, req).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{path} {resp}");
            assert_eq!(resp["success"], json!(false));
        }
    }
}

#[actix_web::test]
async fn openapi_document_matches_the_router() {
    let f = fixture(Mode::ApiOnly);
    let app = test::init_service(api::app(f.state.clone(), &ApiConfig::default())).await;
    let res = test::call_service(&app, get("/api/v1/openapi.json")).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.headers().get(header::CONTENT_TYPE).unwrap(),
        "application/json"
    );
    let doc: Value = serde_json::from_slice(&test::read_body(res).await).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    assert_eq!(doc["info"]["version"], json!(env!("CARGO_PKG_VERSION")));

    let paths = doc["paths"].as_object().unwrap();
    let mut documented = Vec::new();
    for (path, item) in paths {
        for method in item.as_object().unwrap().keys() {
            documented.push((method.to_uppercase(), path.clone()));
        }
    }
    documented.sort();
    let mut routed: Vec<(String, String)> = ENDPOINTS
        .iter()
        .map(|e| (e.method.to_string(), e.path.to_string()))
        .collect();
    routed.sort();
    assert_eq!(documented, routed);

    // Error responses are documented with the error body.
    let post_strategies = &paths["/api/v1/scheduling/strategies"]["post"]["responses"];
    for code in ["200", "400", "405", "413", "415"] {
        assert!(
            post_strategies.get(code).is_some(),
            "POST strategies lacks {code}"
        );
    }
    assert!(paths["/health"]["get"]["responses"].get("503").is_some());
    assert!(paths["/api/v1/pods/pids"]["get"]["responses"]
        .get("500")
        .is_some());
    assert!(paths["/api/v1/metrics/history"]["get"]["parameters"][0]["name"] == json!("seconds"));

    // The schemas of BssData, PolicyCounters and Rates (derived from the types)
    // name exactly the fields those types serialize.
    let schemas = &doc["components"]["schemas"];
    let props = |name: &str| -> Vec<String> {
        let mut v: Vec<String> = schemas[name]["properties"]
            .as_object()
            .unwrap_or_else(|| panic!("schema {name} missing"))
            .keys()
            .cloned()
            .collect();
        v.sort();
        v
    };
    let keys = |v: Value| -> Vec<String> {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(
        props("BssData"),
        keys(
            serde_json::to_value(BssData {
                usersched_last_run_at: 1,
                ..BssData::default()
            })
            .unwrap()
        )
    );
    assert_eq!(
        props("PolicyCounters"),
        keys(serde_json::to_value(PolicyCounters::default()).unwrap())
    );
    assert_eq!(
        props("Rates"),
        keys(serde_json::to_value(scx_pilot::metrics::Rates::default()).unwrap())
    );
    assert_eq!(
        props("ErrorBody"),
        vec!["error".to_string(), "success".to_string()]
    );
    // The strategy schema says unknown fields are not allowed and gives the bounds.
    let strategy = &schemas["Strategy"];
    assert_eq!(strategy["additionalProperties"], json!(false), "{strategy}");
    assert_eq!(
        strategy["properties"]["execution_time"]["minimum"],
        json!(50000)
    );
    assert_eq!(
        strategy["properties"]["execution_time"]["maximum"],
        json!(1000000000)
    );
}

#[actix_web::test]
async fn metrics_body_cache_follows_new_samples_and_reports() {
    let f = fixture(Mode::Kernel);
    let app = test::init_service(api::app(f.state.clone(), &ApiConfig::default())).await;
    let (_, _, body) = send(&app, get("/api/v1/metrics")).await;
    assert_eq!(body["metrics"], Value::Null);
    // Within the same second, each change shows at once.
    for kernel in [10, 20, 30] {
        f.metrics.push(sample(Utc::now(), kernel));
        let (_, _, body) = send(&app, get("/api/v1/metrics")).await;
        assert_eq!(
            body["metrics"]["data"]["nr_kernel_dispatches"],
            json!(kernel)
        );
        let (_, _, again) = send(&app, get("/api/v1/metrics")).await;
        assert_eq!(again["metrics"], body["metrics"]);
    }
    send(&app, post_json("/api/v1/metrics", METRICS)).await;
    let (_, _, body) = send(&app, get("/api/v1/metrics")).await;
    assert_eq!(body["external"][0]["data"]["usersched_pid"], json!(1234));
    let newer = METRICS.replace("\"nr_queued\": 10", "\"nr_queued\": 12");
    send(&app, post_json("/api/v1/metrics", &newer)).await;
    let (_, _, body) = send(&app, get("/api/v1/metrics")).await;
    assert_eq!(body["external"][0]["data"]["nr_queued"], json!(12));
    // The envelope timestamp moves with the clock.
    let t1 = assert_rfc3339_utc(&body["timestamp"]);
    std::thread::sleep(Duration::from_millis(1100));
    let (_, _, body) = send(&app, get("/api/v1/metrics")).await;
    assert!(assert_rfc3339_utc(&body["timestamp"]) > t1);
}

/// What real clients send that has one meaning is accepted and reported:
/// `selectors: []`, a slice below the floor, a PID whose process exited,
/// `priority` as 0/1. The list answers `priority` as asked.
#[actix_web::test]
async fn strategies_lenient_inputs_are_accepted_and_reported() {
    let f = fixture(Mode::Kernel);
    let app = test::init_service(api::app(f.state.clone(), &ApiConfig::default())).await;
    let keeper = Sleeper::new();
    let k = keeper.pid();
    // Above any pid_max: no process can have it.
    let body = json!({"strategies": [
        {"priority": 1, "execution_time": 20_000, "pid": k, "selectors": []},
        {"priority": false, "execution_time": 0, "command_regex": "^nothing-has-this$", "selectors": []},
        {"priority": true, "execution_time": 1_000_000, "pid": 999_999_999},
    ]});
    let (status, _, resp) = send(
        &app,
        post_json("/api/v1/scheduling/strategies", &body.to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{resp}");
    assert_eq!(resp["success"], json!(true));
    let warnings: Vec<&str> = resp["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap())
        .collect();
    assert_eq!(warnings.len(), 3, "{resp}");
    assert!(warnings[0].starts_with("strategies[0].execution_time: 20000 ns raised to 50000 ns"));
    assert!(warnings[1]
        .starts_with("strategies[1].execution_time: 0 means the scheduler's default slice"));
    assert!(warnings[2].starts_with("strategies[2].pid: no process with PID 999999999: accepted"));
    let sent = f
        .to_scheduler
        .take()
        .expect("a set was sent to the scheduler");
    assert_eq!(
        sent,
        DesiredStrategies::from([(
            k,
            PidStrategy {
                slice_ns: 50_000,
                priority: true
            }
        )])
    );

    let (_, _, config) = send(&app, get("/api/v1/scheduling/strategies/config")).await;
    assert_eq!(config["warnings"], resp["warnings"]);
    let stored = config["strategies"].as_array().unwrap();
    assert_eq!(stored[0]["execution_time"], json!(50_000));
    assert!(stored[0].get("selectors").is_none(), "{config}");
    assert_eq!(stored[1]["execution_time"], json!(0));
    assert_eq!(stored[2]["resolution"]["pids"], json!([]));
    assert!(
        stored[2]["resolution"]["note"]
            .as_str()
            .unwrap()
            .contains("no process with PID 999999999"),
        "{config}"
    );

    let (_, _, list) = send(&app, get("/api/v1/scheduling/strategies")).await;
    assert_eq!(
        list["scheduling"],
        json!([{"priority": true, "execution_time": 50_000, "pid": k}])
    );
    let (_, _, list) = send(&app, get("/api/v1/scheduling/strategies?priority=int")).await;
    assert_eq!(
        list["scheduling"],
        json!([{"priority": 1, "execution_time": 50_000, "pid": k}])
    );
    let (status, _, resp) = send(&app, get("/api/v1/scheduling/strategies?priority=yes")).await;
    assert_error(
        status,
        &resp,
        StatusCode::BAD_REQUEST,
        "priority must be bool or int",
    );
}

/// Gthulhu's scheduler sends `usersched_last_run_at` and no `usersched_pid`:
/// accepted, kept per client address, and shown as the original's `data`.
#[actix_web::test]
async fn metrics_without_usersched_pid_are_kept_by_address() {
    let f = fixture(Mode::ApiOnly);
    let app = test::init_service(api::app(f.state.clone(), &ApiConfig::default())).await;
    let (_, _, body) = send(&app, get("/api/v1/metrics")).await;
    assert_eq!(body["success"], json!(true));
    assert_eq!(body["data"], Value::Null);
    assert_eq!(body["metrics_timestamp"], Value::Null);
    let gthulhu = |queued: u64| {
        format!(
            "{{\"usersched_last_run_at\":1234567890123,\"nr_queued\":{queued},\"nr_scheduled\":5,\"nr_running\":2,\"nr_online_cpus\":8,\"nr_user_dispatches\":100,\"nr_kernel_dispatches\":50,\"nr_cancel_dispatches\":2,\"nr_bounce_dispatches\":1,\"nr_failed_dispatches\":0,\"nr_sched_congested\":3}}"
        )
    };
    for queued in [1, 2] {
        let (status, _, resp) = send(&app, post_json("/api/v1/metrics", &gthulhu(queued))).await;
        assert_eq!(status, StatusCode::OK, "{resp}");
    }
    let (_, _, body) = send(&app, get("/api/v1/metrics")).await;
    let external = body["external"].as_array().unwrap();
    assert_eq!(external.len(), 1, "one reporter: {body}");
    assert!(external[0]["reporter"]
        .as_str()
        .unwrap()
        .starts_with("address "));
    assert_eq!(body["data"]["nr_queued"], json!(2));
    assert_eq!(
        body["data"]["usersched_last_run_at"],
        json!(1234567890123u64)
    );
    assert_eq!(body["data"]["usersched_pid"], json!(0));
    assert_rfc3339_utc(&body["metrics_timestamp"]);
}
