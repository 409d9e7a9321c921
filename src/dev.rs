//! `outpost dev`: the embedded default installation on 127.0.0.1: an origin with a demo
//! account and an edge in front of it.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use outpost_auth::tempurl::{self, Digest, TempUrlSpec};
use outpost_auth::token::{self, Claims};
use outpost_auth::{Secret, TokenKey, TokenKeySpec, TokenKind, TOKEN_QUERY_PARAM};
use outpost_origin::dev::{
    DevSecrets, DEMO_ACCOUNT, DEMO_KEY_ID, PRIVATE_CONTAINER, PUBLIC_CONTAINER,
};

/// Custom domain of the demo account (`*.localhost` resolves to 127.0.0.1 in browsers and curl).
pub const DEMO_DOMAIN: &str = "img.localhost";

fn free_port(port: u16) -> Result<u16> {
    let l = TcpListener::bind(("127.0.0.1", port))
        .with_context(|| format!("port {port} is busy (use 0 for any)"))?;
    Ok(l.local_addr()?.port())
}

/// Starts origin and edge, prints URLs, runs until SIGTERM / Ctrl-C.
pub fn run(data: &Path, origin_port: u16, edge_port: u16, s3_port: u16) -> Result<()> {
    let secrets = DevSecrets::load_or_create(data).context("dev data directory")?;
    let listen = SocketAddr::from(([127, 0, 0, 1], origin_port));
    let s3_listen = SocketAddr::from(([127, 0, 0, 1], s3_port));
    let cfg = secrets.origin_config(data, listen, s3_listen)?;
    let rt = super::runtime()?;
    let origin = rt
        .block_on(outpost_origin::server::start(cfg))
        .with_context(|| {
            format!("starting the origin on {listen} and S3 on {s3_listen} (try --origin-port 0 --s3-port 0)")
        })?;
    rt.block_on(outpost_origin::dev::seed(
        &origin.state,
        &secrets,
        DEMO_DOMAIN,
    ))?;
    let origin_url = origin.url();
    let origin_addr = origin.addr;
    let s3_url = origin
        .s3_addr
        .map(|a| format!("http://{a}"))
        .context("the dev origin serves S3")?;
    // The origin keeps running on this runtime's threads while the edge owns the main thread,
    // until the process exits: the edge handles SIGTERM/SIGINT and exits the process when it
    // has drained, so the origin stays up for the edge's last requests and feed polls (its
    // writes are durable when acknowledged; there is nothing to flush).
    std::thread::spawn(move || {
        let _origin = origin;
        rt.block_on(std::future::pending::<()>());
    });

    let edge_port = free_port(edge_port)?;
    let edge_cfg = edge_config(data, edge_port, origin_addr, None, &secrets)?;
    let b = banner(data, edge_port, &secrets, &origin_url, Some(&s3_url), "")?;
    serve_edge(edge_cfg, b, edge_port)
}

/// The dev edge's config: in front of `origin`, reading storage nodes directly when `ring`
/// names the cluster's ring.
pub(crate) fn edge_config(
    data: &Path,
    edge_port: u16,
    origin: SocketAddr,
    ring: Option<&Path>,
    secrets: &DevSecrets,
) -> Result<outpost_edge::config::Config> {
    let ring = ring.map_or_else(String::new, |r| format!("ring = \"{}\"", r.display()));
    Ok(outpost_edge::config::RawConfig::parse(&format!(
        r#"
        listen = "127.0.0.1:{edge_port}"
        edge_id = "dev-edge"
        base_domain = "localhost"
        [origin]
        address = "{origin}"
        internal_secret = "{}"
        {ring}
        [cache]
        disk_dir = "{}"
        disk = "1 GiB"
        memory = "128 MiB"
        "#,
        secrets.edge_secret,
        data.join("edge-cache").display()
    ))?
    .validate()?)
}

/// The banner `outpost dev` prints: working URLs of the demo content; `nodes` (lines about
/// the cluster's nodes, possibly empty) comes after the origin's; the S3 line only with `s3_url`
/// (a ring of nodes serves no S3 API).
pub(crate) fn banner(
    data: &Path,
    edge_port: u16,
    secrets: &DevSecrets,
    origin_url: &str,
    s3_url: Option<&str>,
    nodes: &str,
) -> Result<String> {
    let now = super::now()?;
    let edge = format!("http://127.0.0.1:{edge_port}");
    let tempurl_path = format!("/v1/AUTH_{DEMO_ACCOUNT}/{PRIVATE_CONTAINER}/secret.txt");
    let signed = tempurl::sign(
        &TempUrlSpec {
            method: "GET",
            path: &tempurl_path,
            expires: now + 3600,
            prefix: false,
            ip_range: None,
            iso8601: false,
            digest: Digest::Sha256,
        },
        secrets.tempurl_key.as_bytes(),
    )?;
    let key = TokenKey::new(TokenKeySpec {
        id: DEMO_KEY_ID.into(),
        secret: Secret::new(secrets.token_secret.clone()),
        not_before: None,
        not_after: None,
    })?;
    let scope = format!("/{PRIVATE_CONTAINER}");
    let claims = Claims::new(DEMO_ACCOUNT, TokenKind::Url, &scope, now + 3600);
    let tok = token::sign(&claims, &key)?;
    let mut grant = Claims::new(DEMO_ACCOUNT, TokenKind::Grant, &scope, now + 600);
    let nonce = format!("dev-{now}");
    grant.nonce = Some(nonce.as_str().into());
    let grant = token::sign(&grant, &key)?;
    let custom = format!("http://{DEMO_DOMAIN}:{edge_port}");

    let mut b = String::new();
    let _ = writeln!(b, "Outpost dev is running (data in {}).", data.display());
    b.push('\n');
    let _ = writeln!(b, "Edge:                 {edge}   (custom domain {custom})");
    let _ = writeln!(
        b,
        "Public object:        {custom}/{PUBLIC_CONTAINER}/hello.txt"
    );
    let _ = writeln!(b, "                      http://{PUBLIC_CONTAINER}.{DEMO_ACCOUNT}.localhost:{edge_port}/hello.txt");
    let _ =
        writeln!(b,
        "Signed URL (1 h):     {custom}/{PRIVATE_CONTAINER}/secret.txt?{TOKEN_QUERY_PARAM}={tok}"
    );
    let _ = writeln!(b, "Swift tempurl (1 h):  {edge}{signed}");
    let _ = writeln!(b, "Pubcookie login:      {custom}/.outpost/login?grant={grant}&next=/{PRIVATE_CONTAINER}/secret.txt");
    let _ = writeln!(b, "                      (single use, valid 10 minutes)");
    let _ = writeln!(b, "Origin (Swift API):   {origin_url}");
    let _ = writeln!(
        b,
        "  swift -A {origin_url}/auth/v1.0 -U {DEMO_ACCOUNT}:{DEMO_ACCOUNT} -K {} stat",
        secrets.user_key
    );
    if let Some(s3_url) = s3_url {
        let _ = writeln!(b, "Origin (S3 API):      {s3_url}");
        let _ = writeln!(
            b,
            "  AWS_ACCESS_KEY_ID={} AWS_SECRET_ACCESS_KEY={} aws --endpoint-url {s3_url} s3 ls",
            secrets.s3_access_key, secrets.s3_secret_key
        );
    }
    let _ = writeln!(
        b,
        "Token key:            id {DEMO_KEY_ID}, secret in {}",
        data.join("dev-secrets.toml").display()
    );
    b.push_str(nodes);
    b.push('\n');
    let _ = writeln!(b, "Stop with Ctrl-C.");
    Ok(b)
}

/// Runs the edge on this thread; prints `b` once it accepts connections.
pub(crate) fn serve_edge(
    edge_cfg: outpost_edge::config::Config,
    b: String,
    edge_port: u16,
) -> Result<()> {
    // The banner comes last, once the edge accepts connections, so the URLs are the last thing
    // on the terminal and every one of them already works.
    let edge_addr = SocketAddr::from(([127, 0, 0, 1], edge_port));
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect_timeout(&edge_addr, Duration::from_millis(200)).is_err() {
            if Instant::now() > deadline {
                eprintln!("outpost dev: the edge did not start listening on {edge_addr}");
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        print!("{b}");
        let _ = std::io::stdout().flush();
    });
    outpost_edge::server::run(edge_cfg, None)?;
    Ok(())
}
