//! `outpost`: the one command-line binary of the Outpost CDN.
//!
//! Thin by design: it parses arguments with clap and calls into `outpost-auth`,
//! `outpost-origin` and `outpost-edge`. Reading the clock and the random source happens here,
//! because the crates below take `now` and nonces as arguments.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use outpost_auth::pubcookie::{self, DEFAULT_COOKIE_NAME, LOGIN_PATH};
use outpost_auth::tempurl::{self, Digest, TempUrlSpec};
use outpost_auth::token::{self, Claims, ScopeClaim};
use outpost_auth::{CanonicalPath, Secret, TokenKey, TokenKeySpec, TokenKind, TOKEN_QUERY_PARAM};

#[derive(Parser)]
#[command(
    name = "outpost",
    version,
    about = "Outpost: a CDN for private content"
)]
struct Cli {
    /// Log format on stderr: `json` (one object a line, for services and log shippers) or
    /// `text` (compact, for a terminal). Default: `text` for `dev`, `json` otherwise.
    #[arg(long, global = true, env = "OUTPOST_LOG_FORMAT", value_enum)]
    log_format: Option<LogFormat>,
    #[command(subcommand)]
    command: Command,
}

/// How log lines are written.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Compact human-readable lines.
    Text,
}

#[derive(Subcommand)]
#[allow(clippy::large_enum_variant)] // reason: parsed once per process; boxing buys nothing
enum Command {
    /// Run the embedded default: an origin with a demo account on 127.0.0.1, printing
    /// working URLs.
    Dev {
        /// Data directory (kept between runs, with its generated secrets).
        #[arg(long, default_value = "./outpost-data")]
        data: PathBuf,
        /// Origin port (0 picks a free one).
        #[arg(long, default_value_t = 8080)]
        origin_port: u16,
        /// Edge port (0 picks a free one).
        #[arg(long, default_value_t = 8081)]
        edge_port: u16,
        /// Origin nodes: 1 runs a single origin; more run a ring of that many nodes (as many
        /// replicas, at most 3) as child processes on free ports, the edge reading from them.
        #[arg(long, default_value_t = 1)]
        nodes: u16,
        /// Port of the origin's S3 API (0 picks a free one).
        #[arg(long, default_value_t = 8082)]
        s3_port: u16,
    },
    /// Run an edge node.
    Edge {
        /// TOML config file.
        #[arg(long)]
        config: PathBuf,
        /// Only load and validate the config, then exit.
        #[arg(long)]
        check: bool,
    },
    /// Run an origin node.
    Origin {
        /// TOML config file.
        #[arg(long)]
        config: PathBuf,
        /// Only load and validate the config, then exit.
        #[arg(long)]
        check: bool,
        /// Exit when stdin closes (how `outpost dev --nodes N` ties its nodes to itself).
        #[arg(long, hide = true)]
        exit_with_stdin: bool,
    },
    /// Sign URLs, Swift tempurls, login grants and session cookies.
    #[command(subcommand)]
    Sign(SignCommand),
    /// Manage Outpost token keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Billing reports from the origin (per account, per minute, over every edge).
    #[command(subcommand)]
    Billing(billing_cli::BillingCommand),
    /// Build the placement ring of an origin cluster.
    #[command(subcommand)]
    Ring(ring_cli::RingCommand),
    /// Inspect a running origin cluster.
    #[command(subcommand)]
    Cluster(cluster_cli::ClusterCommand),
}

#[derive(Subcommand)]
enum SignCommand {
    /// An Outpost URL token (`op_token` query parameter, or a `/.op/<token>/` path prefix).
    Url(SignUrl),
    /// A Swift tempurl, identical to python-swiftclient's `swift tempurl`.
    SwiftTempurl(SignTempUrl),
    /// A single-use login grant and the `/.outpost/login` link that redeems it.
    Grant(SignGrant),
    /// A session cookie, for an app that shares a parent domain with the CDN.
    Cookie(SignCookie),
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Print a new random token key as TOML (`[[keys]]` entry).
    Gen {
        /// Key id (letters, digits, `_`, `-`).
        #[arg(long)]
        id: String,
    },
}

/// Options shared by every Outpost token.
#[derive(Args)]
struct TokenArgs {
    /// Account the token is for (without `AUTH_`).
    #[arg(long)]
    account: String,
    /// Key id.
    #[arg(long)]
    key_id: String,
    /// File holding the key's secret (a trailing newline is ignored).
    #[arg(long)]
    secret_file: PathBuf,
    /// Client address ranges allowed (CIDR or address, v4 or v6); repeatable.
    #[arg(long = "ip")]
    ips: Vec<String>,
    /// Session id (revocable).
    #[arg(long)]
    session_id: Option<String>,
    /// User id (revocable).
    #[arg(long)]
    user_id: Option<String>,
}

impl TokenArgs {
    fn key(&self) -> Result<TokenKey> {
        let raw = std::fs::read_to_string(&self.secret_file)
            .with_context(|| format!("reading --secret-file {}", self.secret_file.display()))?;
        let secret = raw.trim_end_matches(['\n', '\r']);
        Ok(TokenKey::new(TokenKeySpec {
            id: self.key_id.clone(),
            secret: Secret::new(secret),
            not_before: None,
            not_after: None,
        })?)
    }

    fn claims<'a>(
        &'a self,
        kind: TokenKind,
        scopes: Vec<ScopeClaim<'a>>,
        expires: u64,
    ) -> Claims<'a> {
        let mut c = Claims::new(&self.account, kind, "/", expires);
        c.scopes = scopes;
        c.ips = self.ips.iter().map(|s| s.as_str().into()).collect();
        c.session_id = self.session_id.as_deref().map(Into::into);
        c.user_id = self.user_id.as_deref().map(Into::into);
        c
    }
}

#[derive(Args)]
struct SignUrl {
    #[command(flatten)]
    token: TokenArgs,
    /// Account-relative path to sign, `/<container>/<object>`; also the scope unless `--scope`
    /// is given.
    #[arg(long)]
    path: String,
    /// Scope patterns (segment-aware globs); repeatable. Default: `--path`.
    #[arg(long = "scope")]
    scopes: Vec<String>,
    /// Allowed methods, comma-separated (HEAD is implied by GET).
    #[arg(long, default_value = "GET")]
    method: String,
    /// Lifetime, e.g. `15s`, `10m`, `1h`.
    #[arg(long, value_parser = humantime::parse_duration)]
    expires_in: Duration,
    /// Put the token in the path (`/.op/<token>/...`) instead of the query.
    #[arg(long)]
    in_path: bool,
    /// Print only the token.
    #[arg(long)]
    token_only: bool,
    /// Prefix for the printed URL, e.g. `https://img.example.com`.
    #[arg(long, default_value = "")]
    base_url: String,
}

#[derive(Args)]
struct SignTempUrl {
    /// HTTP method (GET, HEAD, PUT, POST, DELETE).
    #[arg(long, default_value = "GET")]
    method: String,
    /// Storage path `/v1/AUTH_<account>/<container>/<object>` (or `.../<prefix>` with
    /// `--prefix`).
    #[arg(long)]
    path: String,
    /// The tempurl key (`X-Account-Meta-Temp-URL-Key` or the container's).
    #[arg(long, conflicts_with = "key_file")]
    key: Option<String>,
    /// File holding the tempurl key.
    #[arg(long)]
    key_file: Option<PathBuf>,
    /// Lifetime, e.g. `60s`, `1h`.
    #[arg(long, value_parser = humantime::parse_duration, conflicts_with = "expires_at")]
    expires_in: Option<Duration>,
    /// Absolute expiry, epoch seconds (like `swift tempurl --absolute`).
    #[arg(long)]
    expires_at: Option<u64>,
    /// Prefix-based URL.
    #[arg(long)]
    prefix: bool,
    /// Write the expiry as ISO 8601.
    #[arg(long)]
    iso8601: bool,
    /// Restrict to an address or CIDR range.
    #[arg(long)]
    ip_range: Option<String>,
    /// sha256 (default), sha512 or sha1.
    #[arg(long, default_value = "sha256")]
    digest: String,
}

#[derive(Args)]
struct SignGrant {
    #[command(flatten)]
    token: TokenArgs,
    /// Scope patterns the session will cover; repeatable.
    #[arg(long = "scope", required = true)]
    scopes: Vec<String>,
    /// Grant lifetime (keep it short: it only has to reach the CDN).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "30s")]
    expires_in: Duration,
    /// Hard lifetime of the session it opens (the edge's policy may shorten it).
    #[arg(long, value_parser = humantime::parse_duration)]
    session_lifetime: Option<Duration>,
    /// Where the browser lands after login (a same-site path).
    #[arg(long, default_value = "/")]
    next: String,
    /// CDN origin for the printed link, e.g. `https://img.example.com`.
    #[arg(long, default_value = "")]
    base_url: String,
}

#[derive(Args)]
struct SignCookie {
    #[command(flatten)]
    token: TokenArgs,
    /// Scope patterns the session covers; repeatable.
    #[arg(long = "scope", required = true)]
    scopes: Vec<String>,
    /// Idle timeout (sliding).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "30m")]
    idle: Duration,
    /// Hard lifetime.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "12h")]
    max_lifetime: Duration,
    /// Cookie `Path`.
    #[arg(long, default_value = "/")]
    cookie_path: String,
}

/// jemalloc instead of the system allocator: a proxy allocates and frees many small buffers per
/// request on several threads, where glibc's malloc cost ~30% of cached-hit throughput
/// (benches/RESULTS.md).
#[cfg(all(unix, not(target_env = "musl")))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        eprintln!("outpost: {e:#}");
        std::process::exit(2);
    }
}

/// Sets up logging: `OUTPOST_LOG` (an `EnvFilter`, e.g. `info` or `warn,outpost_edge=debug`;
/// empty or unparsable counts as unset) or `default_level`, in `format`. Returns the hook a
/// `SIGHUP` reload sets the level (`log_level`) through: it does nothing and returns `false`
/// when `OUTPOST_LOG` is set, which always wins.
///
/// pingora-cache warns once per process that no header compression dictionary is loaded. We
/// silence that target on purpose rather than load one: a dictionary changes the encoding of
/// every header stored in the disk tier, and the edge decodes a stored header once per cached
/// version (the fast path keeps the decoded form), so the dictionary would save a few bytes
/// per entry and cost a format migration.
///
/// s3s logs every refused S3 request (a bad signature, a missing key) at `error`; the
/// origin's access log already records them with their status, and its own S3 error mapping
/// logs storage faults once, so the `s3s` target is off.
fn init_logs(format: LogFormat, default_level: &str) -> LogLevelHook {
    use tracing_subscriber::EnvFilter;
    fn quiet(f: EnvFilter) -> EnvFilter {
        f.add_directive(
            "pingora_cache::meta=error"
                .parse()
                .expect("static log directive"),
        )
        .add_directive("s3s=off".parse().expect("static log directive"))
    }
    // An empty OUTPOST_LOG counts as unset (so a container can clear the image's default).
    let from_env = std::env::var("OUTPOST_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .and_then(|v| EnvFilter::try_new(v).ok());
    let env_wins = from_env.is_some();
    let filter = quiet(from_env.unwrap_or_else(|| EnvFilter::new(default_level)));
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // The handle types differ by format; each arm wraps its own in the same hook.
    macro_rules! hook {
        ($builder:expr) => {{
            let builder = $builder.with_filter_reloading();
            let handle = builder.reload_handle();
            builder.init();
            std::sync::Arc::new(move |level: tracing_subscriber::filter::LevelFilter| {
                !env_wins
                    && handle
                        .reload(quiet(EnvFilter::new(level.to_string())))
                        .is_ok()
            }) as LogLevelHook
        }};
    }
    match format {
        LogFormat::Json => hook!(fmt.json()),
        LogFormat::Text => hook!(fmt.compact().with_target(false)),
    }
}

/// One hook type for both servers (`outpost_edge::reload::LogLevelHook` and the origin's are
/// the same type).
type LogLevelHook = outpost_edge::reload::LogLevelHook;

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

fn run(cli: Cli) -> Result<()> {
    let log_format = cli.log_format;
    let service_logs = |level: tracing_subscriber::filter::LevelFilter| {
        init_logs(log_format.unwrap_or(LogFormat::Json), &level.to_string())
    };
    match cli.command {
        Command::Origin {
            config,
            check,
            exit_with_stdin,
        } => {
            let raw = outpost_origin::config::RawConfig::load(&config)?;
            let cfg = raw.clone().validate()?;
            if check {
                println!("{}: ok", config.display());
                return Ok(());
            }
            if exit_with_stdin {
                dev_cluster::exit_when_stdin_closes();
            }
            let hook = service_logs(cfg.log_level);
            let reload = outpost_origin::reload::ReloadSource {
                path: config,
                raw,
                log_level: Some(hook),
            };
            runtime()?.block_on(outpost_origin::server::run(cfg, Some(reload)))?;
        }
        Command::Dev {
            data,
            origin_port,
            edge_port,
            nodes,
            s3_port,
        } => {
            // A terminal: warnings and errors only, unless OUTPOST_LOG asks for more.
            let _no_reload = init_logs(log_format.unwrap_or(LogFormat::Text), "warn");
            if nodes > 1 {
                dev_cluster::run(&data, nodes, edge_port)?;
            } else {
                dev::run(&data, origin_port, edge_port, s3_port)?;
            }
        }
        Command::Edge { config, check } => {
            let raw = outpost_edge::config::RawConfig::load(&config)?;
            let cfg = raw.clone().validate()?;
            if check {
                println!("{}: ok", config.display());
                return Ok(());
            }
            let hook = service_logs(cfg.log_level);
            let reload = outpost_edge::reload::ReloadSource {
                path: config,
                raw,
                log_level: Some(hook),
            };
            outpost_edge::server::run(cfg, Some(reload))?;
        }
        Command::Sign(SignCommand::Url(a)) => println!("{}", sign_url(&a, now()?)?),
        Command::Sign(SignCommand::SwiftTempurl(a)) => println!("{}", sign_tempurl(&a, now()?)?),
        Command::Sign(SignCommand::Grant(a)) => println!("{}", sign_grant(&a, now()?)?),
        Command::Sign(SignCommand::Cookie(a)) => println!("{}", sign_cookie(&a, now()?)?),
        Command::Ring(cmd) => ring_cli::run(cmd)?,
        Command::Cluster(cmd) => cluster_cli::run(cmd, runtime()?)?,
        Command::Billing(cmd) => billing_cli::run(cmd)?,
        Command::Key(KeyCommand::Gen { id }) => {
            if !outpost_auth::keys::is_valid_key_id(&id) {
                bail!("--id: key ids are 1-64 characters of A-Z a-z 0-9 _ -");
            }
            println!("[[keys]]\nid = \"{id}\"\nsecret = \"{}\"", random_hex(32)?);
        }
    }
    Ok(())
}

mod billing_cli;
mod cluster_cli;
mod dev;
mod dev_cluster;
mod progress;
mod ring_cli;

fn now() -> Result<u64> {
    Ok(SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs())
}

fn random_hex(bytes: usize) -> Result<String> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| anyhow::anyhow!("random source: {e}"))?;
    Ok(hex::encode(buf))
}

fn scopes<'a>(patterns: &'a [String], methods: Option<&'a str>) -> Vec<ScopeClaim<'a>> {
    patterns
        .iter()
        .map(|p| ScopeClaim {
            pattern: p.as_str().into(),
            methods: methods.map(Into::into),
        })
        .collect()
}

fn sign_url(a: &SignUrl, now: u64) -> Result<String> {
    if !a.path.starts_with('/') {
        bail!("--path must be an account-relative path starting with '/': /<container>/<object>");
    }
    let patterns = if a.scopes.is_empty() {
        std::slice::from_ref(&a.path)
    } else {
        &a.scopes[..]
    };
    let methods = (a.method != "GET").then_some(a.method.as_str());
    let claims = a.token.claims(
        TokenKind::Url,
        scopes(patterns, methods),
        now + a.expires_in.as_secs(),
    );
    let t = token::sign(&claims, &a.token.key()?)?;
    let path = CanonicalPath::from_decoded(&a.path)
        .context("--path")?
        .to_encoded();
    Ok(if a.token_only {
        t
    } else if a.in_path {
        format!("{}/.op/{t}{path}", a.base_url)
    } else {
        format!("{}{path}?{TOKEN_QUERY_PARAM}={t}", a.base_url)
    })
}

fn sign_tempurl(a: &SignTempUrl, now: u64) -> Result<String> {
    let key = match (&a.key, &a.key_file) {
        (Some(k), _) => k.clone(),
        (None, Some(f)) => std::fs::read_to_string(f)
            .with_context(|| format!("reading --key-file {}", f.display()))?
            .trim_end_matches(['\n', '\r'])
            .to_owned(),
        (None, None) => bail!("one of --key or --key-file is required"),
    };
    let expires = match (a.expires_at, a.expires_in) {
        (Some(at), _) => at,
        (None, Some(d)) => now + d.as_secs(),
        (None, None) => bail!("one of --expires-in or --expires-at is required"),
    };
    let digest: Digest = a
        .digest
        .parse()
        .map_err(|_| anyhow::anyhow!("--digest must be sha1, sha256 or sha512"))?;
    let spec = TempUrlSpec {
        method: &a.method,
        path: &a.path,
        expires,
        prefix: a.prefix,
        ip_range: a.ip_range.as_deref(),
        iso8601: a.iso8601,
        digest,
    };
    tempurl::sign(&spec, key.as_bytes()).context("--path")
}

fn sign_grant(a: &SignGrant, now: u64) -> Result<String> {
    let next = pubcookie::safe_next(&a.next).context("--next")?;
    let nonce = random_hex(16)?;
    let mut claims = a.token.claims(
        TokenKind::Grant,
        scopes(&a.scopes, None),
        now + a.expires_in.as_secs(),
    );
    claims.nonce = Some(nonce.as_str().into());
    claims.issued_at = Some(now);
    claims.hard_expires = a.session_lifetime.map(|d| now + d.as_secs());
    let t = token::sign(&claims, &a.token.key()?)?;
    let next: String = form_encode(next);
    Ok(format!("{}{LOGIN_PATH}?grant={t}&next={next}", a.base_url))
}

fn form_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn sign_cookie(a: &SignCookie, now: u64) -> Result<String> {
    let sid = match &a.token.session_id {
        Some(s) => s.clone(),
        None => random_hex(16)?,
    };
    let mut claims = pubcookie::session_claims(
        &a.token.account,
        scopes(&a.scopes, None),
        Some(&sid),
        a.token.user_id.as_deref(),
        now + a.max_lifetime.as_secs(),
        a.idle.as_secs(),
        now,
    );
    claims.ips = a.token.ips.iter().map(|s| s.as_str().into()).collect();
    let session = pubcookie::sign_session(&claims, &a.token.key()?)?;
    Ok(session
        .cookie(DEFAULT_COOKIE_NAME, &a.cookie_path, now)
        .to_string())
}
