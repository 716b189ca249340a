//! `scx_pilot strategies get` and `scx_pilot strategies set -f FILE`.

use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result};
use serde_json::Value;

use super::http::{ApiClient, STRATEGIES_PATH, STRATEGY_CONFIG_PATH};
use super::{print_json, ClientArgs};

/// Print the strategies as posted, each with what it resolved to.
pub fn get(client: &ApiClient, json: bool) -> Result<()> {
    // Untyped: each strategy is shown as the agent has it.
    let v: Value = client.get(STRATEGY_CONFIG_PATH)?;
    if json {
        return print_json(&v);
    }
    let list = v["strategies"].as_array().cloned().unwrap_or_default();
    println!(
        "{} strategies, updated {}",
        list.len(),
        v["updated_at"].as_str().unwrap_or("-")
    );
    for (i, st) in list.iter().enumerate() {
        let mut target = st.clone();
        let resolution = target
            .as_object_mut()
            .and_then(|o| o.remove("resolution"))
            .unwrap_or(Value::Null);
        println!("  [{i}] {target}");
        if !resolution.is_null() {
            println!("      -> {resolution}");
        }
    }
    Ok(())
}

/// Replace the whole set with the one in `file` (`-`: standard input).
pub fn set(client: ApiClient, opts: &ClientArgs, file: &Path) -> Result<()> {
    let body = read_set(file)?;
    let token_file = opts
        .token_file
        .clone()
        .unwrap_or_else(|| crate::auth::default_token_file(&opts.state_dir));
    let token = crate::auth::read(&token_file)
        .with_context(|| format!("reading the write token {}", token_file.display()))?;
    let v: Value = client.with_token(token).post(STRATEGIES_PATH, &body)?;
    if opts.json {
        return print_json(&v);
    }
    let n = body["strategies"].as_array().map_or(0, Vec::len);
    println!(
        "{} ({n} strategies, {})",
        v["message"].as_str().unwrap_or("saved"),
        v["timestamp"].as_str().unwrap_or("-")
    );
    // What the agent accepted other than as written.
    for w in v["warnings"].as_array().into_iter().flatten() {
        println!("  note: {}", w.as_str().unwrap_or_default());
    }
    Ok(())
}

/// The request body from `file`: `{"strategies": [...]}`, or a bare list that
/// is the set itself.
fn read_set(file: &Path) -> Result<Value> {
    let text = if file.as_os_str() == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading standard input")?;
        s
    } else {
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?
    };
    let value: Value =
        serde_json::from_str(&text).with_context(|| format!("{}: not JSON", file.display()))?;
    Ok(match value {
        Value::Array(_) => serde_json::json!({ "strategies": value }),
        other => other,
    })
}
