//! Per-peer feed positions, persisted so shipping resumes after a restart.
//!
//! One file per peer, `<data_dir>/xdc/<peer>.json`: `{"format":1,"seq":N}` where every feed
//! entry up to `seq` has reached the peer. Written to a temp file, fsynced and renamed, so a
//! crash leaves the old position (the batch after it is shipped again: harmless, the peer
//! skips what it already has) or the new one.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::Result;

/// The on-disk format version.
pub const FORMAT: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
struct Record {
    format: u32,
    seq: u64,
}

/// Where `peer`'s position lives.
pub fn path(data_dir: &Path, peer: &str) -> PathBuf {
    data_dir.join("xdc").join(format!("{peer}.json"))
}

/// Reads a position; a missing file is 0 (ship from the start of the feed).
///
/// # Errors
/// [`crate::Error::Io`] for an unreadable file; a corrupt or unknown-format file is reported
/// as [`crate::Error::Config`] naming the file, never silently reset.
pub fn load(file: &Path) -> Result<u64> {
    let text = match std::fs::read(file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e.into()),
    };
    let bad = |reason: String| crate::Error::Config {
        key: file.display().to_string(),
        reason,
    };
    let rec: Record =
        serde_json::from_slice(&text).map_err(|e| bad(format!("corrupt sync position: {e}")))?;
    if rec.format != FORMAT {
        return Err(bad(format!("unknown sync position format {}", rec.format)));
    }
    Ok(rec.seq)
}

/// Stores a position durably.
///
/// # Errors
/// [`crate::Error::Io`].
pub fn store(file: &Path, seq: u64) -> Result<()> {
    let dir = file.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = file.with_extension("json.tmp");
    let body = serde_json::to_vec(&Record {
        format: FORMAT,
        seq,
    })
    .map_err(|_| crate::Error::Task)?;
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&body)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, file)?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_reads_format_1() {
        let d = tempfile::tempdir().unwrap();
        let p = path(d.path(), "dc2");
        assert_eq!(load(&p).unwrap(), 0);
        store(&p, 42).unwrap();
        assert_eq!(load(&p).unwrap(), 42);
        // The format-1 fixture: what version 1 writes, byte for byte.
        std::fs::write(&p, br#"{"format":1,"seq":7}"#).unwrap();
        assert_eq!(load(&p).unwrap(), 7);
    }

    #[test]
    fn corrupt_or_unknown_files_are_errors() {
        let d = tempfile::tempdir().unwrap();
        let p = path(d.path(), "dc2");
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, b"{\"format\":1,\"se").unwrap();
        assert!(load(&p).unwrap_err().to_string().contains("corrupt"));
        std::fs::write(&p, br#"{"format":9,"seq":7}"#).unwrap();
        assert!(load(&p).unwrap_err().to_string().contains("format 9"));
    }
}
