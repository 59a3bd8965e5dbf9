//! Expiry notices (EXTENSIONS E6): `pat.expiring` 7 days and 1 day before a PAT expires and
//! `pat.expired` once it has, each once per PAT, threshold and expiry across every node and
//! restart (a marker row decides), by the time of `ServerConfig::clock`.

use crate::audit;
use crate::state::AppState;
use patd_core::audit::{Actor, EventType};
use time::{Duration, OffsetDateTime};

/// PATs read per page of a scan.
const PAGE: i64 = 500;

/// Notices for PATs that expired longer ago than this are not sent: they expired before any
/// node looked (a database restored from an old backup, say).
const EXPIRED_WINDOW: Duration = Duration::days(1);

const WEEK: Duration = Duration::days(7);

pub(crate) fn notify_forever(state: AppState) {
    tokio::spawn(async move {
        loop {
            scan(&state).await;
            tokio::time::sleep(state.config.expiry_scan_interval).await;
        }
    });
}

/// The notice a PAT expiring at `expiry` is due at `now`: its kind, the thresholds it marks
/// (the one that decides first), and the days left.
fn due(expiry: OffsetDateTime, now: OffsetDateTime) -> (EventType, &'static [&'static str], i64) {
    let left = expiry - now;
    if left <= Duration::ZERO {
        (EventType::PatExpired, &["expired", "1d", "7d"], 0)
    } else {
        // A PAT with less than a day left gets the 1-day notice, not both.
        let days_left = (left.whole_seconds() + 86_399) / 86_400;
        if left <= Duration::days(1) {
            (EventType::PatExpiring, &["1d", "7d"], days_left)
        } else {
            (EventType::PatExpiring, &["7d"], days_left)
        }
    }
}

/// One look at the PATs expiring within a week or expired within a day.
pub(crate) async fn scan(state: &AppState) {
    let now = state.config.clock.now();
    let mut offset = 0;
    loop {
        let page = match state
            .store
            .expiring_pats(now - EXPIRED_WINDOW, now + WEEK, PAGE, offset)
            .await
        {
            Ok(page) => page,
            Err(err) => {
                tracing::warn!(error = %err, "could not look for expiring PATs");
                return;
            }
        };
        for owned in &page {
            let Some(expiry) = owned.pat.expiry.date() else {
                continue;
            };
            let (kind, thresholds, days_left) = due(expiry, now);
            let mut event =
                audit::pat_event(kind, Actor::system("expiry"), &owned.pat, &owned.owner_name);
            event.time = patd_core::to_millis(now);
            if kind == EventType::PatExpiring {
                event = event.detail("daysLeft", days_left);
            }
            match state
                .store
                .record_expiry_notice(owned.pat.id.as_str(), thresholds, expiry, &event)
                .await
            {
                Ok(true) => audit::committed(&event),
                Ok(false) => {}
                Err(err) => tracing::warn!(error = %err, "could not record an expiry notice"),
            }
        }
        if i64::try_from(page.len()).unwrap_or(0) < PAGE {
            return;
        }
        offset += PAGE;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn the_tightest_threshold_reached_is_due() {
        let now = datetime!(2026-01-01 00:00 UTC);
        assert_eq!(
            due(now + Duration::days(6), now),
            (EventType::PatExpiring, &["7d"][..], 6)
        );
        assert_eq!(
            due(now + Duration::hours(20), now),
            (EventType::PatExpiring, &["1d", "7d"][..], 1)
        );
        assert_eq!(due(now, now).0, EventType::PatExpired);
    }
}
