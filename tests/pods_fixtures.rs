//! Table-driven: every real-world cgroup layout in tests/fixtures/cgroup_paths.json
//! parses to the expected pod UID (with dashes) and container ID.

use scx_pilot::pods::{parse_cgroup, PodRef};
use serde_json::Value;

#[test]
fn every_fixture_layout_parses() {
    let text = include_str!("fixtures/cgroup_paths.json");
    let doc: Value = serde_json::from_str(text).unwrap();
    let cases = doc["cases"].as_array().unwrap();
    assert!(cases.len() >= 20);
    let mut failures = Vec::new();
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let cgroup = case["cgroup"].as_str().unwrap();
        let expected = case["pod_uid"].as_str().map(|uid| PodRef {
            pod_uid: uid.to_string(),
            container_id: case["container_id"].as_str().unwrap().to_string(),
        });
        if let Some(e) = &expected {
            assert!(
                e.container_id.is_empty() || e.container_id.len() == 64,
                "fixture {name}: container ID is not 64 hex digits"
            );
        }
        let got = parse_cgroup(cgroup);
        if got != expected {
            failures.push(format!("{name}: expected {expected:?}, got {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
