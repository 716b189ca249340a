//! The outermost middleware: JSON error bodies for errors raised outside the
//! handlers, CORS headers kept off writes, the request counters and the
//! request log.

use std::future::{ready, Future, Ready};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Instant;

use actix_web::body::{BoxBody, EitherBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::{header, Method};
use actix_web::{web, HttpRequest, ResponseError};

use super::{cors, prom, ApiError, ApiState};

fn is_read(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Outermost middleware: turns any error that is not already JSON (from
/// actix or a middleware) into the API's error body, keeps CORS headers off
/// writes, counts each request and logs it with its status and duration.
///
/// A plain `Service` rather than `middleware::from_fn`, because it wraps every
/// request: its future sits inline in the dispatcher's instead of in a new box,
/// and it holds the state (per worker, behind an `Rc`) instead of looking it up
/// in the app data and cloning its `Arc` (an atomic both workers contend on).
pub(super) struct Finish {
    pub(super) state: web::Data<ApiState>,
}

impl<S, B> Transform<S, ServiceRequest> for Finish
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    type Response = ServiceResponse<EitherBody<B, BoxBody>>;
    type Error = actix_web::Error;
    type Transform = FinishService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(FinishService {
            service,
            state: Rc::new(self.state.clone()),
        }))
    }
}

pub(super) struct FinishService<S> {
    service: S,
    state: Rc<web::Data<ApiState>>,
}

impl<S, B> Service<ServiceRequest> for FinishService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    type Response = ServiceResponse<EitherBody<B, BoxBody>>;
    type Error = actix_web::Error;
    type Future = FinishFuture<S::Future>;

    actix_web::dev::forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let ctx = FinishCtx {
            start: Instant::now(),
            method: req.method().clone(),
            // Cheap (reference-counted) copy, for the log line of a failed call.
            uri: req.uri().clone(),
            state: self.state.clone(),
        };
        FinishFuture {
            inner: self.service.call(req),
            ctx: Some(ctx),
        }
    }
}

/// What [`finish`] needs once the inner service has answered.
pub(super) struct FinishCtx {
    start: Instant,
    method: Method,
    uri: actix_web::http::Uri,
    state: Rc<web::Data<ApiState>>,
}

/// The inner service's future, then [`finish`] on its output.
pub(super) struct FinishFuture<F> {
    inner: F,
    ctx: Option<FinishCtx>,
}

impl<F, B> Future for FinishFuture<F>
where
    F: Future<Output = Result<ServiceResponse<B>, actix_web::Error>>,
    B: MessageBody,
{
    type Output = Result<ServiceResponse<EitherBody<B, BoxBody>>, actix_web::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: `inner` is structurally pinned: it is only ever polled in
        // place through this pin and dropped with the struct, never moved out
        // or swapped; FinishFuture has no Drop impl, and it is Unpin only when
        // F is (the auto trait). `ctx` is not pinned and is moved out freely.
        let this = unsafe { self.get_unchecked_mut() };
        let inner = unsafe { Pin::new_unchecked(&mut this.inner) };
        let out = std::task::ready!(inner.poll(cx));
        let ctx = this
            .ctx
            .take()
            .expect("FinishFuture polled after completion");
        Poll::Ready(finish(out, ctx))
    }
}

/// The route a request matched, as an index into [`ENDPOINTS`], for the
/// request counters. Every route is a static path, so a raw path equal to one
/// matched it; this avoids `match_pattern()`, which walks the resource map and
/// allocates a String per request. Only a path with percent-escapes (which the
/// router decodes before matching) can match a route it does not spell out:
/// the router is asked then.
fn route_of(req: &HttpRequest) -> Option<usize> {
    let path = req.path();
    if let Some(i) = prom::route_index(path) {
        return Some(i);
    }
    if !path.contains('%') {
        return None;
    }
    prom::route_index(&req.match_pattern()?)
}

fn finish<B: MessageBody>(
    out: Result<ServiceResponse<B>, actix_web::Error>,
    ctx: FinishCtx,
) -> Result<ServiceResponse<EitherBody<B, BoxBody>>, actix_web::Error> {
    let FinishCtx {
        start,
        method,
        uri,
        state,
    } = ctx;
    let mut res = match out {
        Ok(res) => {
            let is_json = res
                .headers()
                .get(header::CONTENT_TYPE)
                .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
            if res.status().as_u16() >= 400 && !is_json {
                let status = res.status();
                let message = match res.response().error() {
                    Some(e) => e.to_string(),
                    None => status.canonical_reason().unwrap_or("error").to_string(),
                };
                let (req, _) = res.into_parts();
                let body = ApiError::Other { status, message }.error_response();
                ServiceResponse::new(req, body).map_into_right_body()
            } else {
                res.map_into_left_body()
            }
        }
        Err(e) => {
            // No request left to build a response with: hand actix an error
            // whose own response is the JSON body.
            let status = e.as_response_error().status_code();
            let elapsed = start.elapsed();
            state
                .prom
                .observe(None, method.as_str(), status.as_u16(), elapsed);
            log::info!(
                "{method} {} {} {:.3}ms",
                uri.path(),
                status.as_u16(),
                elapsed.as_secs_f64() * 1e3
            );
            return Err(ApiError::Other {
                status,
                message: e.to_string(),
            }
            .into());
        }
    };
    // A write's answer is for the page that made it only when that page is a
    // --cors-write-origin one (marked by the guard).
    let cross_origin_write = res
        .response()
        .extensions()
        .contains::<cors::CrossOriginWrite>();
    if !is_read(&method) && !cross_origin_write {
        let headers = res.headers_mut();
        let cors: Vec<_> = headers
            .keys()
            .filter(|k| k.as_str().starts_with("access-control-"))
            .cloned()
            .collect();
        for k in cors {
            headers.remove(k);
        }
    }
    let status = res.status();
    let elapsed = start.elapsed();
    state.prom.observe_route(
        route_of(res.request()),
        method.as_str(),
        status.as_u16(),
        elapsed,
    );
    // Successful GETs log at debug: `log` checks the level before formatting
    // anything, so at the default (info) they cost one atomic load.
    let path = res.request().path();
    if method == Method::GET && status.is_success() {
        log::debug!(
            "{method} {path} {} {:.3}ms",
            status.as_u16(),
            elapsed.as_secs_f64() * 1e3
        );
    } else {
        log::info!(
            "{method} {path} {} {:.3}ms",
            status.as_u16(),
            elapsed.as_secs_f64() * 1e3
        );
    }
    Ok(res)
}
