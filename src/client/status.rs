//! `scx_pilot status`: the agent's health, its components and its counters.

use anyhow::{bail, Result};
use serde_json::Value;

use super::http::{ApiClient, METRICS_PATH};
use super::print_json;

/// Print the status; an unhealthy agent is an error (after printing).
pub fn run(client: &ApiClient, json: bool) -> Result<()> {
    // Untyped: the summary lists whatever components and counters the agent has.
    let health: Value = client.health()?;
    let metrics: Value = client.get(METRICS_PATH)?;
    if json {
        return print_json(&serde_json::json!({"health": health, "metrics": metrics}));
    }
    println!("status     {}", text(&health["status"]));
    println!("mode       {}", text(&health["mode"]));
    print_components(&health["components"]);
    print_counters(&metrics["metrics"]);
    if health["status"].as_str() != Some("healthy") {
        bail!("the agent is not healthy");
    }
    Ok(())
}

/// A JSON value as a word: strings without quotes, null as "-".
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// One line per component: its fields as key=value.
fn print_components(components: &Value) {
    let Some(components) = components.as_object() else {
        return;
    };
    for (name, c) in components {
        let detail = c
            .as_object()
            .map(|o| {
                o.iter()
                    .map(|(k, v)| format!("{k}={}", text(v)))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_else(|| text(c));
        println!("{:<10} {detail}", name);
    }
}

/// The scheduler's own counters, when it has a sample.
fn print_counters(reading: &Value) {
    if reading.is_null() {
        println!("counters   none yet");
        return;
    }
    println!("sampled    {}", text(&reading["timestamp"]));
    if let Some(data) = reading["data"].as_object() {
        for (k, v) in data {
            println!("  {k:<22} {}", text(v));
        }
    }
}
