//! `outpost dev` as a new user runs it: a handful of lines at most before the banner, the
//! banner once every URL in it works, and nothing more on the terminal while requests are
//! served (logs are compact text, warnings and errors only, unless `OUTPOST_LOG` asks).

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use outpost_tests::outpost_bin;

#[test]
fn dev_prints_a_quiet_banner_last_and_nothing_while_serving() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut child = Command::new(outpost_bin())
        .args([
            "dev",
            "--origin-port",
            "0",
            "--edge-port",
            "0",
            "--s3-port",
            "0",
            "--data",
        ])
        .arg(dir.path().join("data"))
        .env_remove("OUTPOST_LOG")
        .env_remove("OUTPOST_LOG_FORMAT")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn outpost dev");
    // stdout and stderr into one ordered stream of lines, as a terminal shows them.
    let (tx, rx) = mpsc::channel::<String>();
    let pipe = |r: Box<dyn Read + Send>, tx: mpsc::Sender<String>| {
        std::thread::spawn(move || {
            for line in BufReader::new(r).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        })
    };
    let out = pipe(Box::new(child.stdout.take().expect("stdout")), tx.clone());
    let err = pipe(Box::new(child.stderr.take().expect("stderr")), tx);

    let mut before = Vec::new();
    let mut banner = Vec::new();
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("no banner; saw {before:?} {banner:?}"));
        if line.starts_with("Outpost dev is running") || !banner.is_empty() {
            let last = line == "Stop with Ctrl-C.";
            banner.push(line);
            if last {
                break;
            }
        } else {
            before.push(line);
        }
    }
    assert!(before.len() <= 5, "too much before the banner: {before:#?}");
    assert!(
        before.iter().all(|l| !l.starts_with('{')),
        "JSON log lines on a terminal: {before:#?}"
    );

    // The public URL of the banner works at once (first a miss, then hits).
    let public = banner
        .iter()
        .find_map(|l| l.strip_prefix("Edge:"))
        .and_then(|l| l.split_whitespace().next())
        .expect("edge URL in the banner")
        .to_owned();
    let client = reqwest::blocking::Client::new();
    for _ in 0..5 {
        let r = client
            .get(format!("{public}/v1/AUTH_demo/public/hello.txt"))
            .send()
            .expect("GET through the edge");
        assert_eq!(r.status(), 200);
        r.bytes().expect("body");
    }
    let r = client
        .get(format!("{public}/v1/AUTH_demo/private/secret.txt"))
        .send()
        .expect("GET of a private object");
    assert_eq!(r.status(), 403);

    // The S3 line is ready to paste: `AWS_ACCESS_KEY_ID=.. AWS_SECRET_ACCESS_KEY=.. aws
    // --endpoint-url http://127.0.0.1:<port> s3 ls`, and lists the demo buckets.
    let line = banner
        .iter()
        .map(|l| l.trim())
        .find(|l| l.starts_with("AWS_ACCESS_KEY_ID="))
        .expect("an aws CLI line in the banner");
    let words: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(words.len(), 7, "{line}");
    assert_eq!(&words[2..4], ["aws", "--endpoint-url"], "{line}");
    assert!(words[4].starts_with("http://127.0.0.1:"), "{line}");
    assert_eq!(&words[5..], ["s3", "ls"], "{line}");
    let id = words[0].strip_prefix("AWS_ACCESS_KEY_ID=").expect("id");
    let secret = words[1]
        .strip_prefix("AWS_SECRET_ACCESS_KEY=")
        .expect("secret");
    if outpost_tests::which("aws").is_some() {
        let out = std::process::Command::new("aws")
            .args(["--endpoint-url", words[4], "s3", "ls"])
            .env("AWS_ACCESS_KEY_ID", id)
            .env("AWS_SECRET_ACCESS_KEY", secret)
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_CONFIG_FILE", dir.path().join("no-aws-config"))
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                dir.path().join("no-aws-credentials"),
            )
            .output()
            .expect("run aws");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{text} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            text.contains(" public") && text.contains(" private"),
            "{text}"
        );
    } else {
        eprintln!("aws CLI not installed: the S3 line's shape was checked, not run");
    }

    // Every line a request would log is written before its response: stop the process and
    // read what is left.
    child.kill().expect("kill outpost dev");
    child.wait().expect("wait for outpost dev");
    out.join().expect("stdout reader");
    err.join().expect("stderr reader");
    let after: Vec<String> = rx.try_iter().collect();
    assert!(after.is_empty(), "printed while serving: {after:#?}");
}
