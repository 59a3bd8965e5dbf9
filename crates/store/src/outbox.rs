//! The outbox and what feeds it: webhooks, deliveries (webhook calls and owners' mail) with their
//! leases and retries, and the markers of expiry notices. Rows are added in the transaction of
//! the event they tell of (`enqueue`, called by `write_events`).

use crate::queries::Queries;
use crate::sql::{
    corrupt, from_millis, millis, owned_pat_from_row, Dialect, RowAccess, PAT_COLUMNS,
};
use crate::{Delivery, DeliveryOutcome, OwnedPat, StoreError};
use patd_core::audit::AuditEvent;
use patd_core::notify::{payload, Subscription, Webhook, WebhookUrl};
use sqlx::{Encode, Executor, IntoArguments, Pool, Type};
use time::OffsetDateTime;

/// The setting that turns owners' mail on for a database (its nodes have `--smtp-url`).
pub(crate) const MAIL_SETTING: &str = "mail";

pub(crate) const DELIVERY_COLUMNS: &str = "id, message_id, webhook_id, stream_id, channel, \
     recipient, event_type, payload, status, attempts, created, next_attempt, last_attempt, \
     last_status, last_error, delivered";

const WEBHOOK_COLUMNS: &str = "id, url, events, description, secret, created";

fn webhook_from_row(row: &impl RowAccess) -> Result<Webhook, StoreError> {
    let events: Vec<String> =
        serde_json::from_str(&row.text("events")?).map_err(|err| corrupt("events", err))?;
    Ok(Webhook {
        id: row.text("id")?,
        url: WebhookUrl::from_stored(row.text("url")?),
        events: Subscription::from_stored(events),
        description: row.text("description")?,
        secret: row.text("secret")?,
        created: from_millis(row.int("created")?, "created")?,
    })
}

pub(crate) fn delivery_from_row(row: &impl RowAccess) -> Result<Delivery, StoreError> {
    let time = |column: &str| -> Result<Option<OffsetDateTime>, StoreError> {
        row.opt_int(column)?
            .map(|at| from_millis(at, column))
            .transpose()
    };
    Ok(Delivery {
        id: row.text("id")?,
        message_id: row.text("message_id")?,
        webhook_id: row.opt_text("webhook_id")?,
        stream_id: row.opt_text("stream_id")?,
        channel: row.text("channel")?,
        recipient: row.opt_text("recipient")?,
        event_type: row.text("event_type")?,
        payload: row.text("payload")?,
        status: row.text("status")?,
        attempts: row.int("attempts")?,
        created: from_millis(row.int("created")?, "created")?,
        next_attempt: from_millis(row.int("next_attempt")?, "next_attempt")?,
        last_attempt: time("last_attempt")?,
        last_status: row.opt_int("last_status")?,
        last_error: row.opt_text("last_error")?,
        delivered: time("delivered")?,
    })
}

/// Adds the outbox rows `events` call for, on the transaction that stores them: one per webhook
/// that wants each event, one mail to a PAT's owner for the mailed kinds when mail is on and the
/// owner has an address, and one SET per Shared Signals stream that takes the event's signal
/// (in the event's order, so each stream hears of its events in order).
pub(crate) async fn enqueue<DB>(
    connection: &mut DB::Connection,
    events: &[AuditEvent],
) -> Result<(), StoreError>
where
    DB: Dialect,
    DB::Row: RowAccess,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'a> DB::Arguments<'a>: IntoArguments<'a, DB>,
    for<'a> &'a str: Encode<'a, DB> + Type<DB>,
    for<'a> i64: Encode<'a, DB> + Type<DB>,
    for<'a> Option<&'a str>: Encode<'a, DB> + Type<DB>,
{
    if !events.iter().any(|event| event.kind.is_notified()) {
        return Ok(());
    }
    let signals: Vec<patd_core::ssf::Signal> =
        events.iter().filter_map(patd_core::ssf::signal).collect();
    if !signals.is_empty() {
        let streams = crate::ssf::listeners::<DB>(&mut *connection).await?;
        for signal in &signals {
            for stream in streams.iter().filter(|s| s.takes(signal.event_type)) {
                crate::ssf::queue_set::<DB>(&mut *connection, &stream.id, stream.method, signal)
                    .await?;
            }
        }
    }
    let hooks = sqlx::query::<DB>(&format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks"))
        .fetch_all(&mut *connection)
        .await?
        .iter()
        .map(webhook_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    let mailed = events.iter().any(|event| event.kind.is_mailed());
    let mail_on = mailed && {
        let sql = format!("SELECT value FROM settings WHERE key = {}", DB::param(1));
        let row = sqlx::query::<DB>(&sql)
            .bind(MAIL_SETTING)
            .fetch_optional(&mut *connection)
            .await?;
        row.map(|row| row.text("value")).transpose()?.as_deref() == Some("on")
    };
    for event in events.iter().filter(|event| event.kind.is_notified()) {
        let body = payload(event).to_string();
        let mut rows: Vec<(Option<&str>, &str, Option<String>)> = hooks
            .iter()
            .filter(|hook| hook.events.wants(event.kind))
            .map(|hook| (Some(hook.id.as_str()), "webhook", None))
            .collect();
        let owner = event
            .target
            .as_ref()
            .and_then(|target| target.owner_id.as_deref());
        if let (true, true, Some(owner)) = (mail_on, event.kind.is_mailed(), owner) {
            let sql = format!("SELECT email FROM identities WHERE id = {}", DB::param(1));
            let row = sqlx::query::<DB>(&sql)
                .bind(owner)
                .fetch_optional(&mut *connection)
                .await?;
            if let Some(email) = row.map(|row| row.opt_text("email")).transpose()?.flatten() {
                rows.push((None, "email", Some(email)));
            }
        }
        for (webhook, channel, recipient) in rows {
            let id = patd_core::ids::random_hex_id(&mut rand::rng());
            insert_delivery::<DB>(
                &mut *connection,
                NewDelivery {
                    id: &id,
                    message_id: &format!("msg_{}", event.id),
                    webhook,
                    stream: None,
                    channel,
                    recipient: recipient.as_deref(),
                    event_type: event.kind.as_str(),
                    payload: &body,
                    // Due now by the wall clock, whatever time the event itself names.
                    created: millis(OffsetDateTime::now_utc()),
                },
            )
            .await?;
        }
    }
    Ok(())
}

pub(crate) struct NewDelivery<'a> {
    pub id: &'a str,
    pub message_id: &'a str,
    pub webhook: Option<&'a str>,
    pub stream: Option<&'a str>,
    pub channel: &'a str,
    pub recipient: Option<&'a str>,
    pub event_type: &'a str,
    pub payload: &'a str,
    pub created: i64,
}

pub(crate) async fn insert_delivery<DB>(
    connection: &mut DB::Connection,
    row: NewDelivery<'_>,
) -> Result<(), StoreError>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'a> DB::Arguments<'a>: IntoArguments<'a, DB>,
    for<'a> &'a str: Encode<'a, DB> + Type<DB>,
    for<'a> i64: Encode<'a, DB> + Type<DB>,
    for<'a> Option<&'a str>: Encode<'a, DB> + Type<DB>,
{
    let p: Vec<String> = (1..=10).map(DB::param).collect();
    let sql = format!(
        "INSERT INTO outbox (id, message_id, webhook_id, stream_id, channel, recipient, \
             event_type, payload, status, attempts, created, next_attempt) \
         VALUES ({}, {}, {}, {}, {}, {}, {}, {}, 'pending', 0, {}, {})",
        p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], p[9]
    );
    sqlx::query::<DB>(&sql)
        .bind(row.id)
        .bind(row.message_id)
        .bind(row.webhook)
        .bind(row.stream)
        .bind(row.channel)
        .bind(row.recipient)
        .bind(row.event_type)
        .bind(row.payload)
        .bind(row.created)
        .bind(row.created)
        .execute(connection)
        .await?;
    Ok(())
}

impl<DB> Queries<'_, DB>
where
    DB: Dialect,
    DB::Row: RowAccess,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'c> &'c Pool<DB>: Executor<'c, Database = DB>,
    for<'a> DB::Arguments<'a>: IntoArguments<'a, DB>,
    for<'a> &'a str: Encode<'a, DB> + Type<DB>,
    for<'a> &'a [u8]: Encode<'a, DB> + Type<DB>,
    for<'a> String: Encode<'a, DB> + Type<DB>,
    for<'a> i64: Encode<'a, DB> + Type<DB>,
    for<'a> Option<i64>: Encode<'a, DB> + Type<DB>,
    for<'a> Option<&'a str>: Encode<'a, DB> + Type<DB>,
    for<'a> bool: Encode<'a, DB> + Type<DB>,
{
    pub(crate) async fn insert_webhook(
        &self,
        hook: &Webhook,
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        let p: Vec<String> = (1..=6).map(DB::param).collect();
        let sql = format!(
            "INSERT INTO webhooks ({WEBHOOK_COLUMNS}) VALUES ({}, {}, {}, {}, {}, {})",
            p[0], p[1], p[2], p[3], p[4], p[5]
        );
        let mut transaction = self.writer.begin().await?;
        sqlx::query::<DB>(&sql)
            .bind(hook.id.as_str())
            .bind(hook.url.as_str())
            .bind(crate::sql::to_json(hook.events.entries()))
            .bind(hook.description.as_str())
            .bind(hook.secret.as_str())
            .bind(millis(hook.created))
            .execute(&mut *transaction)
            .await?;
        crate::queries::write_events::<DB>(&mut *transaction, std::slice::from_ref(event)).await?;
        transaction.commit().await?;
        Ok(())
    }

    pub(crate) async fn webhooks(&self) -> Result<Vec<Webhook>, StoreError> {
        sqlx::query::<DB>(&format!(
            "SELECT {WEBHOOK_COLUMNS} FROM webhooks ORDER BY created, id"
        ))
        .fetch_all(self.reader)
        .await?
        .iter()
        .map(webhook_from_row)
        .collect()
    }

    pub(crate) async fn webhook(&self, id: &str) -> Result<Option<Webhook>, StoreError> {
        let sql = format!(
            "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE id = {}",
            DB::param(1)
        );
        sqlx::query::<DB>(&sql)
            .bind(id)
            .fetch_optional(self.reader)
            .await?
            .map(|row| webhook_from_row(&row))
            .transpose()
    }

    pub(crate) async fn update_webhook(&self, hook: &Webhook) -> Result<bool, StoreError> {
        let p: Vec<String> = (1..=4).map(DB::param).collect();
        let sql = format!(
            "UPDATE webhooks SET url = {}, events = {}, description = {} WHERE id = {}",
            p[0], p[1], p[2], p[3]
        );
        let done = sqlx::query::<DB>(&sql)
            .bind(hook.url.as_str())
            .bind(crate::sql::to_json(hook.events.entries()))
            .bind(hook.description.as_str())
            .bind(hook.id.as_str())
            .execute(self.writer)
            .await?;
        Ok(DB::rows_affected(&done) > 0)
    }

    /// Deletes the webhook and its deliveries not yet made, with `event`.
    pub(crate) async fn delete_webhook(
        &self,
        id: &str,
        event: &AuditEvent,
    ) -> Result<bool, StoreError> {
        let mut transaction = self.writer.begin().await?;
        let sql = format!("DELETE FROM webhooks WHERE id = {}", DB::param(1));
        let done = sqlx::query::<DB>(&sql)
            .bind(id)
            .execute(&mut *transaction)
            .await?;
        let deleted = DB::rows_affected(&done) > 0;
        if deleted {
            let sql = format!(
                "DELETE FROM outbox WHERE webhook_id = {} AND status = 'pending'",
                DB::param(1)
            );
            sqlx::query::<DB>(&sql)
                .bind(id)
                .execute(&mut *transaction)
                .await?;
            crate::queries::write_events::<DB>(&mut *transaction, std::slice::from_ref(event))
                .await?;
        }
        transaction.commit().await?;
        Ok(deleted)
    }

    /// A webhook's deliveries, newest first.
    pub(crate) async fn deliveries(
        &self,
        webhook_id: &str,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<Delivery>, StoreError> {
        let p: Vec<String> = (1..=3).map(DB::param).collect();
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM outbox WHERE webhook_id = {} \
             ORDER BY seq DESC LIMIT {} OFFSET {}",
            p[0], p[1], p[2]
        );
        sqlx::query::<DB>(&sql)
            .bind(webhook_id)
            .bind(limit)
            .bind(offset)
            .fetch_all(self.reader)
            .await?
            .iter()
            .map(delivery_from_row)
            .collect()
    }

    /// A new pending delivery of the same message as `delivery_id` of `webhook_id`, due now.
    pub(crate) async fn redeliver(
        &self,
        webhook_id: &str,
        delivery_id: &str,
        now: OffsetDateTime,
    ) -> Result<Option<Delivery>, StoreError> {
        let p: Vec<String> = (1..=2).map(DB::param).collect();
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM outbox WHERE id = {} AND webhook_id = {}",
            p[0], p[1]
        );
        let mut transaction = self.writer.begin().await?;
        let Some(row) = sqlx::query::<DB>(&sql)
            .bind(delivery_id)
            .bind(webhook_id)
            .fetch_optional(&mut *transaction)
            .await?
        else {
            return Ok(None);
        };
        let original = delivery_from_row(&row)?;
        let id = patd_core::ids::random_hex_id(&mut rand::rng());
        insert_delivery::<DB>(
            &mut *transaction,
            NewDelivery {
                id: &id,
                message_id: &original.message_id,
                webhook: Some(webhook_id),
                stream: None,
                channel: &original.channel,
                recipient: original.recipient.as_deref(),
                event_type: &original.event_type,
                payload: &original.payload,
                created: millis(now),
            },
        )
        .await?;
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM outbox WHERE id = {}",
            DB::param(1)
        );
        let row = sqlx::query::<DB>(&sql)
            .bind(id.as_str())
            .fetch_one(&mut *transaction)
            .await?;
        transaction.commit().await?;
        delivery_from_row(&row).map(Some)
    }

    /// Deliveries due at `now` on `channels` and not leased: of each webhook and each stream
    /// only its oldest pending one, so that each hears of its events in order; none of a stream
    /// that is not enabled (a paused one holds its SETs).
    pub(crate) async fn due_deliveries(
        &self,
        now: OffsetDateTime,
        channels: &[&str],
        limit: i64,
    ) -> Result<Vec<Delivery>, StoreError> {
        if channels.is_empty() {
            return Ok(Vec::new());
        }
        // Placeholders in the order they appear: SQLite's are positional.
        let in_list: Vec<String> = (3..3 + channels.len()).map(DB::param).collect();
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM outbox o WHERE o.status = 'pending' \
               AND o.next_attempt <= {} AND (o.lease_until IS NULL OR o.lease_until < {}) \
               AND o.channel IN ({}) \
               AND (o.webhook_id IS NULL OR o.seq = (SELECT MIN(h.seq) FROM outbox h \
                    WHERE h.webhook_id = o.webhook_id AND h.status = 'pending')) \
               AND (o.stream_id IS NULL OR (o.seq = (SELECT MIN(h.seq) FROM outbox h \
                    WHERE h.stream_id = o.stream_id AND h.status = 'pending') \
                    AND EXISTS (SELECT 1 FROM ssf_streams s WHERE s.id = o.stream_id \
                    AND s.status = 'enabled'))) \
             ORDER BY o.seq LIMIT {}",
            DB::param(1),
            DB::param(2),
            in_list.join(", "),
            DB::param(3 + channels.len())
        );
        let mut query = sqlx::query::<DB>(&sql).bind(millis(now)).bind(millis(now));
        for channel in channels {
            query = query.bind(*channel);
        }
        query
            .bind(limit)
            .fetch_all(self.reader)
            .await?
            .iter()
            .map(delivery_from_row)
            .collect()
    }

    /// Takes a delivery for one attempt until `lease_until`: `false` when another node has it
    /// or it is no longer pending.
    pub(crate) async fn claim_delivery(
        &self,
        id: &str,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let p: Vec<String> = (1..=4).map(DB::param).collect();
        let sql = format!(
            "UPDATE outbox SET lease_until = {}, attempts = attempts + 1, last_attempt = {} \
             WHERE id = {} AND status = 'pending' AND (lease_until IS NULL OR lease_until < {})",
            p[0], p[1], p[2], p[3]
        );
        let done = sqlx::query::<DB>(&sql)
            .bind(millis(lease_until))
            .bind(millis(now))
            .bind(id)
            .bind(millis(now))
            .execute(self.writer)
            .await?;
        Ok(DB::rows_affected(&done) > 0)
    }

    pub(crate) async fn finish_delivery(
        &self,
        id: &str,
        now: OffsetDateTime,
        outcome: &DeliveryOutcome,
    ) -> Result<(), StoreError> {
        let p: Vec<String> = (1..=6).map(DB::param).collect();
        let sql = format!(
            "UPDATE outbox SET status = {}, next_attempt = {}, last_status = {}, last_error = {}, \
                 delivered = {}, lease_until = NULL WHERE id = {}",
            p[0], p[1], p[2], p[3], p[4], p[5]
        );
        let (status, next, code, error, delivered) = match outcome {
            DeliveryOutcome::Delivered { status } => {
                ("delivered", now, *status, None, Some(millis(now)))
            }
            DeliveryOutcome::Retry {
                next,
                status,
                error,
            } => ("pending", *next, *status, Some(error.as_str()), None),
            DeliveryOutcome::Failed { status, error } => {
                ("failed", now, *status, Some(error.as_str()), None)
            }
        };
        sqlx::query::<DB>(&sql)
            .bind(status)
            .bind(millis(next))
            .bind(code.map(i64::from))
            .bind(error)
            .bind(delivered)
            .bind(id)
            .execute(self.writer)
            .await?;
        Ok(())
    }

    /// PATs whose expiry lies in `[from, to]`, soonest first, at most `limit`.
    pub(crate) async fn expiring_pats(
        &self,
        from: OffsetDateTime,
        to: OffsetDateTime,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<OwnedPat>, StoreError> {
        let p: Vec<String> = (1..=4).map(DB::param).collect();
        let sql = format!(
            "SELECT {PAT_COLUMNS}, i.name AS owner_name FROM pats p \
             JOIN identities i ON i.id = p.owner_id \
             WHERE p.expiration_date >= {} AND p.expiration_date <= {} \
             ORDER BY p.expiration_date, p.id LIMIT {} OFFSET {}",
            p[0], p[1], p[2], p[3]
        );
        sqlx::query::<DB>(&sql)
            .bind(millis(from))
            .bind(millis(to))
            .bind(limit)
            .bind(offset)
            .fetch_all(self.reader)
            .await?
            .iter()
            .map(owned_pat_from_row)
            .collect()
    }

    /// Marks the notices `thresholds` of the PAT's expiry `expiration` as sent and stores
    /// `event` (with its outbox rows), in one transaction, unless the first threshold's marker
    /// exists: of nodes racing, one wins. Returns whether this call did.
    pub(crate) async fn record_expiry_notice(
        &self,
        pat_id: &str,
        thresholds: &[&str],
        expiration: OffsetDateTime,
        event: &AuditEvent,
    ) -> Result<bool, StoreError> {
        let p: Vec<String> = (1..=3).map(DB::param).collect();
        let sql = format!(
            "INSERT INTO expiry_notices (pat_id, threshold, expiration) VALUES ({}, {}, {}) \
             ON CONFLICT DO NOTHING",
            p[0], p[1], p[2]
        );
        let mut transaction = self.writer.begin().await?;
        let mut first = true;
        for threshold in thresholds {
            let done = sqlx::query::<DB>(&sql)
                .bind(pat_id)
                .bind(*threshold)
                .bind(millis(expiration))
                .execute(&mut *transaction)
                .await?;
            if first && DB::rows_affected(&done) == 0 {
                return Ok(false);
            }
            first = false;
        }
        crate::queries::write_events::<DB>(&mut *transaction, std::slice::from_ref(event)).await?;
        transaction.commit().await?;
        Ok(true)
    }

    pub(crate) async fn set_identity_email(
        &self,
        id: &str,
        email: Option<&str>,
    ) -> Result<bool, StoreError> {
        let [first, second] = [DB::param(1), DB::param(2)];
        let sql = format!("UPDATE identities SET email = {first} WHERE id = {second}");
        let done = sqlx::query::<DB>(&sql)
            .bind(email)
            .bind(id)
            .execute(self.writer)
            .await?;
        Ok(DB::rows_affected(&done) > 0)
    }

    pub(crate) async fn set_setting(&self, key: &str, value: &str) -> Result<(), StoreError> {
        let [first, second] = [DB::param(1), DB::param(2)];
        let sql = format!(
            "INSERT INTO settings (key, value) VALUES ({first}, {second}) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value"
        );
        sqlx::query::<DB>(&sql)
            .bind(key)
            .bind(value)
            .execute(self.writer)
            .await?;
        Ok(())
    }
}
