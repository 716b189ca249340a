//! The text view of a [`Snapshot`], cut to the terminal's width.

use super::snapshot::{CounterRow, Snapshot};

/// Narrowest width drawn; narrower terminals cut the lines.
const MIN_WIDTH: usize = 40;
/// One counter cell; two side by side when the width allows.
const COUNTER_CELL_WIDTH: usize = 47;

/// The text view, `width` columns wide at most.
pub fn render(s: &Snapshot, width: usize) -> Vec<String> {
    let w = width.max(MIN_WIDTH);
    let mut out = header_lines(s);
    out.push(String::new());
    out.extend(counter_lines(s, w));
    out.push(String::new());
    out.extend(strategy_lines(s));
    out.push(String::new());
    out.extend(pod_lines(s));
    out.iter().map(|l| cut(l, w)).collect()
}

/// `s` cut to `width` characters, an ellipsis marking the cut.
pub fn cut(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(width.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// A number in at most about five characters: 12345 → 12.3k.
fn human(v: f64) -> String {
    let a = v.abs();
    if a >= 1e9 {
        format!("{:.1}G", v / 1e9)
    } else if a >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.1}k", v / 1e3)
    } else if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// The agent, its scheduler and its problems.
fn header_lines(s: &Snapshot) -> Vec<String> {
    let mut out = vec![format!(
        "scx_pilot top  {}  {}  health {}  mode {}",
        s.url, s.timestamp, s.health, s.mode
    )];
    let attached = if s.attached {
        format!("attached ({})", s.ops_name.as_deref().unwrap_or("?"))
    } else {
        "not attached".into()
    };
    let mut line = format!("scheduler {attached}  restarts {}", s.restarts);
    if let Some(e) = &s.last_exit {
        line.push_str(&format!("  last exit: {e}"));
    }
    out.push(line);
    out.extend(s.problems.iter().map(|p| format!("! {p}")));
    out
}

fn counter_lines(s: &Snapshot, width: usize) -> Vec<String> {
    let at = s
        .counters_at
        .as_deref()
        .map(|t| format!(", at {t}"))
        .unwrap_or_default();
    let mut out = vec![format!("COUNTERS ({}{at})", s.source)];
    if s.counters.is_empty() {
        out.push("  no counters yet (no sample, no report)".into());
    }
    let cells = s.counters.iter().map(counter_cell);
    if width >= COUNTER_CELL_WIDTH * 2 {
        let cells: Vec<String> = cells.collect();
        out.extend(cells.chunks(2).map(|pair| {
            pair.iter()
                .map(|c| format!("{c:<COUNTER_CELL_WIDTH$}"))
                .collect::<String>()
                .trim_end()
                .to_string()
        }));
    } else {
        out.extend(cells);
    }
    out
}

fn counter_cell(c: &CounterRow) -> String {
    let rate = match (c.counter, c.rate_per_s) {
        (true, Some(r)) => format!("{:>9}/s", human(r)),
        (true, None) => format!("{:>11}", "-"),
        (false, _) => format!("{:>11}", ""),
    };
    format!(
        "  {:<22}{:>12}{rate}",
        c.name.trim_start_matches("nr_"),
        human(c.value as f64)
    )
}

fn strategy_lines(s: &Snapshot) -> Vec<String> {
    let mut out = vec![format!(
        "STRATEGIES  {} configured, {} PIDs resolved",
        s.strategies_configured, s.resolved_pids
    )];
    if !s.strategies.is_empty() {
        out.push(format!(
            "  {:>5} {:>4} {:>10}  TARGET",
            "PIDS", "PRIO", "SLICE"
        ));
    }
    for st in &s.strategies {
        let mut line = format!(
            "  {:>5} {:>4} {:>8}us  {}",
            st.pids,
            if st.priority { "yes" } else { "no" },
            st.execution_time_ns / 1000,
            st.target
        );
        if let Some(n) = &st.note {
            line.push_str(&format!("  ({n})"));
        }
        out.push(line);
    }
    out
}

fn pod_lines(s: &Snapshot) -> Vec<String> {
    let mut out = vec![format!(
        "PODS  {} pods, {} processes",
        s.pods_total, s.pod_processes
    )];
    if !s.pods.is_empty() {
        out.push(format!(
            "  {:>5} {:>5} {:>5}  POD",
            "CONT", "PROCS", "STRAT"
        ));
    }
    out.extend(s.pods.iter().map(|p| {
        format!(
            "  {:>5} {:>5} {:>5}  {}",
            p.containers, p.processes, p.with_strategy, p.pod
        )
    }));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_fits_the_width_and_shows_rates() {
        let s = Snapshot {
            url: "http://127.0.0.1:8080".into(),
            timestamp: "2026-01-01T00:00:00Z".into(),
            health: "healthy".into(),
            mode: "kernel".into(),
            attached: true,
            ops_name: Some("scx_pilot".into()),
            restarts: 0,
            last_exit: None,
            source: "scheduler".into(),
            counters_at: None,
            counters: vec![CounterRow {
                name: "nr_kernel_dispatches",
                value: 123_456,
                rate_per_s: Some(2500.0),
                counter: true,
            }],
            strategies_configured: 0,
            resolved_pids: 0,
            strategies: vec![],
            pods_total: 0,
            pod_processes: 0,
            pods: vec![],
            problems: vec![],
        };
        for w in [40, 80, 200] {
            for l in render(&s, w) {
                assert!(l.chars().count() <= w, "{w}: {l}");
            }
        }
        let text = render(&s, 120).join("\n");
        assert!(text.contains("kernel_dispatches"), "{text}");
        assert!(text.contains("123.5k"), "{text}");
        assert!(text.contains("2500/s"), "{text}");
    }
}
