//! `outpost billing report`: an account's per-minute billing, summed over every edge, from
//! the origin's admin API (`GET /admin/billing`).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use outpost_proto::billing::BillingReport;
use outpost_proto::{headers, paths};

/// `outpost billing ...`.
#[derive(Subcommand)]
pub enum BillingCommand {
    /// Bytes sent and requests of successful responses, per minute, for one account.
    Report(ReportArgs),
}

/// `outpost billing report`.
#[derive(Args)]
pub struct ReportArgs {
    /// Account (without `AUTH_`).
    #[arg(long)]
    account: String,
    /// Start, inclusive: RFC 3339 (`2026-01-31T12:00:00Z`) or unix seconds.
    #[arg(long)]
    from: String,
    /// End, exclusive: RFC 3339 or unix seconds.
    #[arg(long)]
    to: String,
    /// The origin's base URL. Default: `http://<listen>` from `--config`.
    #[arg(long, env = "OUTPOST_ORIGIN")]
    origin: Option<String>,
    /// The origin's config file: its `[credentials]` admin (or peer) secret authenticates
    /// the request.
    #[arg(long)]
    config: Option<PathBuf>,
    /// A reseller admin's auth token (from `/auth/v1.0`) instead of the internal secret.
    #[arg(long, env = "OUTPOST_AUTH_TOKEN")]
    token: Option<String>,
    /// Print the JSON report instead of a table.
    #[arg(long)]
    json: bool,
}

/// Runs a billing subcommand.
///
/// # Errors
/// Bad arguments, an unreachable origin, or a refused request (with the origin's message).
pub fn run(cmd: BillingCommand) -> Result<()> {
    let BillingCommand::Report(a) = cmd;
    let cfg = match &a.config {
        Some(p) => Some(
            outpost_origin::config::RawConfig::load(p)
                .and_then(outpost_origin::config::RawConfig::validate)
                .with_context(|| format!("--config {}", p.display()))?,
        ),
        None => None,
    };
    let origin = match (&a.origin, &cfg) {
        (Some(o), _) => o.trim_end_matches('/').to_owned(),
        (None, Some(c)) if c.listen.port() != 0 => {
            let mut addr = c.listen;
            if addr.ip().is_unspecified() {
                addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
            }
            format!("http://{addr}")
        }
        _ => bail!("--origin is required (or --config of an origin with a fixed listen port)"),
    };
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()?;
    let mut req = client
        .get(format!("{origin}{}", paths::ADMIN_BILLING))
        .query(&[
            ("account", a.account.as_str()),
            ("from", a.from.as_str()),
            ("to", a.to.as_str()),
        ]);
    req = match (&a.token, &cfg) {
        (Some(t), _) => req.header("x-auth-token", t),
        (None, Some(c)) => match c.credentials.operator_secret() {
            Some(s) => req.header(headers::INTERNAL, s),
            None => bail!(
                "--config: the origin config has no [credentials] admin (or peer) secret; \
                 add one, or give --token (reseller admin)"
            ),
        },
        (None, None) => bail!("give --config (admin credential) or --token (reseller admin)"),
    };
    // One request: the origin sums every edge's minutes before it answers.
    let asking = crate::progress::spinner(format!("asking {origin} for the billing report"));
    let resp = req.send().with_context(|| format!("asking {origin}"))?;
    let status = resp.status();
    let body = resp.text()?;
    asking.finish();
    if !status.is_success() {
        bail!("origin answered {status}: {}", body.trim());
    }
    if a.json {
        println!("{}", body.trim());
        return Ok(());
    }
    let r: BillingReport =
        outpost_proto::from_json(body.as_bytes()).context("origin sent a bad billing report")?;
    println!("account {}  from {}  to {}", r.account, r.from, r.to);
    println!("{:<22} {:>16} {:>10}", "minute (UTC)", "bytes", "requests");
    for m in &r.minutes {
        println!("{:<22} {:>16} {:>10}", m.minute, m.bytes, m.requests);
    }
    println!("{:<22} {:>16} {:>10}", "total", r.bytes, r.requests);
    Ok(())
}
