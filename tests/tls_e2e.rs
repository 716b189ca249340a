//! TLS round trip: a test CA and a server certificate made here with the openssl CLI,
//! the real agent serving HTTPS with it (`--tls-cert`, `--tls-key`), and real
//! clients — the `scx_pilot` client subcommands (`--ca-cert`) and curl —
//! reading and writing through it. Refusals: an untrusted certificate, plain
//! HTTP on the TLS port, a key that is not a key, a certificate without a key.

#[path = "fixtures/agent.rs"]
mod agent;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use agent::{Agent, TempDir, BIN};
use serde_json::Value;

fn openssl(args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("running openssl (Debian package openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A test CA and a server certificate it signed for 127.0.0.1 and localhost
/// (EC P-256): (CA certificate, server certificate, server key). The CA is
/// what clients trust, as with a real deployment's internal CA.
fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let p = |name: &str| dir.join(name).to_str().unwrap().to_string();
    let (ca, ca_key, csr, cert, key, ext) = (
        p("ca.pem"),
        p("ca-key.pem"),
        p("server.csr"),
        p("cert.pem"),
        p("key.pem"),
        p("server.ext"),
    );
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut args = vec![
        "req",
        "-x509",
        "-days",
        "2",
        "-subj",
        "/CN=scx_pilot test CA",
    ];
    args.extend(ec);
    args.extend(["-keyout", &ca_key, "-out", &ca]);
    openssl(&args);
    let mut args = vec!["req", "-new", "-subj", "/CN=localhost"];
    args.extend(ec);
    args.extend(["-keyout", &key, "-out", &csr]);
    openssl(&args);
    std::fs::write(
        &ext,
        "basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        &csr,
        "-CA",
        &ca,
        "-CAkey",
        &ca_key,
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        &ext,
        "-out",
        &cert,
    ]);
    (PathBuf::from(ca), PathBuf::from(cert), PathBuf::from(key))
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn https_round_trip_with_the_client_and_curl() {
    let dir = TempDir::new("tls");
    let (ca, cert, key) = certificates(dir.path());
    let state = dir.path().join("state");
    let agent = Agent::start(
        &state,
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    assert!(
        agent.base.starts_with("https://127.0.0.1:"),
        "{}",
        agent.base
    );
    let ca = ca.to_str().unwrap();

    // Read: the client's status over HTTPS.
    let o = agent.client(&["status", "--ca-cert", ca, "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let health: Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&o)));
    assert_eq!(health["health"]["mode"], "api-only", "{health}");

    // Write: a strategy set through the client (it reads the token itself).
    let mut sleeper = Command::new("sleep").arg("60").spawn().unwrap();
    let file = dir.path().join("set.json");
    std::fs::write(
        &file,
        format!(
            r#"{{"strategies": [{{"priority": true, "execution_time": 2000000, "pid": {}}}]}}"#,
            sleeper.id()
        ),
    )
    .unwrap();
    let o = agent.client(&[
        "strategies",
        "set",
        "-f",
        file.to_str().unwrap(),
        "--ca-cert",
        ca,
    ]);
    assert!(o.status.success(), "{}", text(&o));

    // A second, independent client: curl trusting the same certificate sees it.
    let out = Command::new("curl")
        .args(["-sS", "--fail", "--cacert", ca])
        .arg(format!("{}/api/v1/scheduling/strategies", agent.base))
        .output()
        .expect("running curl");
    assert!(out.status.success(), "{}", text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["scheduling"][0]["pid"], sleeper.id(), "{v}");
    let _ = sleeper.kill();
    let _ = sleeper.wait();

    // Refused: a client that does not trust the certificate.
    let o = agent.client(&["status"]);
    assert!(!o.status.success(), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr).to_lowercase();
    assert!(
        err.contains("certificate") || err.contains("issuer"),
        "{}",
        text(&o)
    );
    // Refused: plain HTTP on the TLS port gets no HTTP answer.
    let plain = agent.base.replacen("https://", "http://", 1);
    let out = Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "-m", "5"])
        .arg(format!("{plain}/health"))
        .output()
        .unwrap();
    assert_ne!(
        String::from_utf8_lossy(&out.stdout),
        "200",
        "{}",
        text(&out)
    );
}

#[test]
fn bad_tls_files_are_one_clear_error() {
    let dir = TempDir::new("tls_bad");
    let (_ca, cert, _key) = certificates(dir.path());
    let state = dir.path().join("state");
    let run = |args: &[&Path]| {
        let mut cmd = Command::new(BIN);
        cmd.args(["--api-only", "--listen", "127.0.0.1:0", "--state-dir"])
            .arg(&state);
        for (flag, path) in ["--tls-cert", "--tls-key"].iter().zip(args) {
            cmd.arg(flag).arg(path);
        }
        cmd.output().unwrap()
    };
    // The certificate given as the key.
    let o = run(&[&cert, &cert]);
    assert!(!o.status.success(), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    let lines: Vec<&str> = err.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(lines.len(), 1, "{}", text(&o));
    assert!(
        lines[0].contains("private key") && lines[0].contains("cert.pem"),
        "{}",
        text(&o)
    );
    // A missing certificate file.
    let o = run(&[&dir.path().join("nope.pem"), &cert]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("nope.pem"),
        "{}",
        text(&o)
    );
    // A certificate without its key: refused by the command line parser.
    let o = run(&[&cert]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--tls-key"),
        "{}",
        text(&o)
    );
}

/// 600 half-open TLS connections (three bytes of a ClientHello each, then
/// silence) do not starve the handshakes of real clients: /health over HTTPS
/// answers in each of nine tries.
#[test]
fn half_open_tls_handshakes_do_not_starve_real_clients() {
    use std::io::Write;
    let (_, hard) = rlimit::Resource::NOFILE.get().unwrap();
    rlimit::Resource::NOFILE.set(hard, hard).unwrap();
    let dir = TempDir::new("tls-flood");
    let (ca, cert, key) = certificates(dir.path());
    let agent = Agent::start(
        &dir.path().join("state"),
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    let addr: std::net::SocketAddr = agent.addr().parse().unwrap();
    let mut half_open = Vec::new();
    for _ in 0..600 {
        if let Ok(mut s) =
            std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(2))
        {
            // A TLS record header's first three bytes: handshake, TLS 1.0.
            let _ = s.write_all(&[0x16, 0x03, 0x01]);
            half_open.push(s);
        }
    }
    assert!(
        half_open.len() > 500,
        "only {} connections",
        half_open.len()
    );
    let url = agent.url("/health");
    let mut answered = 0;
    let mut times = Vec::new();
    for _ in 0..9 {
        let o = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code} %{time_total}"])
            .args(["--max-time", "3", "--cacert", ca.to_str().unwrap(), &url])
            .output()
            .expect("curl (Debian package curl)");
        let out = String::from_utf8_lossy(&o.stdout).to_string();
        if out.starts_with("200") {
            answered += 1;
        }
        times.push(out);
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    eprintln!("/health over TLS beside 600 half-open handshakes: {times:?}");
    assert_eq!(answered, 9, "{times:?}");
    drop(half_open);
}
