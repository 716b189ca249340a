//! Checks of the Gthulhu wire fixture itself: the request bytes it builds,
//! and that its decoder is as strict (and as lenient) as Go's encoding/json.
//! The replays against the server live with the API tests.

#[path = "fixtures/gthulhu_wire.rs"]
mod gthulhu_wire;

use gthulhu_wire::*;
use serde_json::{json, Value};

const PEM: &str = "-----BEGIN PUBLIC KEY-----\nMIIBIjAN+/=\n-----END PUBLIC KEY-----\n";

fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

#[test]
fn metrics_body_is_go_marshal_of_bss_data() {
    let req = scheduler_2025_08::metrics_post("T", SAMPLE_BSS);
    assert_eq!(req.method, "POST");
    assert_eq!(req.path, "/api/v1/metrics");
    assert_eq!(
        String::from_utf8(req.body.unwrap()).unwrap(),
        "{\"usersched_last_run_at\":1234567890123,\"nr_queued\":10,\"nr_scheduled\":5,\
         \"nr_running\":2,\"nr_online_cpus\":8,\"nr_user_dispatches\":100,\
         \"nr_kernel_dispatches\":50,\"nr_cancel_dispatches\":2,\"nr_bounce_dispatches\":1,\
         \"nr_failed_dispatches\":0,\"nr_sched_congested\":3}"
    );
    assert!(req
        .headers
        .contains(&("Authorization", "Bearer T".to_string())));
    assert!(req
        .headers
        .contains(&("Content-Type", "application/json".to_string())));
}

#[test]
fn gets_carry_content_type_and_token_but_no_body() {
    for req in [
        scheduler_2025_08::strategies_get("T"),
        plugin_2026_02::strategies_get(Some("T")),
        cli_2026_02::pods_get(Some("T")),
    ] {
        assert_eq!(req.method, "GET");
        assert!(req.body.is_none());
        assert!(req
            .headers
            .contains(&("Content-Type", "application/json".into())));
        assert!(req.headers.contains(&("Authorization", "Bearer T".into())));
    }
    let open = plugin_2025_12::strategies_get(None);
    assert!(open
        .headers
        .iter()
        .all(|(name, _)| *name != "Authorization"));
}

#[test]
fn token_bodies_escape_like_their_encoders() {
    let go = scheduler_2025_08::token_request(PEM);
    assert_eq!(
        go.body.unwrap(),
        br#"{"public_key":"-----BEGIN PUBLIC KEY-----\nMIIBIjAN+/=\n-----END PUBLIC KEY-----\n"}"#
    );
    assert!(go.headers.iter().all(|(name, _)| *name != "Authorization"));
    // The web UI trims the pasted key.
    let web = web_ui_2025_08::token_request(&format!("  {PEM}\n"), None);
    assert_eq!(
        web.body.unwrap(),
        br#"{"public_key":"-----BEGIN PUBLIC KEY-----\nMIIBIjAN+/=\n-----END PUBLIC KEY-----"}"#
    );
    let html = [("k", WireValue::Str("<a&b>\u{2028}\u{1}"))];
    assert_eq!(
        encode_object(Encoder::Go, &html),
        r#"{"k":"\u003ca\u0026b\u003e\u2028\u0001"}"#
    );
    assert_eq!(
        encode_object(Encoder::Js, &html),
        "{\"k\":\"<a&b>\u{2028}\\u0001\"}"
    );
}

#[test]
fn web_ui_strategy_body_always_has_selectors() {
    let strategies = [
        web_ui_2025_08::FormStrategy {
            priority: false,
            execution_time: 20000000,
            pid: Some(24261),
            command_regex: None,
            selectors: &[],
        },
        web_ui_2025_08::FormStrategy {
            priority: true,
            execution_time: 20000,
            pid: None,
            command_regex: Some("nr-gnb|ping"),
            selectors: &[("app", "web")],
        },
    ];
    let req = web_ui_2025_08::strategies_post("T", Some("http://node:8080"), &strategies);
    assert_eq!(
        String::from_utf8(req.body.unwrap()).unwrap(),
        r#"{"strategies":[{"priority":false,"execution_time":20000000,"pid":24261,"selectors":[]},{"priority":true,"execution_time":20000,"command_regex":"nr-gnb|ping","selectors":[{"key":"app","value":"web"}]}]}"#
    );
    assert!(req.headers.contains(&("Origin", "http://node:8080".into())));
}

#[test]
fn go_integers_refuse_floats_bools_strings_and_overflow() {
    for bad in [json!(1.0), json!(1e3), json!(true), json!("1"), json!([1])] {
        assert!(go_decode(GoType::Int, &bad).is_err(), "{bad}");
        assert!(go_decode(GoType::Uint64, &bad).is_err(), "{bad}");
    }
    assert!(go_decode(GoType::Uint64, &json!(-1)).is_err());
    assert!(go_decode(GoType::Uint64, &json!(u64::MAX)).is_ok());
    assert!(go_decode(GoType::Int, &json!(u64::MAX)).is_err());
    assert!(go_decode(GoType::Int, &json!(-5)).is_ok());
    assert!(go_decode(GoType::Int, &parse("18446744073709551616")).is_err());
}

#[test]
fn go_bools_and_strings_take_only_their_own_kind() {
    for bad in [json!(0), json!(1), json!("true")] {
        assert!(go_decode(GoType::Bool, &bad).is_err(), "{bad}");
    }
    assert!(go_decode(GoType::String, &json!(5)).is_err());
    assert!(go_decode(GoType::String, &json!(false)).is_err());
    for ty in [
        GoType::Bool,
        GoType::Int,
        GoType::String,
        STRATEGIES_ANSWER_INT,
    ] {
        assert!(
            go_decode(ty, &Value::Null).is_ok(),
            "null is the zero value"
        );
    }
}

#[test]
fn go_structs_ignore_unknown_fields_and_match_keys_without_case() {
    let answer = json!({"SUCCESS": true, "extra": {"x": [1.5]}, "scheduling": []});
    assert!(go_decode(STRATEGIES_ANSWER_BOOL, &answer).is_ok());
    assert_eq!(
        accept_strategies(STRATEGIES_ANSWER_BOOL, &answer),
        Ok(StrategiesOutcome::Replaced(0))
    );
    assert!(go_decode(STRATEGIES_ANSWER_BOOL, &json!({"Success": 1})).is_err());
    assert!(go_decode(STRATEGIES_ANSWER_BOOL, &json!([])).is_err());
    assert!(go_decode(STRATEGIES_ANSWER_BOOL, &json!({})).is_ok());
}

#[test]
fn priority_type_splits_the_plugin_releases() {
    let with_bool = parse(
        r#"{"success":true,"message":"m","timestamp":"t","scheduling":[{"priority":false,"execution_time":10000000,"pid":24261}]}"#,
    );
    let with_int = parse(
        r#"{"success":true,"message":"m","timestamp":"t","scheduling":[{"priority":0,"execution_time":10000000,"pid":24261}]}"#,
    );
    let old = scheduler_2025_08::STRATEGIES_ANSWER;
    assert_eq!(
        accept_strategies(old, &with_bool),
        Ok(StrategiesOutcome::Replaced(1))
    );
    assert!(accept_strategies(old, &with_int).is_err());
    assert_eq!(
        accept_strategies(plugin_2025_12::STRATEGIES_ANSWER, &with_bool),
        Ok(StrategiesOutcome::Replaced(1))
    );
    let new = plugin_2026_02::STRATEGIES_ANSWER;
    assert!(accept_strategies(new, &with_bool).is_err());
    assert_eq!(
        accept_strategies(new, &with_int),
        Ok(StrategiesOutcome::Replaced(1))
    );
    // No strategies: both read an empty list alike.
    let empty = json!({"success": true, "scheduling": []});
    assert_eq!(
        accept_strategies(new, &empty),
        Ok(StrategiesOutcome::Replaced(0))
    );
}

#[test]
fn null_or_failed_strategies_keep_the_previous_map() {
    for body in [
        json!({"success": true, "scheduling": null}),
        json!({"success": true}),
        json!({"success": false, "error": "x"}),
    ] {
        assert_eq!(
            accept_strategies(STRATEGIES_ANSWER_BOOL, &body),
            Ok(StrategiesOutcome::KeptPrevious),
            "{body}"
        );
    }
}

#[test]
fn token_answers_old_new_and_both() {
    let original = parse(
        r#"{"success":true,"message":"Token generated successfully","timestamp":"2026-12-01T21:17:13Z","token":"J"}"#,
    );
    assert_eq!(
        scheduler_2025_08::accept_token(200, &original).map(|t| t.token),
        Ok("J".to_string())
    );
    assert!(web_ui_2025_08::accept_token(&original).is_ok());
    assert!(plugin_2026_02::accept_token(200, &original).is_err());

    let both = json!({
        "success": true, "message": "m", "timestamp": "t", "token": "J",
        "data": {"token": "J", "expired_at": 1_700_000_000i64}
    });
    for accepted in [
        scheduler_2025_08::accept_token(200, &both),
        plugin_2025_12::accept_token(200, &both),
    ] {
        assert_eq!(accepted.unwrap().token, "J");
    }
    assert_eq!(
        plugin_2026_02::accept_token(200, &both),
        Ok(AcceptedToken {
            token: "J".into(),
            reuse_until_unix: Some(1_700_000_000)
        })
    );
    assert!(web_ui_2025_08::accept_token(&both).is_ok());

    let float_expiry = json!({"success": true, "data": {"token": "J", "expired_at": 1.7e9}});
    assert!(plugin_2026_02::accept_token(200, &float_expiry).is_err());
    let no_expiry = json!({"success": true, "data": {"token": "J"}});
    assert_eq!(
        plugin_2026_02::accept_token(200, &no_expiry)
            .unwrap()
            .reuse_until_unix,
        Some(0)
    );
    let refused = json!({"success": false, "error": "Public key verification failed"});
    assert!(scheduler_2025_08::accept_token(401, &refused).is_err());
    assert!(scheduler_2025_08::accept_token(200, &refused).is_err());
}

#[test]
fn metrics_reads_of_the_web_ui_and_the_cli() {
    let body = bss_body(SAMPLE_BSS);
    let original = parse(&format!(
        r#"{{"success":true,"message":"Current metrics retrieved successfully","timestamp":"t","data":{body},"metrics_timestamp":"t"}}"#
    ));
    assert!(web_ui_2025_08::accept_metrics(&original).is_ok());
    assert_eq!(cli_2026_02::accept_metrics(&original), Ok(true));

    let nothing_yet = json!({"success": false, "message": "No metrics data available"});
    assert!(web_ui_2025_08::accept_metrics(&nothing_yet).is_err());
    assert_eq!(cli_2026_02::accept_metrics(&nothing_yet), Ok(false));

    let float_counter = json!({"success": true, "data": {"nr_queued": 1.0}});
    assert!(cli_2026_02::accept_metrics(&float_counter).is_err());
    assert!(accept_metrics_post(200).is_ok());
    assert!(accept_metrics_post(201).is_err());
}

#[test]
fn cli_reads_pods_under_data_only() {
    let both = json!({
        "success": true, "message": "m", "timestamp": "t",
        "pods": [{"pod_uid": "u", "processes": [{"pid": 1, "command": "c", "ppid": 0}]}],
        "data": {
            "pods": [{"pod_uid": "u", "pod_id": "p",
                      "processes": [{"pid": 1, "command": "c", "ppid": 0, "container_id": "x"}]}],
            "timestamp": "t", "node_name": "n", "node_id": "n"
        }
    });
    assert_eq!(cli_2026_02::accept_pods(200, &both), Ok(1));
    let original = json!({"success": true, "pods": null});
    assert_eq!(cli_2026_02::accept_pods(200, &original), Ok(0));
    let bad_pid = json!({"success": true, "data": {"pods": [{"processes": [{"pid": "1"}]}]}});
    assert!(cli_2026_02::accept_pods(200, &bad_pid).is_err());
    assert!(cli_2026_02::accept_pods(401, &json!({"success": false, "error": "e"})).is_err());
}

#[test]
fn web_ui_health_needs_ok_and_healthy() {
    assert!(web_ui_2025_08::health_get().headers.is_empty());
    assert!(web_ui_2025_08::accept_health(200, &json!({"status": "healthy"})).is_ok());
    assert!(web_ui_2025_08::accept_health(503, &json!({"status": "healthy"})).is_err());
    assert!(web_ui_2025_08::accept_health(200, &json!({"status": "degraded"})).is_err());
}
