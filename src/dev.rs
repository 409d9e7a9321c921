//! `outpost dev`: the embedded default installation on 127.0.0.1.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::{Context, Result};
use outpost_auth::tempurl::{self, Digest, TempUrlSpec};
use outpost_auth::token::{self, Claims};
use outpost_auth::{Secret, TokenKey, TokenKeySpec, TokenKind, TOKEN_QUERY_PARAM};
use outpost_origin::dev::{
    DevSecrets, DEMO_ACCOUNT, DEMO_KEY_ID, PRIVATE_CONTAINER, PUBLIC_CONTAINER,
};

/// Starts the origin with demo content, prints URLs, runs until SIGTERM / Ctrl-C.
pub async fn run(data: &Path, origin_port: u16) -> Result<()> {
    let secrets = DevSecrets::load_or_create(data).context("dev data directory")?;
    let listen = SocketAddr::from(([127, 0, 0, 1], origin_port));
    let cfg = secrets.origin_config(data, listen)?;
    let origin = outpost_origin::server::start(cfg)
        .await
        .with_context(|| format!("starting the origin on {listen} (try --origin-port 0)"))?;
    outpost_origin::dev::seed(&origin.state, &secrets).await?;
    let base = origin.url();
    let now = super::now()?;

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

    println!("Outpost dev is running (data in {}).", data.display());
    println!();
    println!("Origin (Swift API):   {base}");
    println!(
        "  swift -A {base}/auth/v1.0 -U {DEMO_ACCOUNT}:{DEMO_ACCOUNT} -K {} stat",
        secrets.user_key
    );
    println!("Public object:        {base}/v1/AUTH_{DEMO_ACCOUNT}/{PUBLIC_CONTAINER}/hello.txt");
    println!("Swift tempurl (1 h):  {base}{signed}");
    println!("Outpost token (1 h):  {base}{tempurl_path}?{TOKEN_QUERY_PARAM}={tok}");
    println!(
        "Token key:            id {DEMO_KEY_ID}, secret in {}",
        data.join("dev-secrets.toml").display()
    );
    println!();
    println!("The edge (cache, custom domains, pubcookie login) is not part of this build yet.");
    println!("Stop with Ctrl-C.");
    outpost_origin::server::wait_for_signal().await;
    origin.stop().await;
    Ok(())
}
