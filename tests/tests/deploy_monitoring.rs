//! `deploy/grafana/` and `deploy/prometheus/`: the dashboard is what its generator makes and is
//! well-formed, every metric a dashboard query or an alert rule names is exported by a running
//! edge or origin (a two-DC setup with a ring, so cluster and cross-DC series exist), and the
//! alert rules and the Prometheus config pass `promtool` (Debian's `prometheus` package,
//! installed by `.ci/run`; the promtool test prints `SKIPPED: <reason>` without it). promtool is
//! also shown a broken copy, so a check that accepts anything fails here.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use outpost_tests::which;
use outpost_tests::xdc::{DcSpec, TwoDcs};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every `outpost_*` metric name in a PromQL expression.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = expr;
    while let Some(i) = rest.find("outpost_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        out.insert(tail[..end].to_owned());
        rest = &tail[end..];
    }
    out
}

/// The metric names of a Prometheus text exposition (series lines only).
fn exported(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect()
}

/// The dashboard's queries, checked for shape on the way.
fn dashboard_exprs() -> Vec<String> {
    let path = root().join("deploy/grafana/outpost.json");
    let dash: serde_json::Value = serde_json::from_str(&read(&path)).expect("dashboard JSON");
    assert_eq!(dash["uid"], "outpost-overview");
    let panels = dash["panels"].as_array().expect("panels");
    let mut exprs = Vec::new();
    let mut ids = BTreeSet::new();
    for p in panels {
        assert!(
            ids.insert(p["id"].as_u64().expect("panel id")),
            "duplicate id"
        );
        if p["type"] == "row" {
            continue;
        }
        assert_eq!(p["type"], "timeseries", "{p}");
        assert!(p["title"].as_str().is_some_and(|t| !t.is_empty()));
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "panel {} has no query", p["title"]);
        for t in targets {
            exprs.push(t["expr"].as_str().expect("expr").to_owned());
        }
    }
    assert!(exprs.len() >= 20, "only {} queries", exprs.len());
    exprs
}

fn alert_exprs() -> Vec<String> {
    read(&root().join("deploy/prometheus/alerts.yml"))
        .lines()
        .filter_map(|l| l.trim().strip_prefix("expr:"))
        .map(|e| e.trim().to_owned())
        .collect()
}

#[test]
fn dashboard_is_generated_and_current() {
    let Some(python) = which("python3") else {
        println!("SKIPPED: python3 is not installed");
        return;
    };
    let out = Command::new(python)
        .arg(root().join("deploy/grafana/make_dashboard.py"))
        .arg("--check")
        .output()
        .expect("run make_dashboard.py");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    dashboard_exprs();
}

#[test]
fn every_queried_metric_is_exported() {
    let spec = DcSpec {
        ship_all: false,
        nodes: 1,
        account_policy: true,
        skew_secs: 0,
        extra: String::new(),
    };
    let dcs = TwoDcs::start(&spec, &spec);
    let dc = &dcs.dc1;
    dc.must_create_container("pub", &[("x-container-read", ".r:*")]);
    dc.must_create_container("priv", &[]);
    dc.must_put(0, "pub", "a.txt", b"one".to_vec());
    // A miss, then a hit on the fast path; a denial; an overwrite the feed purges.
    assert_eq!(dc.edge_get("pub", "a.txt").0, 200);
    assert_eq!(dc.edge_get("pub", "a.txt").0, 200);
    assert_eq!(dc.edge_get("priv", "b.txt").0, 403);
    dc.must_put(0, "pub", "a.txt", b"two".to_vec());

    let edge = dc.edge.as_ref().expect("edge");
    let http = reqwest::blocking::Client::new();
    let scrape = |url: &str| {
        http.get(url)
            .send()
            .and_then(|r| r.text())
            .unwrap_or_else(|e| panic!("{url}: {e}"))
    };
    let origin_url = format!("{}/metrics", dc.nodes[0].url);
    let edge_url = format!("http://127.0.0.1:{}/metrics", edge.addr.port());
    // Automatic-certificate gauges exist only on edges with [tls] and mapped domains; the
    // harness edge has neither (tests/tests/edge_acme.rs checks them).
    const TLS_ONLY: &[&str] = &["outpost_edge_cert_expiry_days"];
    let wanted: BTreeSet<String> = dashboard_exprs()
        .iter()
        .chain(alert_exprs().iter())
        .flat_map(|e| metric_names(e))
        .filter(|m| !TLS_ONLY.contains(&m.as_str()))
        .collect();
    // Counters with labels appear once something has counted (the purge arrives through the
    // feed), so poll both until every name shows or the deadline passes.
    let deadline = Instant::now() + Duration::from_secs(20);
    let missing = loop {
        let mut have = exported(&scrape(&origin_url));
        have.extend(exported(&scrape(&edge_url)));
        let missing: Vec<&String> = wanted.iter().filter(|m| !have.contains(*m)).collect();
        if missing.is_empty() || Instant::now() > deadline {
            break missing.into_iter().cloned().collect::<Vec<_>>();
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(missing.is_empty(), "queried but not exported: {missing:?}");
    assert!(wanted.len() >= 25, "only {} metrics queried", wanted.len());
}

#[test]
fn alert_rules_and_prometheus_config_pass_promtool() {
    let Some(promtool) = which("promtool") else {
        println!("SKIPPED: promtool (Debian package prometheus) is not installed");
        return;
    };
    let dir = root().join("deploy/prometheus");
    let run = |args: &[&str], cwd: &Path| {
        let out = Command::new(&promtool)
            .args(args)
            .current_dir(cwd)
            .output()
            .expect("run promtool");
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let (ok, out) = run(&["check", "rules", "alerts.yml"], &dir);
    assert!(ok, "{out}");
    let (ok, out) = run(&["test", "rules", "alerts_test.yml"], &dir);
    assert!(ok, "{out}");

    // The config names the rules at their path inside the Prometheus container.
    let tmp = tempfile::tempdir().expect("temp dir");
    let config = read(&dir.join("prometheus.yml")).replace(
        "/etc/prometheus/alerts.yml",
        dir.join("alerts.yml").to_str().expect("utf-8 path"),
    );
    std::fs::write(tmp.path().join("prometheus.yml"), config).expect("write config");
    let (ok, out) = run(&["check", "config", "prometheus.yml"], tmp.path());
    assert!(ok, "{out}");

    // A broken rule must be refused.
    let broken = read(&dir.join("alerts.yml")).replace("> 1000", "> > 1000");
    std::fs::write(tmp.path().join("broken.yml"), broken).expect("write broken rules");
    let (ok, out) = run(&["check", "rules", "broken.yml"], tmp.path());
    assert!(!ok, "promtool accepted a broken rule: {out}");
}
