//! The expirer: tombstones objects whose `X-Delete-At` passed.

use std::sync::Arc;
use std::time::Duration;

use super::Store;

/// Removes objects whose `X-Delete-At` passed, every `every`. Runs until the process ends.
pub async fn expirer(st: Arc<Store>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        let now = st.clock.wall_secs();
        let rows = match st.blocking(move |s| s.db.expired_objects(now, 1000)).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "expirer: listing expired objects failed");
                continue;
            }
        };
        for row in rows {
            let ts = st.clock.now();
            if let Err(e) = st.tombstone(&row, ts).await {
                tracing::warn!(error = %e, object = %row.name, "expirer: delete failed");
            }
        }
    }
}
