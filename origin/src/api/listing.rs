//! Listing parameters and output formats (plain, JSON, XML), as Swift writes them.

use std::collections::HashMap;

use crate::db::{ContainerRow, Entry, ListParams, ObjectRow};
use crate::{Error, Result};

/// Largest `limit` accepted (and the default).
pub const MAX_LIMIT: usize = 10_000;

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One name per line.
    Plain,
    /// JSON array.
    Json,
    /// XML document.
    Xml,
}

impl Format {
    /// `format=` wins over `Accept`.
    pub fn negotiate(format: Option<&str>, accept: Option<&str>) -> Format {
        match format.map(str::to_ascii_lowercase).as_deref() {
            Some("json") => return Format::Json,
            Some("xml") => return Format::Xml,
            Some("plain") => return Format::Plain,
            _ => {}
        }
        match accept {
            Some(a) if a.contains("application/json") => Format::Json,
            Some(a) if a.contains("application/xml") || a.contains("text/xml") => Format::Xml,
            _ => Format::Plain,
        }
    }

    /// `Content-Type` of the listing.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Plain => "text/plain; charset=utf-8",
            Format::Json => "application/json; charset=utf-8",
            Format::Xml => "application/xml; charset=utf-8",
        }
    }
}

/// Reads `prefix`, `delimiter`, `marker`, `end_marker`, `limit`, `reverse`.
///
/// # Errors
/// [`Error::PreconditionFailed`] for a limit over 10,000 (Swift's 412), [`Error::BadQuery`]
/// for a non-numeric limit.
pub fn params(q: &HashMap<String, String>) -> Result<ListParams> {
    let limit = match q.get("limit") {
        None => MAX_LIMIT,
        Some(l) => {
            let n: usize = l.parse().map_err(|_| Error::BadQuery {
                name: "limit",
                reason: "must be a non-negative integer",
            })?;
            if n > MAX_LIMIT {
                return Err(Error::PreconditionFailed {
                    reason: "limit must be at most 10000",
                });
            }
            n
        }
    };
    let nonempty = |k: &str| q.get(k).filter(|v| !v.is_empty()).cloned();
    let delimiter = nonempty("delimiter");
    if delimiter.as_ref().is_some_and(|d| d.chars().count() != 1) {
        return Err(Error::PreconditionFailed {
            reason: "delimiter must be a single character",
        });
    }
    let reverse = q.get("reverse").is_some_and(|v| {
        matches!(
            v.to_ascii_lowercase().as_str(),
            "true" | "1" | "yes" | "on" | "t" | "y"
        )
    });
    Ok(ListParams {
        prefix: q.get("prefix").cloned().unwrap_or_default(),
        delimiter,
        marker: nonempty("marker"),
        end_marker: nonempty("end_marker"),
        limit,
        reverse,
        live_at: None,
    })
}

fn xml_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            c => o.push(c),
        }
    }
    o
}

/// The listed ETag of an object (SLOs are listed with their quoted manifest ETag in Swift; we
/// list the bare MD5 of segment ETags).
fn listed_hash(o: &ObjectRow) -> &str {
    &o.etag
}

/// One name (or subdir) per line.
fn plain<T>(entries: &[Entry<T>], name: impl Fn(&T) -> &str) -> String {
    let mut s = String::new();
    for e in entries {
        match e {
            Entry::Item(i) => s.push_str(name(i)),
            Entry::Subdir(d) => s.push_str(d),
        }
        s.push('\n');
    }
    s
}

/// Renders an object listing.
pub fn objects(entries: &[Entry<ObjectRow>], fmt: Format, container: &str) -> String {
    match fmt {
        Format::Plain => plain(entries, |o| &o.name),
        Format::Json => {
            let items: Vec<serde_json::Value> = entries
                .iter()
                .map(|e| match e {
                    Entry::Item(o) => {
                        let mut v = serde_json::json!({
                            "hash": listed_hash(o),
                            "last_modified": o.ts.iso(),
                            "bytes": o.size,
                            "name": o.name,
                            "content_type": o.content_type,
                        });
                        if o.slo {
                            v["slo_etag"] = serde_json::Value::String(format!("\"{}\"", o.etag));
                        }
                        v
                    }
                    Entry::Subdir(d) => serde_json::json!({ "subdir": d }),
                })
                .collect();
            serde_json::Value::Array(items).to_string()
        }
        Format::Xml => {
            let mut s = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<container name=\"{}\">",
                xml_escape(container)
            );
            for e in entries {
                match e {
                    Entry::Item(o) => s.push_str(&format!(
                        "<object><name>{}</name><hash>{}</hash><bytes>{}</bytes><content_type>{}</content_type><last_modified>{}</last_modified></object>",
                        xml_escape(&o.name),
                        listed_hash(o),
                        o.size,
                        xml_escape(&o.content_type),
                        o.ts.iso()
                    )),
                    Entry::Subdir(d) => s.push_str(&format!(
                        "<subdir name=\"{0}\"><name>{0}</name></subdir>",
                        xml_escape(d)
                    )),
                }
            }
            s.push_str("</container>");
            s
        }
    }
}

/// Renders a container listing of an account.
pub fn containers(entries: &[Entry<ContainerRow>], fmt: Format, account: &str) -> String {
    match fmt {
        Format::Plain => plain(entries, |c| &c.name),
        Format::Json => {
            let items: Vec<serde_json::Value> = entries
                .iter()
                .map(|e| match e {
                    Entry::Item(c) => serde_json::json!({
                        "name": c.name,
                        "count": c.object_count,
                        "bytes": c.bytes_used,
                        "last_modified": c.ts.iso(),
                    }),
                    Entry::Subdir(d) => serde_json::json!({ "subdir": d }),
                })
                .collect();
            serde_json::Value::Array(items).to_string()
        }
        Format::Xml => {
            let mut s = format!(
                // Swift's account XML puts each element on its own line (its container XML
                // does not).
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<account name=\"AUTH_{}\">\n",
                xml_escape(account)
            );
            for e in entries {
                match e {
                    Entry::Item(c) => s.push_str(&format!(
                        "<container><name>{}</name><count>{}</count><bytes>{}</bytes><last_modified>{}</last_modified></container>\n",
                        xml_escape(&c.name),
                        c.object_count,
                        c.bytes_used,
                        c.ts.iso()
                    )),
                    Entry::Subdir(d) => s.push_str(&format!(
                        "<subdir name=\"{0}\"><name>{0}</name></subdir>\n",
                        xml_escape(d)
                    )),
                }
            }
            s.push_str("</account>");
            s
        }
    }
}
