//! The protocol is written down once: no source file of the edge, the origin or the CLI may
//! spell a protocol header name, an internal endpoint path or a protocol metadata key as a
//! string literal; they use this crate's constants. A renamed header then fails to compile
//! on every side instead of silently breaking purges or billing.
//!
//! Scanned: `edge/src`, `origin/src`, `src` (every `.rs` file). Not scanned: comments (`//`
//! lines), and everything from a file's `#[cfg(test)]` on (unit-test fixtures spell the wire
//! on purpose). The few legitimate literals left are in [`ALLOWED`], each with its reason.

// Test helpers panic on bad fixtures by design (clippy allows unwrap only inside #[test] fns).
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

/// Substrings that mark a protocol literal.
const PROTOCOL: &[&str] = &[
    "x-outpost-",
    "x-backend-",
    "/internal/",
    "/admin/billing",
    ".outpost_logs",
    "-meta-outpost-",
];

/// `(file, text on the line)`: literals that are not a use of the protocol.
const ALLOWED: &[(&str, &str, &str)] = &[
    (
        "edge/src/cors.rs",
        "x-outpost-cache, x-outpost-deny",
        "a CORS Access-Control-Expose-Headers value: one string listing header names",
    ),
    (
        "edge/src/logs/ship.rs",
        "delivered into .outpost_logs",
        "a metric's help text",
    ),
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The string literals on a line (between unescaped double quotes; raw strings count too).
fn literals(line: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = None;
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        match (c, start) {
            ('\\', Some(_)) if !escaped => {
                escaped = true;
                continue;
            }
            ('"', None) => start = Some(i + 1),
            ('"', Some(s)) if !escaped => {
                out.push(&line[s..i]);
                start = None;
            }
            _ => {}
        }
        escaped = false;
    }
    out
}

#[test]
fn no_protocol_literal_outside_the_wire_crate() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    for d in ["edge/src", "origin/src", "src"] {
        rust_files(&root.join(d), &mut files);
    }
    assert!(files.len() > 50, "scanned only {} files", files.len());
    let mut found = Vec::new();
    for f in &files {
        let rel = f
            .strip_prefix(&root)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let text = std::fs::read_to_string(f).unwrap();
        for (n, line) in text.lines().enumerate() {
            let t = line.trim_start();
            if t.starts_with("#[cfg(test)]") {
                break;
            }
            if t.starts_with("//") {
                continue;
            }
            let hit = literals(line)
                .into_iter()
                .any(|l| PROTOCOL.iter().any(|p| l.contains(p)));
            let allowed = ALLOWED
                .iter()
                .any(|(file, text, _)| rel == *file && line.contains(text));
            if hit && !allowed {
                found.push(format!("{rel}:{}: {}", n + 1, line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "protocol literals outside outpost-proto (use its constants):\n{}",
        found.join("\n")
    );
}

#[test]
fn the_scanner_sees_literals() {
    assert_eq!(
        literals(r#"h.get("x-outpost-internal")"#),
        ["x-outpost-internal"]
    );
    assert_eq!(literals(r#"f("a\"b", "c")"#), [r#"a\"b"#, "c"]);
    assert!(literals("no strings here").is_empty());
}
