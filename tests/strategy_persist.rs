//! Persistence: the accepted set survives a restart of the real binary, also
//! after SIGKILL (a crash), and an invalid POST does not touch the saved set.

#[path = "fixtures/agent.rs"]
mod agent;

use agent::{Agent, TempDir};
use serde_json::json;

#[test]
fn strategies_survive_a_restart_and_a_crash() {
    let state = TempDir::new("persist");
    let mut sleeper = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .unwrap();
    let set = json!({"strategies": [
        {"priority": true, "execution_time": 20_000_000, "selectors": [{"key": "nf", "value": "upf"}]},
        {"priority": false, "execution_time": 10_000_000, "pid": sleeper.id()},
        {"priority": false, "execution_time": 3_000_000, "command_regex": "^nginx"},
    ]});

    let mut a = Agent::start(state.path(), &[]);
    let (code, body) = a.post("/api/v1/scheduling/strategies", &set);
    assert_eq!(code, 200, "{body}");
    let config = a.get("/api/v1/scheduling/strategies/config");
    let file = state.path().join("strategies.json");
    assert_eq!(config["state_file"], file.display().to_string());
    // An invalid set is refused and the file keeps the accepted one.
    let saved = std::fs::read(&file).unwrap();
    let (code, _) = a.post(
        "/api/v1/scheduling/strategies",
        &json!({"strategies": [{"execution_time": 1_000_000, "command_regex": "("}]}),
    );
    assert_eq!(code, 400);
    assert_eq!(std::fs::read(&file).unwrap(), saved);
    a.kill(); // SIGKILL: nothing runs at exit.

    for round in 0..2 {
        let mut b = Agent::start(state.path(), &[]);
        let config = b.get("/api/v1/scheduling/strategies/config");
        let stored: Vec<_> = config["strategies"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                let mut s = s.clone();
                s.as_object_mut().unwrap().remove("resolution");
                assert_eq!(
                    s.as_object_mut().unwrap().remove("source"),
                    Some(json!("api"))
                );
                s
            })
            .collect();
        assert_eq!(json!(stored), set["strategies"], "round {round}: {config}");
        assert!(b.stderr_text().contains("loaded 3"), "{}", b.stderr_text());
        // The pid strategy resolves again after the restart.
        let resolved = b.get("/api/v1/scheduling/strategies");
        assert!(
            resolved["scheduling"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["pid"] == sleeper.id()),
            "{resolved}"
        );
        if round == 0 {
            // SIGTERM, the clean way, the second time round.
            unsafe { libc::kill(b.child.id() as i32, libc::SIGTERM) };
            let _ = b.child.wait();
        }
    }
    let _ = sleeper.kill();
    let _ = sleeper.wait();
}

#[test]
fn a_corrupt_state_file_starts_empty_and_is_replaced_at_the_next_post() {
    let state = TempDir::new("persist_bad");
    std::fs::write(state.path().join("strategies.json"), "{ not json").unwrap();
    let a = Agent::start(state.path(), &[]);
    let config = a.get("/api/v1/scheduling/strategies/config");
    assert_eq!(config["strategies"], json!([]));
    assert!(
        a.stderr_text().contains("strategies.json"),
        "{}",
        a.stderr_text()
    );
    // The file is kept aside, so the POST below does not destroy the only copy.
    let aside: Vec<_> = std::fs::read_dir(state.path())
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("strategies.json.rejected-")
        })
        .collect();
    assert_eq!(aside.len(), 1, "{}", a.stderr_text());
    assert_eq!(
        std::fs::read_to_string(aside[0].path()).unwrap(),
        "{ not json"
    );
    assert!(
        a.stderr_text()
            .contains(&aside[0].path().display().to_string()),
        "the log names where it went: {}",
        a.stderr_text()
    );
    let set = json!({"strategies": [{"priority": false, "execution_time": 1_000_000, "command_regex": "^x$"}]});
    assert_eq!(a.post("/api/v1/scheduling/strategies", &set).0, 200);
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(state.path().join("strategies.json")).unwrap())
            .unwrap();
    assert_eq!(saved["strategies"], set["strategies"]);
    assert_eq!(
        std::fs::read_to_string(aside[0].path()).unwrap(),
        "{ not json"
    );
}

/// A state directory that cannot be made at start (a mount not there yet:
/// here its parent is a file): a POST of strategies is refused, says why and
/// changes nothing (it answered "saved successfully" and kept the set only
/// in memory); once the directory can be made, the next POST saves.
#[test]
fn strategies_are_refused_until_the_state_directory_can_be_written() {
    let t = TempDir::new("persist_unwritable");
    let mount = t.path().join("mnt");
    std::fs::write(&mount, "not a directory yet").unwrap();
    let state = mount.join("state");
    let a = Agent::start(&state, &["--auth", "none", "--jwt", "off"]);
    let set = json!({"strategies": [{"priority": false, "execution_time": 1_000_000, "command_regex": "^x$"}]});
    let (code, body) = a.post("/api/v1/scheduling/strategies", &set);
    assert_eq!(code, 500, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("Failed to save")),
        "{body}"
    );
    let config = a.get("/api/v1/scheduling/strategies/config");
    assert_eq!(config["strategies"], json!([]), "{config}");

    std::fs::remove_file(&mount).unwrap();
    std::fs::create_dir(&mount).unwrap();
    let (code, body) = a.post("/api/v1/scheduling/strategies", &set);
    assert_eq!(code, 200, "{body}");
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(state.join("strategies.json")).unwrap()).unwrap();
    assert_eq!(saved["strategies"], set["strategies"]);
}
