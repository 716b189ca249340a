//! A tiny stand-in for systemd's notify socket, for the VM test
//! (scripts/vm/guest-notify.sh): binds a Unix datagram socket and prints every
//! line it receives as `NOTIFY <line>`. When a datagram carries `READY=1` it
//! records, at that moment, the sched_ext state and whether the HTTP API
//! answers `GET /health`:
//!
//! `AT-READY state=<contents of /sys/kernel/sched_ext/state> http=<status line or error>`
//!
//! Usage: notify_listen SOCKET_PATH HOST:PORT [SECONDS]
//! Exits after a datagram with `STOPPING=1` (status 0) or after SECONDS
//! (default 120; status 1).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

fn health(addr: &str) -> String {
    let attempt = || -> std::io::Result<String> {
        let mut c = TcpStream::connect(addr)?;
        c.set_read_timeout(Some(Duration::from_secs(5)))?;
        write!(
            c,
            "GET /health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )?;
        let mut out = String::new();
        c.read_to_string(&mut out)?;
        Ok(out.lines().next().unwrap_or("").trim().to_string())
    };
    attempt().unwrap_or_else(|e| format!("error:{e}"))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: notify_listen SOCKET_PATH HOST:PORT [SECONDS]");
        std::process::exit(2);
    }
    let (path, addr) = (&args[1], &args[2]);
    let secs: u64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(120);
    let _ = std::fs::remove_file(path);
    let sock = UnixDatagram::bind(path).expect("bind the notify socket");
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut buf = vec![0u8; 65536];
    println!("LISTENING {path}");
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            println!("TIMEOUT");
            std::process::exit(1);
        }
        sock.set_read_timeout(Some(left)).unwrap();
        let n = match sock.recv(&mut buf) {
            Ok(n) => n,
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                continue
            }
            Err(e) => panic!("recv: {e}"),
        };
        let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
        // Look first, print after: the state is what it was on arrival.
        let at_ready = msg.lines().any(|l| l == "READY=1").then(|| {
            let state = std::fs::read_to_string("/sys/kernel/sched_ext/state")
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|_| "missing".into());
            (state, health(addr))
        });
        for line in msg.lines() {
            println!("NOTIFY {line}");
        }
        if let Some((state, http)) = at_ready {
            println!("AT-READY state={state} http={http}");
        }
        let _ = std::io::stdout().flush();
        if msg.lines().any(|l| l == "STOPPING=1") {
            std::process::exit(0);
        }
    }
}
