//! The text view of a [`Snapshot`], cut to the terminal's width.

use super::snapshot::{AlertRow, CounterRow, Snapshot};

/// Narrowest width drawn; narrower terminals cut the lines.
const MIN_WIDTH: usize = 40;
/// One counter cell; two side by side when the width allows.
const COUNTER_CELL_WIDTH: usize = 47;

/// The text view, `width` columns wide at most.
pub fn render(s: &Snapshot, width: usize) -> Vec<String> {
    let w = width.max(MIN_WIDTH);
    let mut out = header_lines(s);
    out.push(String::new());
    out.extend(alert_lines(s));
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

/// The line under a list cut to `shown` of `total` rows, if it was cut.
fn more(shown: usize, total: usize) -> Option<String> {
    (total > shown).then(|| format!("  +{} more", total - shown))
}

/// A duration in its largest whole unit: 45s, 12m, 3h, 2d.
fn age(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 2 * 3600 => format!("{}m", s / 60),
        s if s < 2 * 86_400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

fn alert_lines(s: &Snapshot) -> Vec<String> {
    let mut out = vec![match s.alerts_firing {
        0 => "ALERTS  none firing".to_string(),
        n => format!("ALERTS  {n} firing"),
    }];
    if !s.alerts.is_empty() {
        out.push(format!(
            "  {:<8} {:>5}  {:<24} ABOUT: MESSAGE",
            "SEVERITY", "FOR", "ALERT"
        ));
    }
    out.extend(s.alerts.iter().map(alert_line));
    out.extend(more(s.alerts.len(), s.alerts_firing));
    out
}

fn alert_line(a: &AlertRow) -> String {
    let about = if a.about.is_empty() {
        String::new()
    } else {
        format!("{}: ", a.about)
    };
    format!(
        "  {:<8} {:>5}  {:<24} {about}{}",
        a.severity,
        a.for_s.map_or_else(|| "-".into(), age),
        a.name,
        a.message
    )
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
    out.extend(more(s.strategies.len(), s.strategies_configured));
    out
}

fn pod_lines(s: &Snapshot) -> Vec<String> {
    let mut out = vec![format!(
        "PODS  {} pods, {} processes",
        s.pods_total, s.pod_processes
    )];
    if !s.pods.is_empty() {
        out.push(format!(
            "  {:>5} {:>5} {:>5} {:>6} {:>9}  POD",
            "CONT", "PROCS", "STRAT", "CPU", "WAIT ms/s"
        ));
    }
    // Figures wait for the agent's second reading of the pod.
    let fig = |v: Option<f64>, decimals: usize| {
        v.map_or_else(|| "-".into(), |v| format!("{v:.decimals$}"))
    };
    out.extend(s.pods.iter().map(|p| {
        format!(
            "  {:>5} {:>5} {:>5} {:>6} {:>9}  {}",
            p.containers,
            p.processes,
            p.with_strategy,
            fig(p.cpu_usage, 2),
            fig(p.runqueue_wait_ms_per_s, 1),
            p.pod
        )
    }));
    out.extend(more(s.pods.len(), s.pods_total));
    out
}

#[cfg(test)]
mod tests {
    use super::super::snapshot::{PodRow, StrategyRow};
    use super::*;

    fn snapshot() -> Snapshot {
        Snapshot {
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
            alerts_firing: 0,
            alerts: vec![],
            problems: vec![],
        }
    }

    #[test]
    fn render_fits_the_width_and_shows_rates() {
        let s = snapshot();
        for w in [40, 80, 200] {
            for l in render(&s, w) {
                assert!(l.chars().count() <= w, "{w}: {l}");
            }
        }
        let text = render(&s, 120).join("\n");
        assert!(text.contains("kernel_dispatches"), "{text}");
        assert!(text.contains("123.5k"), "{text}");
        assert!(text.contains("2500/s"), "{text}");
        assert!(text.contains("ALERTS  none firing"), "{text}");
        assert!(!text.contains("more"), "{text}");
    }

    #[test]
    fn pods_show_figures_alerts_their_age_and_cut_lists_say_how_many_more() {
        let mut s = snapshot();
        s.pods = vec![
            PodRow {
                pod: "demo/busy".into(),
                containers: 1,
                processes: 3,
                with_strategy: 0,
                cpu_usage: Some(1.25),
                runqueue_wait_ms_per_s: Some(42.04),
            },
            PodRow {
                pod: "demo/new".into(),
                containers: 1,
                processes: 1,
                with_strategy: 0,
                cpu_usage: None,
                runqueue_wait_ms_per_s: None,
            },
        ];
        s.pods_total = 5;
        s.pod_processes = 9;
        s.strategies = vec![StrategyRow {
            target: "pid 1".into(),
            priority: true,
            execution_time_ns: 20_000_000,
            pids: 1,
            note: None,
        }];
        s.strategies_configured = 4;
        s.alerts = vec![AlertRow {
            name: "strategy_no_pids".into(),
            severity: "warning".into(),
            for_s: Some(300),
            about: "strategy_index=1".into(),
            message: "resolves to no PID".into(),
        }];
        s.alerts_firing = 2;
        let text = render(&s, 160).join("\n");
        let line = |needle: &str| {
            text.lines()
                .find(|l| l.contains(needle))
                .unwrap_or_else(|| panic!("no {needle}: {text}"))
                .to_string()
        };
        let busy = line("demo/busy");
        assert!(busy.contains(" 1.25 ") && busy.contains(" 42.0 "), "{busy}");
        let new = line("demo/new");
        assert_eq!(new.matches(" - ").count(), 2, "{new}");
        assert!(text.contains("ALERTS  2 firing"), "{text}");
        let alert = line("strategy_no_pids");
        assert!(alert.contains("warning") && alert.contains("5m"), "{alert}");
        assert!(
            alert.contains("strategy_index=1: resolves to no PID"),
            "{alert}"
        );
        // Alerts, strategies, pods: each cut list says how many rows are left out.
        let mores: Vec<&str> = text.lines().filter(|l| l.contains("more")).collect();
        assert_eq!(mores, ["  +1 more", "  +3 more", "  +3 more"], "{text}");
    }

    #[test]
    fn ages_use_the_largest_whole_unit() {
        assert_eq!(age(45), "45s");
        assert_eq!(age(600), "10m");
        assert_eq!(age(3 * 3600), "3h");
        assert_eq!(age(3 * 86_400), "3d");
    }
}
