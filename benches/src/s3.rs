//! A minimal S3 client for the load benches: path-style requests signed with SigV4 (the
//! `aws-sigv4` crate, as the edge signs) over one blocking keep-alive connection pool, so an
//! S3 request costs the bench client about what a Swift request does (one HMAC chain more).
//!
//! PUT bodies are signed with their SHA-256 (what the aws CLI and boto3 send over plain
//! HTTP), so the server hashes every body it verifies, as it does for those clients.

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings};
use aws_smithy_runtime_api::client::identity::Identity;
use reqwest::blocking::{Client, Response};

/// An S3 endpoint and the key requests are signed with.
#[derive(Clone)]
pub struct S3Client {
    endpoint: String,
    host: String,
    identity: Identity,
    client: Client,
}

impl S3Client {
    /// A client of `endpoint` (`http://host:port`) signing as `access_key`.
    pub fn new(endpoint: &str, access_key: &str, secret: &str) -> S3Client {
        let host = endpoint
            .split_once("://")
            .map_or(endpoint, |(_, h)| h)
            .trim_end_matches('/')
            .to_owned();
        S3Client {
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            host,
            identity: Credentials::new(access_key, secret, None, None, "bench").into(),
            client: Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("HTTP client"),
        }
    }

    /// A fresh client (its own connection pool) with the same endpoint and key.
    pub fn fresh(&self) -> S3Client {
        let mut c = self.clone();
        c.client = Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("HTTP client");
        c
    }

    /// Sends `method path` (path-style: `/<bucket>/<key>`, no escaping needed) with `body`.
    pub fn send(&self, method: &str, path: &str, body: Vec<u8>) -> Response {
        let url = format!("{}{path}", self.endpoint);
        let sha = sha256_hex(&body);
        let headers = [("host", self.host.as_str()), ("x-amz-content-sha256", &sha)];
        let signable = SignableRequest::new(
            method,
            url.as_str(),
            headers.iter().copied(),
            SignableBody::Precomputed(sha.clone()),
        )
        .expect("signable request");
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&self.identity)
            .region("us-east-1")
            .name("s3")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .expect("signing parameters")
            .into();
        let (instructions, _) = aws_sigv4::http_request::sign(signable, &params)
            .expect("sign")
            .into_parts();
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut rb = self
            .client
            .request(m, &url)
            .header("x-amz-content-sha256", sha);
        let (signed, _) = instructions.into_parts();
        for h in signed {
            rb = rb.header(h.name(), h.value());
        }
        rb.body(body)
            .send()
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// PUT, panicking unless 200.
    pub fn must_put(&self, path: &str, body: Vec<u8>) {
        let r = self.send("PUT", path, body);
        let status = r.status().as_u16();
        assert_eq!(status, 200, "PUT {path}: {}", r.text().unwrap_or_default());
    }

    /// GET, returning (status, body).
    pub fn must_get(&self, path: &str) -> (u16, Vec<u8>) {
        let r = self.send("GET", path, Vec::new());
        let status = r.status().as_u16();
        (status, r.bytes().expect("body").to_vec())
    }
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}
