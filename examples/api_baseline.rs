//! The benchmark's reference point: a minimal actix-web server that answers
//! every GET (e.g. `/api/v1/metrics`) with a fixed JSON body (read once from a file), so
//! `scripts/bench-api.sh` can compare scx_pilot's real handler against the
//! cost of actix-web alone with a body of the same size.
//!
//! Usage: api_baseline --listen 127.0.0.1:18481 --body-file body.json [--workers 2]

use actix_web::{web, App, HttpResponse, HttpServer};

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let listen = arg(&args, "--listen").unwrap_or_else(|| "127.0.0.1:18481".into());
    let workers: usize = arg(&args, "--workers")
        .and_then(|w| w.parse().ok())
        .unwrap_or(2);
    let body = match arg(&args, "--body-file") {
        Some(path) => std::fs::read(path)?,
        None => br#"{"success":true}"#.to_vec(),
    };
    let body = web::Bytes::from(body);
    eprintln!("api_baseline: {} byte body on {listen}", body.len());
    actix_web::rt::System::new().block_on(async move {
        HttpServer::new(move || {
            let body = body.clone();
            // Any GET path: one baseline instance per body compared.
            App::new().default_service(web::get().to(move || {
                let body = body.clone();
                async move {
                    HttpResponse::Ok()
                        .content_type("application/json")
                        .body(body)
                }
            }))
        })
        .workers(workers)
        .bind(listen)?
        .run()
        .await
    })
}
