//! `deploy/`: every example config passes `outpost ... --check`, the systemd units pass
//! `systemd-analyze verify`, the compose file passes `docker-compose config`, the Kubernetes
//! manifests pass `kubernetes-validate --strict`, and `deploy/local/run.sh` brings up the
//! two-datacenter topology and passes its smoke test. Each external validator is a Debian or
//! PyPI package installed by `.ci/run`; a test whose tool is missing prints `SKIPPED: <reason>`.
//! Every validator is also shown a broken copy, so a check that accepts anything fails here.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use outpost_tests::clients::run_within;
use outpost_tests::{outpost_bin, which};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn tomls(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("read {}: {e}", d.display())) {
            let p = e.expect("dir entry").path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "toml") {
                files.push(p);
            }
        }
    }
    files.sort();
    files
}

/// `outpost <role> --config <file> --check`, asserting success and its `<file>: ok` line.
fn must_check(role: &str, file: &Path) {
    let out = Command::new(outpost_bin())
        .args([role, "--config"])
        .arg(file)
        .arg("--check")
        .output()
        .expect("spawn outpost");
    assert!(
        out.status.success(),
        "outpost {role} --check {} failed: {}",
        file.display(),
        text(&out)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("{}: ok", file.display())
    );
}

/// The block scalar (`|`) on the first line that trims to `head` after the first line containing
/// `anchor`: the lines indented deeper than `head`, dedented. Enough for our own YAML files.
fn yaml_block_after(yaml: &str, anchor: &str, head: &str) -> String {
    let mut lines = yaml.lines().skip_while(|l| !l.contains(anchor));
    let head_line = lines
        .find(|l| l.trim() == head)
        .unwrap_or_else(|| panic!("no `{head}` after `{anchor}`"));
    let head_indent = head_line.len() - head_line.trim_start().len();
    let body: Vec<&str> = lines
        .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() > head_indent)
        .collect();
    let indent = body
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .expect("non-empty block");
    body.iter()
        .map(|l| l.get(indent..).unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The block scalar under `key: |`.
fn yaml_block(yaml: &str, key: &str) -> String {
    yaml_block_after(yaml, &format!("{key}: |"), &format!("{key}: |"))
}

#[test]
fn every_example_config_passes_check() {
    // Edges name their DC's ring, which `--check` loads: build the example rings with
    // make-ring.sh and check copies that point at them.
    let rings = tempfile::tempdir().unwrap();
    let out = run_within(
        Command::new(root().join("deploy/configs/make-ring.sh"))
            .arg(rings.path())
            .env("OUTPOST", outpost_bin()),
        Duration::from_secs(60),
    );
    assert!(out.status.success(), "make-ring.sh: {}", text(&out));
    let mut origins = 0;
    let mut edges = 0;
    let mut with_ring = 0;
    for dir in ["deploy/configs", "deploy/docker/config"] {
        for f in tomls(&root().join(dir)) {
            let name = f.file_name().unwrap().to_string_lossy().into_owned();
            let role = if name.contains("origin") {
                origins += 1;
                "origin"
            } else if name.contains("edge") {
                edges += 1;
                "edge"
            } else {
                panic!("{}: name it *origin* or *edge*", f.display());
            };
            let body = read(&f);
            if role == "edge" && body.contains("\nring = ") {
                with_ring += 1;
                let mut copy = body;
                for dc in 1..=2 {
                    let ring = rings.path().join(format!("dc{dc}.ring"));
                    for path in [
                        format!("/etc/outpost/dc{dc}.ring"),
                        format!("/etc/outpost/ring/dc{dc}.ring"),
                    ] {
                        copy = copy
                            .replace(&format!("\"{path}\""), &format!("\"{}\"", ring.display()));
                    }
                }
                let f = rings.path().join(&name);
                std::fs::write(&f, copy).unwrap();
                must_check(role, &f);
            } else {
                must_check(role, &f);
            }
        }
    }
    // Every edge of the reference topology reads its ring (not the generic edge).
    assert_eq!(with_ring, 4 + 4);
    // 2 DCs × 3 origin nodes + 2 edges (plus the generic edge), in deploy/configs and again
    // in the compose configs.
    assert_eq!((origins, edges), (6 + 6, 5 + 4));

    // The configs the Kubernetes manifests carry, rendered as the edge's init container does.
    let tmp = tempfile::tempdir().unwrap();
    let origin = yaml_block(
        &read(&root().join("deploy/k8s/secrets.example.yaml")),
        "origin.toml.in",
    )
    .replace(
        "@NODE@",
        "outpost-origin-1.outpost-origin.outpost.svc.cluster.local:8080",
    )
    .replace("@SHIP@", "false");
    std::fs::write(tmp.path().join("origin.toml"), origin).unwrap();
    must_check("origin", &tmp.path().join("origin.toml"));
    let edge = yaml_block(&read(&root().join("deploy/k8s/edge.yaml")), "edge.toml.in")
        .replace("@EDGE_ID@", "outpost-edge-5d9c7-x2x7q")
        .replace("@ORIGIN_ADDRESS@", "10.244.1.7:8080")
        .replace("@EDGE_SECRET@", "k8s-edge-secret-0123456789");
    std::fs::write(tmp.path().join("edge.toml"), edge).unwrap();
    must_check("edge", &tmp.path().join("edge.toml"));

    // And the check is real: a misspelt key in a copy of the reference config is named.
    let bad = read(&root().join("deploy/configs/dc1/edge-1.toml"))
        .replace("stale_if_error =", "stale_if_eror =");
    std::fs::write(tmp.path().join("bad.toml"), bad).unwrap();
    let out = Command::new(outpost_bin())
        .args(["edge", "--check", "--config"])
        .arg(tmp.path().join("bad.toml"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(text(&out).contains("stale_if_eror"), "{}", text(&out));
}

/// In the two reference configs, every key is preceded by a comment that documents it.
#[test]
fn reference_configs_document_every_key() {
    for f in [
        "deploy/configs/dc1/origin-1.toml",
        "deploy/configs/dc1/edge-1.toml",
    ] {
        let body = read(&root().join(f));
        let lines: Vec<&str> = body.lines().collect();
        let mut keys = 0;
        for (i, l) in lines.iter().enumerate() {
            let t = l.trim();
            if t.is_empty() || t.starts_with('#') || t.starts_with('[') {
                continue;
            }
            keys += 1;
            // Repeated [[auth.users]] / [[tls.certs]] entries follow a documented first one.
            let repeated = lines[..i]
                .iter()
                .rev()
                .find(|p| p.starts_with("[["))
                .is_some_and(|table| lines[..i].iter().filter(|p| *p == table).count() > 1);
            let prev = lines[i - 1].trim();
            assert!(
                prev.starts_with('#') || repeated,
                "{f}:{}: `{t}` has no comment above it",
                i + 1
            );
        }
        assert!(keys >= 10, "{f}: only {keys} keys");
    }
}

#[test]
fn systemd_units_pass_systemd_analyze_verify() {
    let Some(analyze) = which("systemd-analyze") else {
        eprintln!("SKIPPED: systemd-analyze (Debian package systemd) is not installed");
        return;
    };
    let dir = root().join("deploy/systemd");
    let tmp = tempfile::tempdir().unwrap();
    let bin = outpost_bin();
    let mut units = Vec::new();
    for name in ["outpost-origin.service", "outpost-edge.service"] {
        let unit = read(&dir.join(name));
        for needed in [
            "User=outpost",
            "ProtectSystem=strict",
            "ReadWritePaths=/var/",
            "NoNewPrivileges=yes",
            "PrivateTmp=yes",
            "Restart=on-failure",
            "KillSignal=SIGTERM",
            "TimeoutStopSec=",
            "--check",
        ] {
            assert!(unit.contains(needed), "{name} lacks {needed}");
        }
        // verify checks that ExecStart exists: point the copy at the binary under test.
        let copy = tmp.path().join(name);
        std::fs::write(
            &copy,
            unit.replace("/usr/local/bin/outpost", &bin.to_string_lossy()),
        )
        .unwrap();
        units.push(copy);
    }
    // The directories the reference configs write to are the ones the units make writable.
    for (unit, config, key) in [
        ("outpost-origin.service", "dc1/origin-1.toml", "data_dir"),
        ("outpost-edge.service", "dc1/edge-1.toml", "disk_dir"),
    ] {
        let unit = read(&dir.join(unit));
        let writable = unit
            .lines()
            .find_map(|l| l.strip_prefix("ReadWritePaths="))
            .expect("ReadWritePaths");
        let config = read(&root().join("deploy/configs").join(config));
        let value = config
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key} = ")))
            .expect("key in config")
            .trim_matches('"');
        assert!(
            value.starts_with(writable),
            "{key} {value} is not under {writable}"
        );
    }
    let edge = read(&dir.join("outpost-edge.service"));
    assert!(edge.contains("AmbientCapabilities=CAP_NET_BIND_SERVICE"));
    assert!(edge.contains("CapabilityBoundingSet=CAP_NET_BIND_SERVICE"));

    let out = Command::new(&analyze)
        .arg("verify")
        .args(&units)
        .output()
        .unwrap();
    // verify exits 0 on unknown keys and bad values, warning on stderr: both must be clean.
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "systemd-analyze verify: {}",
        text(&out)
    );

    // The same verify names a misspelt directive, so the clean result above means something.
    let bad = tmp.path().join("outpost-bad.service");
    std::fs::write(
        &bad,
        read(&units[1]).replace("ProtectSystem=strict", "ProtectSytem=strict"),
    )
    .unwrap();
    let out = Command::new(&analyze)
        .arg("verify")
        .arg(&bad)
        .output()
        .unwrap();
    assert!(text(&out).contains("ProtectSytem"), "{}", text(&out));

    // Hardening as systemd scores it (0 = locked down, 10 = exposed).
    for unit in &units {
        let out = Command::new(&analyze)
            .args(["security", "--offline=yes"])
            .arg(unit)
            .output()
            .unwrap();
        let report = text(&out);
        let level: f64 = report
            .lines()
            .find_map(|l| l.split_once("Overall exposure level for ").map(|(_, r)| r))
            .and_then(|r| r.split(": ").nth(1))
            .and_then(|r| r.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no exposure level in:\n{report}"));
        assert!(
            level <= 2.0,
            "{}: exposure {level}\n{report}",
            unit.display()
        );
    }

    // The sysusers file creates the outpost user.
    if let Some(sysusers) = which("systemd-sysusers") {
        std::fs::create_dir_all(tmp.path().join("root/etc")).unwrap();
        let out = Command::new(sysusers)
            .arg(format!("--root={}", tmp.path().join("root").display()))
            .arg(dir.join("outpost.sysusers.conf"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        let passwd = read(&tmp.path().join("root/etc/passwd"));
        assert!(
            passwd
                .lines()
                .any(|l| l.starts_with("outpost:")
                    && l.ends_with(":/var/lib/outpost:/usr/sbin/nologin")),
            "{passwd}"
        );
    }
}

#[test]
fn dockerfile_is_multi_stage_and_runs_as_non_root() {
    let file = read(&root().join("deploy/docker/Dockerfile"));
    let lines: Vec<&str> = file
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .collect();
    let froms: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.starts_with("FROM "))
        .collect();
    assert_eq!(froms.len(), 2, "{froms:?}");
    assert!(froms[0].starts_with("FROM rust:1-bookworm AS build"));
    assert!(froms[1].starts_with("FROM debian:bookworm-slim"));
    let runtime = &lines[lines.iter().position(|l| l == &froms[1]).unwrap()..];
    let users: Vec<&str> = runtime
        .iter()
        .copied()
        .filter(|l| l.starts_with("USER "))
        .collect();
    assert_eq!(users.len(), 1, "{users:?}");
    let user = users[0]
        .trim_start_matches("USER ")
        .split(':')
        .next()
        .unwrap();
    assert!(user != "root" && user != "0", "runs as {user}");
    // From the build stage the runtime takes the binary and nothing else.
    let copies: Vec<&str> = runtime
        .iter()
        .copied()
        .filter(|l| l.starts_with("COPY"))
        .collect();
    assert_eq!(
        copies,
        ["COPY --from=build /usr/local/bin/outpost /usr/local/bin/outpost"]
    );
    assert!(file.contains("apt-get install -y --no-install-recommends cmake"));
    let health = runtime
        .iter()
        .position(|l| l.starts_with("HEALTHCHECK"))
        .expect("HEALTHCHECK");
    assert!(runtime[health + 1].contains("/healthz"));
    assert!(file.contains(r#"ENTRYPOINT ["/usr/local/bin/outpost"]"#));
}

#[test]
fn compose_file_validates() {
    let dir = root().join("deploy/docker");
    let compose = read(&dir.join("compose.yaml"));
    // Edge N of a DC fills from node N, by the fixed address compose gives that node, and each
    // node's [cluster] node is its service name, as the ring built by ring-init names it.
    for dc in 1..=2 {
        for n in 1..=2 {
            let cfg = read(&dir.join(format!("config/dc{dc}-edge-{n}.toml")));
            assert!(cfg.contains(&format!("address = \"172.28.{dc}.1{n}:8080\"")));
            assert!(cfg.contains(&format!("edge_id = \"dc{dc}-edge-{n}\"")));
            assert!(compose.contains(&format!("ipv4_address: 172.28.{dc}.1{n} }}")));
        }
        for n in 1..=3 {
            let cfg = read(&dir.join(format!("config/dc{dc}-origin-{n}.toml")));
            assert!(cfg.contains(&format!("node = \"dc{dc}-origin-{n}:8080\"")));
            assert!(cfg.contains(&format!("ring = \"/etc/outpost/ring/dc{dc}.ring\"")));
        }
    }
    assert!(compose.contains("--host \"dc$$dc-origin-$$n\" --port 8080"));
    let Some(dc) = which("docker-compose") else {
        eprintln!("SKIPPED: docker-compose (Debian package docker-compose) is not installed");
        return;
    };
    let out = Command::new(&dc)
        .arg("-f")
        .arg(dir.join("compose.yaml"))
        .args(["config", "--services"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "docker-compose config: {}",
        text(&out)
    );
    let mut services: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    services.sort();
    let mut want = vec![
        "ring-init".to_owned(),
        "prometheus".to_owned(),
        "grafana".to_owned(),
    ];
    for dc in 1..=2 {
        for n in 1..=3 {
            want.push(format!("dc{dc}-origin-{n}"));
        }
        for n in 1..=2 {
            want.push(format!("dc{dc}-edge-{n}"));
        }
    }
    want.sort();
    assert_eq!(services, want);
    let out = Command::new(&dc)
        .arg("-f")
        .arg(dir.join("compose.yaml"))
        .args(["config", "-q"])
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "docker-compose config -q: {}",
        text(&out)
    );

    // A misspelt option is refused, by name.
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("compose.yaml");
    std::fs::write(
        &bad,
        compose.replace("stop_grace_period:", "stop_grace_perod:"),
    )
    .unwrap();
    let out = Command::new(&dc)
        .arg("-f")
        .arg(&bad)
        .args(["config", "-q"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(text(&out).contains("stop_grace_perod"), "{}", text(&out));
}

#[test]
fn kubernetes_manifests_validate() {
    let dir = root().join("deploy/k8s");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    let origin = read(&dir.join("origin.yaml"));
    assert!(
        origin.contains("clusterIP: None"),
        "headless origin Service"
    );
    assert!(origin.contains("volumeClaimTemplates:"));
    let Some(kv) = which("kubernetes-validate") else {
        eprintln!(
            "SKIPPED: kubernetes-validate (pip install kubernetes-validate) is not installed"
        );
        return;
    };
    let out = Command::new(&kv)
        .arg("--strict")
        .args(&files)
        .output()
        .unwrap();
    let report = text(&out);
    assert!(out.status.success(), "kubernetes-validate: {report}");
    for resource in [
        "namespace/outpost",
        "service/outpost-origin",
        "service/outpost-origin-api",
        "service/outpost-origin-0",
        "service/outpost-origin-1",
        "service/outpost-origin-2",
        "statefulset/outpost-origin",
        "poddisruptionbudget/outpost-origin",
        "configmap/outpost-edge-config",
        "statefulset/outpost-edge",
        "service/outpost-edge-pods",
        "service/outpost-edge",
        "poddisruptionbudget/outpost-edge",
        "secret/outpost-edge-credential",
        "secret/outpost-origin-config",
    ] {
        assert!(
            report.contains(&format!("passed for resource {resource} ")),
            "{resource} not validated:\n{report}"
        );
    }
    assert!(!report.contains("ERROR"), "{report}");

    // A misspelt field fails strict validation, by name.
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("edge.yaml");
    std::fs::write(
        &bad,
        read(&dir.join("edge.yaml")).replace("readinessProbe:", "readinesProbe:"),
    )
    .unwrap();
    let out = Command::new(&kv)
        .arg("--strict")
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(text(&out).contains("readinesProbe"), "{}", text(&out));
}

/// The shell scripts inside the compose file and the manifests, run here against the binary
/// under test: compose's ring-init builds both rings with the names the node configs use, and
/// the Kubernetes init containers render configs that pass `--check`.
#[test]
fn scripts_inside_compose_and_manifests_work() {
    let bin = outpost_bin();
    let has_ring = Command::new(&bin)
        .args(["ring", "--help"])
        .output()
        .unwrap()
        .status
        .success();
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    // A stand-in `outpost` (and `getent`, which would ask cluster DNS) first on PATH.
    let stubs = t.join("bin");
    std::fs::create_dir_all(&stubs).unwrap();
    std::os::unix::fs::symlink(&bin, stubs.join("outpost")).unwrap();
    std::fs::write(stubs.join("getent"), "#!/bin/sh\necho \"10.96.0.12 $2\"\n").unwrap();
    Command::new("chmod")
        .args(["+x"])
        .arg(stubs.join("getent"))
        .status()
        .unwrap();
    let path = format!(
        "{}:{}",
        stubs.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let bash = |script: &str, envs: &[(&str, &str)]| {
        let out = Command::new("bash")
            .args(["-ec", script])
            .env("PATH", &path)
            .envs(envs.iter().copied())
            .output()
            .unwrap();
        assert!(out.status.success(), "{script}\n{}", text(&out));
        text(&out)
    };

    if has_ring {
        let compose = read(&root().join("deploy/docker/compose.yaml"));
        let rings = t.join("rings");
        std::fs::create_dir_all(&rings).unwrap();
        let script = yaml_block_after(&compose, "ring-init:", "- |")
            .replace("$$", "$")
            .replace("/etc/outpost/ring", &rings.to_string_lossy());
        bash(&script, &[]);
        bash(&script, &[]); // a second run keeps the existing rings
        for dc in 1..=2 {
            let show = must_run(
                &bin,
                &["ring", "show", &format!("{}/dc{dc}.ring", rings.display())],
            );
            for n in 1..=3 {
                // The device each node's config names as its [cluster] node.
                assert!(show.contains(&format!("dc{dc}-origin-{n}:8080")), "{show}");
            }
        }
    } else {
        eprintln!("SKIPPED: ring-init needs `outpost ring` (origin cluster, issue 8)");
    }

    let k8s = root().join("deploy/k8s");
    let (cfg_in, run) = (t.join("in"), t.join("run"));
    std::fs::create_dir_all(&cfg_in).unwrap();
    std::fs::create_dir_all(&run).unwrap();
    let paths = |script: String| {
        script
            .replace("/etc/outpost-in", &cfg_in.to_string_lossy())
            .replace("/run/outpost", &run.to_string_lossy())
            .replace("/usr/local/bin/outpost", "outpost")
    };
    std::fs::write(
        cfg_in.join("origin.toml.in"),
        yaml_block(&read(&k8s.join("secrets.example.yaml")), "origin.toml.in"),
    )
    .unwrap();
    let script = paths(yaml_block_after(
        &read(&k8s.join("origin.yaml")),
        "name: render-config",
        "- |",
    ));
    for (pod, ship) in [("outpost-origin-0", true), ("outpost-origin-2", false)] {
        let out = bash(&script, &[("POD_NAME", pod), ("POD_NAMESPACE", "outpost")]);
        assert!(out.contains("origin.toml: ok"), "{out}");
        let origin = read(&run.join("origin.toml"));
        assert!(
            origin.contains(&format!(
                "node = \"{pod}.outpost-origin.outpost.svc.cluster.local:8080\""
            )),
            "{origin}"
        );
        // Only pod 0 ships to the peer DC.
        assert!(origin.contains(&format!("ship = {ship}\n")), "{origin}");
    }

    let edge_yaml = read(&k8s.join("edge.yaml"));
    std::fs::write(
        cfg_in.join("edge.toml.in"),
        yaml_block(&edge_yaml, "edge.toml.in"),
    )
    .unwrap();
    let script = yaml_block_after(&edge_yaml, "name: render-config", "- |");
    let out = bash(
        &paths(script),
        &[
            ("POD_NAME", "outpost-edge-4"),
            (
                "ORIGIN_HOST_PATTERN",
                "outpost-origin-%d.outpost.svc.cluster.local",
            ),
            ("ORIGIN_NODES", "3"),
            ("ORIGIN_PORT", "8080"),
            ("EDGE_SECRET", "k8s-edge-secret-0123456789"),
        ],
    );
    assert!(out.contains("edge.toml: ok"), "{out}");
    let edge = read(&run.join("edge.toml"));
    assert!(edge.contains("edge_id = \"outpost-edge-4\""), "{edge}");
    assert!(edge.contains("address = \"10.96.0.12:8080\""), "{edge}");
    assert!(edge.contains("k8s-edge-secret-0123456789"), "{edge}");
}

fn must_run(bin: &Path, args: &[&str]) -> String {
    let out = Command::new(bin)
        .args(args)
        .output()
        .expect("spawn outpost");
    assert!(out.status.success(), "outpost {args:?}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn make_ring_script_builds_a_ring_per_dc_or_says_why_not() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run_within(
        Command::new(root().join("deploy/configs/make-ring.sh"))
            .arg(tmp.path())
            .env("OUTPOST", outpost_bin()),
        Duration::from_secs(60),
    );
    let report = text(&out);
    let has_ring = Command::new(outpost_bin())
        .args(["ring", "--help"])
        .output()
        .unwrap()
        .status
        .success();
    if has_ring {
        assert!(out.status.success(), "make-ring.sh: {report}");
        for dc in 1..=2 {
            let ring = tmp.path().join(format!("dc{dc}.ring"));
            assert!(ring.is_file(), "{} missing: {report}", ring.display());
        }
    } else {
        assert_eq!(out.status.code(), Some(3), "{report}");
        assert!(report.contains("does not exist in this build"), "{report}");
        assert!(std::fs::read_dir(tmp.path()).unwrap().next().is_none());
    }
}

/// Runs the script with a deadline; past it, SIGTERM lets the script's EXIT trap stop what it
/// started before the test fails. Output goes to files, so a chatty script never blocks on a
/// full pipe while we poll. Returns (exit status, stdout + stderr).
fn run_script(cmd: &mut Command, timeout: Duration) -> (std::process::ExitStatus, String) {
    let tmp = tempfile::tempdir().expect("temp dir");
    let (out, err) = (tmp.path().join("stdout"), tmp.path().join("stderr"));
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).expect("stdout file"))
        .stderr(std::fs::File::create(&err).expect("stderr file"))
        .spawn()
        .expect("spawn run.sh");
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for run.sh") {
            break status;
        }
        if start.elapsed() > timeout {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let stopping = Instant::now();
            while child.try_wait().expect("wait for run.sh").is_none()
                && stopping.elapsed() < Duration::from_secs(20)
            {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "run.sh did not finish within {timeout:?}:\n{}{}",
                read(&out),
                read(&err)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (status, format!("{}{}", read(&out), read(&err)))
}

#[test]
fn local_topology_passes_its_smoke_test() {
    if which("curl").is_none() {
        eprintln!("SKIPPED: curl is not installed");
        return;
    }
    let (status, report) = run_script(
        Command::new(root().join("deploy/local/run.sh")).env("OUTPOST", outpost_bin()),
        Duration::from_secs(120),
    );
    assert!(status.success(), "run.sh failed:\n{report}");
    let summary = report
        .lines()
        .find_map(|l| l.strip_prefix("smoke: "))
        .unwrap_or_else(|| panic!("no summary:\n{report}"));
    let n = |word: &str| -> usize {
        summary
            .split(", ")
            .find_map(|p| p.strip_suffix(word))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no `{word}` in {summary}"))
    };
    assert_eq!(n(" failed"), 0, "{report}");
    assert!(n(" passed") >= 8, "{report}");
    assert_eq!(
        report.lines().filter(|l| l.starts_with("PASS ")).count(),
        n(" passed")
    );
    // Every skipped step names the missing feature's issue.
    for l in report.lines().filter(|l| l.starts_with("SKIP ")) {
        assert!(l.contains("issue 8") || l.contains("issue 9"), "{l}");
    }
    // Everything it started is gone: the PIDs it stopped no longer exist.
    let stopped = report
        .lines()
        .find_map(|l| l.strip_prefix("stopping 10 processes: "))
        .unwrap_or_else(|| panic!("did not stop 10 processes:\n{report}"));
    for pid in stopped.split_whitespace() {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "process {pid} is still running"
        );
    }
}
