//! `GET /dashboard`: one self-contained page (HTML, CSS, JS and hand-written
//! SVG charts, no external resources) embedded in the binary, which polls the
//! JSON API once a second. Hand-written SVG rather than a charting library:
//! the charts are a few polylines, so the whole page stays one small file
//! (about 18 KB) with nothing to vendor, update or fetch from a CDN.

use actix_web::http::header;
use actix_web::HttpResponse;

/// The page, embedded at build time.
pub const PAGE: &str = include_str!("../../assets/dashboard.html");

#[utoipa::path(
    get,
    path = "/dashboard",
    tag = "dashboard",
    responses(
        (status = 200, description = "The live dashboard page (self-contained HTML)", content_type = "text/html", body = String),
        (status = 405, description = "Wrong method", body = super::error::ErrorBody),
    )
)]
pub async fn get_dashboard() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        // The page only talks to the agent that served it.
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
             connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
             frame-ancestors 'none'",
        ))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(PAGE)
}
