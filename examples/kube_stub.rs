//! The stub Kubernetes API server of the tests (tests/fixtures/kube_stub.rs)
//! as a program, for the VM test (scripts/vm/guest-cluster.sh): it serves
//! pods and SchedulingStrategy resources to an agent, takes their status
//! patches, and lets a script create, read and delete objects over HTTP as
//! kubectl would (the fixture's header lists the routes).
//!
//! Usage: kube_stub ADDR DIR
//! Listens on ADDR (e.g. 127.0.0.1:6443; port 0: any), writes DIR/kubeconfig
//! pointing at it (bearer token `stub-token`), then prints
//! `kube_stub: listening on URL` and serves until killed.

#[path = "../tests/fixtures/kube_stub.rs"]
mod kube_stub;

use std::io::Write;
use std::path::Path;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [addr, dir] = args.as_slice() else {
        eprintln!("usage: kube_stub ADDR DIR");
        std::process::exit(2);
    };
    let addr = addr.parse().unwrap_or_else(|e| {
        eprintln!("kube_stub: {addr}: {e}");
        std::process::exit(2);
    });
    let stub = kube_stub::StubApi::start_on(addr).unwrap_or_else(|e| {
        eprintln!("kube_stub: cannot listen on {addr}: {e}");
        std::process::exit(1);
    });
    stub.write_kubeconfig(Path::new(dir));
    // After the kubeconfig: whoever waits for this line may use both.
    println!("kube_stub: listening on {}", stub.url());
    let _ = std::io::stdout().flush();
    loop {
        std::thread::park();
    }
}
