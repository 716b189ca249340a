//! The HTTP request counters, the only metrics that live between scrapes, and
//! the registry the whole exposition is rendered from.

use std::fmt::Write as _;
use std::sync::OnceLock;
use std::time::Duration;

use prometheus_client::encoding::{prometheus_text, text, EncodeLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

use super::{Format, Snapshot};
use crate::api::ENDPOINTS;

/// Labels of one HTTP request: the route pattern (from [`ENDPOINTS`], or
/// `unmatched`), the method (one of the few the API knows, or `other`) and
/// the status code.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    method: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: &'static str,
}

/// The index in [`ENDPOINTS`] of the first route with this pattern.
pub fn route_index(pattern: &str) -> Option<usize> {
    ENDPOINTS.iter().position(|e| e.path == pattern)
}

/// The metrics that live between scrapes (HTTP requests) and the registry
/// they are encoded from.
pub struct PromMetrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    durations: Family<RouteLabels, Histogram>,
    /// Per route (index into [`ENDPOINTS`], then one for `unmatched`): the
    /// family members most requests update, looked up once. A family lookup
    /// hashes the labels under the family's lock; the polled `GET` answers
    /// then cost two of those per request where a handle costs an atomic add.
    handles: Box<[RouteHandles]>,
}

/// Handles into the families for one route, made on first use (so a series
/// still appears only once a request has been counted in it). The families
/// are never cleared, so a handle stays the series the registry encodes.
#[derive(Default)]
struct RouteHandles {
    get_ok: OnceLock<Counter>,
    duration: OnceLock<Histogram>,
}

impl Default for PromMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for PromMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PromMetrics").finish_non_exhaustive()
    }
}

fn duration_histogram() -> Histogram {
    // 100 us .. 2.5 s: a cached JSON answer takes tens of microseconds, a
    // /proc scan milliseconds, a slow client seconds.
    Histogram::new([
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    ])
}

impl PromMetrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(super::process::ProcessCollector));
        let requests = Family::<RequestLabels, Counter>::default();
        let durations =
            Family::<RouteLabels, Histogram>::new_with_constructor(duration_histogram as fn() -> _);
        registry.register(
            "scx_pilot_http_requests",
            "HTTP requests answered, by route pattern, method and status code",
            requests.clone(),
        );
        registry.register_with_unit(
            "scx_pilot_http_request_duration",
            "Time to answer an HTTP request, by route pattern",
            Unit::Seconds,
            durations.clone(),
        );
        registry.register(
            "scx_pilot_build",
            "Build information of this scx_pilot binary",
            Info::new([
                ("version", env!("CARGO_PKG_VERSION")),
                (
                    "profile",
                    if cfg!(debug_assertions) {
                        "debug"
                    } else {
                        "release"
                    },
                ),
            ]),
        );
        Self {
            registry,
            requests,
            durations,
            handles: (0..=ENDPOINTS.len()).map(|_| Default::default()).collect(),
        }
    }

    /// Count one answered request. `pattern` is the matched route pattern
    /// (None for unknown paths); raw paths never become labels.
    pub fn observe(&self, pattern: Option<&str>, method: &str, status: u16, elapsed: Duration) {
        let route = pattern.and_then(route_index);
        self.observe_route(route, method, status, elapsed);
    }

    /// [`Self::observe`] with the route as an index into [`ENDPOINTS`] (see
    /// [`route_index`]); None for unknown paths.
    pub fn observe_route(
        &self,
        route: Option<usize>,
        method: &str,
        status: u16,
        elapsed: Duration,
    ) {
        let handles = &self.handles[route.unwrap_or(ENDPOINTS.len())];
        let route = route.map_or("unmatched", |i| ENDPOINTS[i].path);
        let method = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]
            .into_iter()
            .find(|m| *m == method)
            .unwrap_or("other");
        let labels = RequestLabels {
            route,
            method,
            status,
        };
        if method == "GET" && status == 200 {
            handles
                .get_ok
                .get_or_init(|| self.requests.get_or_create(&labels).clone())
                .inc();
        } else {
            self.requests.get_or_create(&labels).inc();
        }
        handles
            .duration
            .get_or_init(|| self.durations.get_or_create(&RouteLabels { route }).clone())
            .observe(elapsed.as_secs_f64());
    }

    /// The whole exposition: the registry's metrics, then the snapshot's.
    pub fn render(&self, snapshot: &Snapshot, format: Format) -> String {
        let mut out = String::with_capacity(16 * 1024);
        let mut scrape = Registry::default();
        scrape.register_collector(Box::new(snapshot.clone()));
        let result = match format {
            Format::OpenMetrics => text::encode_registry(&mut out, &self.registry)
                .and_then(|()| text::encode_registry(&mut out, &scrape))
                .and_then(|()| text::encode_eof(&mut out)),
            Format::PrometheusText => prometheus_text::encode(&mut out, &self.registry)
                .and_then(|()| prometheus_text::encode(&mut out, &scrape)),
        };
        // Writing to a String cannot fail; an encoder error would be a bug in
        // a metric name, which tests catch.
        if let Err(e) = result {
            let _ = writeln!(out, "# encoding error: {e}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::prom::AlertsSnapshot;
    use crate::sched::Mode;

    #[test]
    fn routes_and_methods_are_bounded() {
        let m = PromMetrics::new();
        m.observe(
            Some("/api/v1/metrics"),
            "GET",
            200,
            Duration::from_micros(50),
        );
        m.observe(None, "GET", 404, Duration::from_micros(50));
        m.observe(Some("/x/{id}"), "BREW", 405, Duration::from_micros(50));
        let snap = Snapshot {
            strategy_pids: vec![0, 3],
            alerts: AlertsSnapshot {
                rules: vec![("strategy_no_pids", "warning", true, 2)],
                pods: vec![("priority_pod_wait", "warning", "5g".into(), "upf-0".into())],
                priority_pods: vec![("5g".into(), "upf-0".into())],
                webhook: None,
            },
            ..Snapshot::empty(Mode::ApiOnly)
        };
        let out = m.render(&snap, Format::PrometheusText);
        assert!(out.contains(
            "scx_pilot_http_requests_total{route=\"/api/v1/metrics\",method=\"GET\",status=\"200\"} 1"
        ));
        assert!(out.contains(
            "scx_pilot_http_requests_total{route=\"unmatched\",method=\"other\",status=\"405\"} 1"
        ));
        assert!(!out.contains("/x/"));
        assert!(out
            .contains("scx_pilot_alert_firing{alert=\"strategy_no_pids\",severity=\"warning\"} 1"));
        assert!(out.contains(
            "scx_pilot_alerts_fired_total{alert=\"strategy_no_pids\",severity=\"warning\"} 2"
        ));
        assert!(out.contains(
            "scx_pilot_pod_alert_firing{alert=\"priority_pod_wait\",severity=\"warning\",namespace=\"5g\",pod=\"upf-0\"} 1"
        ));
        assert!(out.contains("scx_pilot_strategy_pids{index=\"1\"} 3"));
        assert!(out.contains("scx_pilot_pod_priority{namespace=\"5g\",pod=\"upf-0\"} 1"));
        assert!(!out.contains("scx_pilot_alert_webhook"));
        // The cached handles count into the series the families encode.
        m.observe(
            Some("/api/v1/metrics"),
            "GET",
            200,
            Duration::from_millis(2),
        );
        m.observe(
            Some("/api/v1/metrics"),
            "POST",
            200,
            Duration::from_micros(50),
        );
        let out = m.render(&snap, Format::PrometheusText);
        assert!(out.contains(
            "scx_pilot_http_requests_total{route=\"/api/v1/metrics\",method=\"GET\",status=\"200\"} 2"
        ));
        assert!(out.contains(
            "scx_pilot_http_requests_total{route=\"/api/v1/metrics\",method=\"POST\",status=\"200\"} 1"
        ));
        assert!(out.contains(
            "scx_pilot_http_request_duration_seconds_count{route=\"/api/v1/metrics\"} 3"
        ));
        let om = m.render(&snap, Format::OpenMetrics);
        assert!(om.ends_with("# EOF\n"));
        assert!(om.contains("# TYPE scx_pilot_build info"));
    }
}
