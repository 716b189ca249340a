//! `GET /dashboard`: one self-contained page (HTML, CSS, JS and hand-written
//! SVG charts, no external resources) embedded in the binary, which polls the
//! JSON API once a second. Hand-written SVG rather than a charting library:
//! the charts are a few polylines, so the whole page stays one small file
//! (about 33 KB) with nothing to vendor, update or fetch from a CDN.

use actix_web::http::header;
use actix_web::HttpResponse;

/// The page as written, embedded at build time.
const TEMPLATE: &str = include_str!("../../assets/dashboard.html");
/// Where the page takes the counter table.
const TABLE_SLOT: &str = "/*COUNTER_TABLE*/{\"bss\":[],\"policy\":[]}";

/// The page with the counter table filled in (names, kinds, descriptions).
pub fn page() -> &'static str {
    static PAGE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PAGE.get_or_init(|| {
        // `</` would end the script element early.
        let table = crate::counters::table_json()
            .to_string()
            .replace("</", "<\\/");
        TEMPLATE.replacen(TABLE_SLOT, &table, 1)
    })
}

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
        .body(page())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_gets_the_counter_table() {
        assert!(TEMPLATE.contains(TABLE_SLOT));
        let page = page();
        assert!(!page.contains(TABLE_SLOT));
        for d in crate::counters::BSS {
            assert!(
                page.contains(&format!("\"name\":\"{}\"", d.name)),
                "{}",
                d.name
            );
        }
    }
}
