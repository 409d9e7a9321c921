//! Schema 2 → 3: a database without per-key stamps opens, reads as every key written at its
//! row's timestamp, and merges key by key from there (fixture `tests/fixtures/schema2.sql`).

use outpost_origin::db::{stamps, Db, SCHEMA_VERSION};
use outpost_origin::hlc::Timestamp;

#[test]
fn a_schema_2_database_opens_and_merges_key_by_key() {
    let dir = tempfile::tempdir().unwrap();
    {
        let conn = rusqlite_open(dir.path());
        conn.execute_batch(include_str!("../fixtures/schema2.sql"))
            .unwrap();
    }
    let db = Db::open(dir.path()).unwrap();
    assert_eq!(SCHEMA_VERSION, 3);
    let c = db.meta_row("a", Some("c")).unwrap().unwrap();
    assert!(c.stamps.is_empty());
    assert_eq!(stamps::normalize(&c).stamps["x-container-read"], 200);
    // A later POST stamps only its own key; the old key keeps the row's old timestamp.
    db.post_container(
        "a",
        "c",
        Timestamp(250),
        &[("x-container-meta-web".into(), Some("on".into()))],
    )
    .unwrap();
    let c = db.meta_row("a", Some("c")).unwrap().unwrap();
    assert_eq!(c.stamps["x-container-read"], 200);
    assert_eq!(c.stamps["x-container-meta-web"], 250);
    // A peer's whole-row version of the same container at 220 (another read ACL) wins only
    // that key.
    let mut peer = c.clone();
    peer.stamps.clear();
    peer.ts = 220;
    peer.meta = [("x-container-read".to_owned(), "other".to_owned())].into();
    db.merge_meta(&[peer]).unwrap();
    let c = db.meta_row("a", Some("c")).unwrap().unwrap();
    assert_eq!(c.meta["x-container-read"], "other");
    assert_eq!(c.meta["x-container-meta-web"], "on");
    assert!(db.get_container("a", "gone").unwrap().is_none());
    let a = db.meta_row("a", None).unwrap().unwrap();
    assert_eq!(stamps::normalize(&a).meta["x-account-meta-colour"], "blue");
}

fn rusqlite_open(dir: &std::path::Path) -> rusqlite::Connection {
    rusqlite::Connection::open(dir.join("meta.sqlite3")).expect("open the fixture database")
}
