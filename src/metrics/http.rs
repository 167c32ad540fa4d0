//! `http_http_requests_total` and `http_http_requests_duration_seconds`, by route pattern,
//! method and status: the series actix-web-prom 0.10 exported, under the same names, labels
//! and help texts, so dashboards built on them keep working. The buckets are Prometheus'
//! defaults (actix-web-prom's) with sub-millisecond ones in front ([`DURATION_BUCKETS`]):
//! most requests take 0.1–0.6 ms, and with 5 ms as the first bound every percentile read
//! "under 5 ms".
//!
//! Why not actix-web-prom itself: per request it walks the router a second time for the
//! pattern, copies the path twice, builds a `HashMap` of the path's parameters, formats the
//! pattern back with `strfmt`, and hashes the label values twice. Measured on an L1 hit
//! (BENCHMARKS.md, fifth session) that was about 0.6 µs of the server's 5.1 µs of user CPU.
//! Here the pattern is the one the route table registered (a [`RoutePattern`] on each
//! resource), and each worker keeps the counter and histogram of every label set it has seen,
//! so a request costs one small hash lookup, two clock reads and the series' atomic updates.
//! A duration ends when the response is ready, before its (in-memory) body is written.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::{ready, Ready};
use std::rc::Rc;
use std::time::Instant;

use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::{Method, StatusCode};
use futures_util::future::LocalBoxFuture;
use prometheus::{Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts};

/// The label of requests no route matched (their paths would be unbounded).
const UNMATCHED: &str = "UNKNOWN";

/// The scrape endpoint is not measured: scrapes would count themselves.
const NOT_MEASURED: &str = "/metrics";

/// The route pattern of a resource (`/api/workflows/{id}`), registered as its app data: the
/// label of every request the resource answers, 405s included.
#[derive(Debug, Clone, Copy)]
pub struct RoutePattern(pub &'static str);

/// Upper bounds (seconds) of the request-duration histogram: 100 µs to 1 ms in small steps,
/// then the Prometheus defaults, which stay so existing queries on them keep their meaning.
pub const DURATION_BUCKETS: [f64; 17] = [
    0.000_1, 0.000_25, 0.000_5, 0.000_75, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0,
];

/// The two request series; build once, then `wrap` the app with it.
#[derive(Clone)]
pub struct HttpMetrics {
    requests: IntCounterVec,
    durations: HistogramVec,
}

impl HttpMetrics {
    pub fn new(registry: &prometheus::Registry) -> prometheus::Result<Self> {
        let labels = ["endpoint", "method", "status"];
        let requests = IntCounterVec::new(
            Opts::new("http_requests_total", "Total number of HTTP requests").namespace("http"),
            &labels,
        )?;
        let durations = HistogramVec::new(
            HistogramOpts::new(
                "http_requests_duration_seconds",
                "HTTP request duration in seconds for all requests",
            )
            .namespace("http")
            .buckets(DURATION_BUCKETS.to_vec()),
            &labels,
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(durations.clone()))?;
        Ok(Self {
            requests,
            durations,
        })
    }
}

/// What one worker has resolved: label set → its series. Bounded: patterns come from the
/// route table, methods are the standard ones (others are `OTHER`), statuses are three
/// digits.
type LabelSet = (&'static str, &'static str, StatusCode);

struct Series {
    requests: IntCounter,
    duration: Histogram,
}

struct WorkerSeries {
    metrics: HttpMetrics,
    resolved: RefCell<HashMap<LabelSet, Rc<Series>, foldhash::fast::RandomState>>,
}

impl WorkerSeries {
    fn record(&self, labels: LabelSet, started: Instant) {
        let series = self.series(labels);
        series.requests.inc();
        series.duration.observe(started.elapsed().as_secs_f64());
    }

    fn series(&self, labels: LabelSet) -> Rc<Series> {
        if let Some(series) = self.resolved.borrow().get(&labels) {
            return Rc::clone(series);
        }
        let (endpoint, method, status) = labels;
        let values = [endpoint, method, status.as_str()];
        let series = Rc::new(Series {
            requests: self.metrics.requests.with_label_values(&values),
            duration: self.metrics.durations.with_label_values(&values),
        });
        self.resolved
            .borrow_mut()
            .insert(labels, Rc::clone(&series));
        series
    }
}

fn method_label(method: &Method) -> &'static str {
    const STANDARD: [&str; 9] = [
        "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "CONNECT", "TRACE",
    ];
    STANDARD
        .into_iter()
        .find(|name| *name == method.as_str())
        .unwrap_or("OTHER")
}

impl<S, B> Transform<S, ServiceRequest> for HttpMetrics
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Transform = HttpMetricsMiddleware<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(HttpMetricsMiddleware {
            service: Rc::new(service),
            series: Rc::new(WorkerSeries {
                metrics: self.clone(),
                resolved: RefCell::default(),
            }),
        }))
    }
}

pub struct HttpMetricsMiddleware<S> {
    service: Rc<S>,
    series: Rc<WorkerSeries>,
}

impl<S, B> Service<ServiceRequest> for HttpMetricsMiddleware<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    actix_web::dev::forward_ready!(service);

    fn call(&self, request: ServiceRequest) -> Self::Future {
        let started = Instant::now();
        let method = method_label(request.method());
        let series = Rc::clone(&self.series);
        let response = self.service.call(request);
        Box::pin(async move {
            let response = response.await?;
            let pattern = response
                .request()
                .app_data::<RoutePattern>()
                .map_or(UNMATCHED, |pattern| pattern.0);
            if pattern != NOT_MEASURED {
                series.record((pattern, method, response.status()), started);
            }
            Ok(response)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_methods_keep_their_name_and_others_share_one_label() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::DELETE), "DELETE");
        let invented = Method::from_bytes(b"BREW").expect("a valid method token");
        assert_eq!(method_label(&invented), "OTHER");
    }

    #[test]
    fn sub_millisecond_requests_land_in_their_own_buckets() {
        let registry = prometheus::Registry::new();
        let metrics = HttpMetrics::new(&registry).expect("metrics register");
        let series = metrics
            .durations
            .with_label_values(&["/live", "GET", "200"]);
        series.observe(0.000_3);
        series.observe(0.000_6);

        let families = registry.gather();
        let family = families
            .iter()
            .find(|f| f.name() == "http_http_requests_duration_seconds")
            .expect("the duration family");
        let buckets: Vec<(f64, u64)> = family.get_metric()[0]
            .get_histogram()
            .get_bucket()
            .iter()
            .map(|b| (b.upper_bound(), b.cumulative_count()))
            .collect();
        let count_at = |bound: f64| {
            buckets
                .iter()
                .find(|(b, _)| (*b - bound).abs() < 1e-12)
                .map(|(_, c)| *c)
        };
        assert_eq!(count_at(0.000_25), Some(0));
        assert_eq!(count_at(0.000_5), Some(1));
        assert_eq!(count_at(0.000_75), Some(2));
        // The defaults are still there.
        for bound in prometheus::DEFAULT_BUCKETS {
            assert!(count_at(*bound).is_some(), "bucket {bound}");
        }
    }

    #[test]
    fn a_label_set_is_resolved_once_per_worker_and_counted_every_time() {
        let registry = prometheus::Registry::new();
        let worker = WorkerSeries {
            metrics: HttpMetrics::new(&registry).expect("metrics register"),
            resolved: RefCell::default(),
        };
        let labels = ("/live", "GET", StatusCode::OK);
        worker.record(labels, Instant::now());
        worker.record(labels, Instant::now());
        worker.record(
            ("/live", "GET", StatusCode::SERVICE_UNAVAILABLE),
            Instant::now(),
        );
        assert_eq!(worker.resolved.borrow().len(), 2);
        let ok = worker
            .metrics
            .requests
            .with_label_values(&["/live", "GET", "200"]);
        assert_eq!(ok.get(), 2);
    }
}
