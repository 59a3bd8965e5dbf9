//! The Shared Signals part of `Queries` (EXTENSIONS E11): streams, the tenant's limit of ten
//! kept by a unique slot, and the SETs of a stream in the outbox (a verification queued, a poll
//! answered and acknowledged). The SETs of audit events are queued by `outbox::enqueue`.

use crate::outbox::{delivery_from_row, insert_delivery, NewDelivery, DELIVERY_COLUMNS};
use crate::queries::Queries;
use crate::sql::{from_millis, is_unique_violation, millis, to_json, Dialect, RowAccess};
use crate::{Delivery, StoreError, StreamInsert};
use patd_core::notify::WebhookUrl;
use patd_core::ssf::{Delivery as StreamDelivery, Listener, Method, Signal, Status, Stream};
use sqlx::{Encode, Executor, IntoArguments, Pool, Type};
use time::OffsetDateTime;

const STREAM_COLUMNS: &str = "id, client_id, audience, method, endpoint_url, \
     authorization_header, events_requested, description, status, reason, created, updated";

fn method_of(raw: &str) -> Result<Method, StoreError> {
    Method::parse(raw).map_err(|_| crate::sql::corrupt("method", raw))
}

fn status_of(raw: &str) -> Result<Status, StoreError> {
    Status::parse(raw).map_err(|_| crate::sql::corrupt("status", raw))
}

fn events_of(raw: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(raw).map_err(|err| crate::sql::corrupt("events_requested", err))
}

fn stream_from_row(row: &impl RowAccess) -> Result<Stream, StoreError> {
    Ok(Stream {
        id: row.text("id")?,
        client_id: row.text("client_id")?,
        audience: row.text("audience")?,
        delivery: StreamDelivery {
            method: method_of(&row.text("method")?)?,
            endpoint_url: row.opt_text("endpoint_url")?.map(WebhookUrl::from_stored),
            authorization_header: row.opt_text("authorization_header")?,
        },
        events_requested: events_of(&row.text("events_requested")?)?,
        description: row.text("description")?,
        status: status_of(&row.text("status")?)?,
        reason: row.opt_text("reason")?,
        created: from_millis(row.int("created")?, "created")?,
        updated: from_millis(row.int("updated")?, "updated")?,
    })
}

/// The streams an event may go to, read on the event's own transaction.
pub(crate) async fn listeners<DB>(
    connection: &mut DB::Connection,
) -> Result<Vec<Listener>, StoreError>
where
    DB: Dialect,
    DB::Row: RowAccess,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'a> DB::Arguments<'a>: IntoArguments<'a, DB>,
{
    sqlx::query::<DB>("SELECT id, method, status, events_requested FROM ssf_streams ORDER BY id")
        .fetch_all(&mut *connection)
        .await?
        .iter()
        .map(|row| {
            Ok(Listener {
                id: row.text("id")?,
                method: method_of(&row.text("method")?)?,
                status: status_of(&row.text("status")?)?,
                events_requested: events_of(&row.text("events_requested")?)?,
            })
        })
        .collect()
}

/// Queues one SET for a stream on `connection`: its outbox row's id is the SET's `jti`.
pub(crate) async fn queue_set<DB>(
    connection: &mut DB::Connection,
    stream_id: &str,
    method: Method,
    signal: &Signal,
) -> Result<(), StoreError>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'a> DB::Arguments<'a>: IntoArguments<'a, DB>,
    for<'a> &'a str: Encode<'a, DB> + Type<DB>,
    for<'a> i64: Encode<'a, DB> + Type<DB>,
    for<'a> Option<&'a str>: Encode<'a, DB> + Type<DB>,
{
    let id = patd_core::ids::random_hex_id(&mut rand::rng());
    insert_delivery::<DB>(
        connection,
        NewDelivery {
            id: &id,
            message_id: &id,
            webhook: None,
            stream: Some(stream_id),
            channel: method.channel(),
            recipient: None,
            event_type: signal.event_type,
            payload: &signal.claims.to_string(),
            created: millis(OffsetDateTime::now_utc()),
        },
    )
    .await
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
    /// Stores a new stream in a free slot. Concurrent creates that pick the same slot collide on
    /// its unique index, and the loser looks again; one that finds its client id taken stops.
    pub(crate) async fn insert_stream(&self, stream: &Stream) -> Result<StreamInsert, StoreError> {
        let p: Vec<String> = (1..=13).map(DB::param).collect();
        let insert = format!(
            "INSERT INTO ssf_streams ({STREAM_COLUMNS}, slot) \
             VALUES ({}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {})",
            p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], p[9], p[10], p[11], p[12]
        );
        let by_client = format!(
            "SELECT id FROM ssf_streams WHERE client_id = {}",
            DB::param(1)
        );
        for _ in 0..=patd_core::ssf::MAX_STREAMS {
            let exists = sqlx::query::<DB>(&by_client)
                .bind(stream.client_id.as_str())
                .fetch_optional(self.writer)
                .await?;
            if exists.is_some() {
                return Ok(StreamInsert::ClientHasOne);
            }
            let taken: Vec<i64> = sqlx::query::<DB>("SELECT slot FROM ssf_streams")
                .fetch_all(self.writer)
                .await?
                .iter()
                .map(|row| row.int("slot"))
                .collect::<Result<_, _>>()?;
            let limit = i64::try_from(patd_core::ssf::MAX_STREAMS).unwrap_or(i64::MAX);
            let Some(slot) = (0..limit).find(|slot| !taken.contains(slot)) else {
                return Ok(StreamInsert::TenantFull);
            };
            let done = sqlx::query::<DB>(&insert)
                .bind(stream.id.as_str())
                .bind(stream.client_id.as_str())
                .bind(stream.audience.as_str())
                .bind(stream.delivery.method.urn())
                .bind(
                    stream
                        .delivery
                        .endpoint_url
                        .as_ref()
                        .map(WebhookUrl::as_str),
                )
                .bind(stream.delivery.authorization_header.as_deref())
                .bind(to_json(&stream.events_requested))
                .bind(stream.description.as_str())
                .bind(stream.status.as_str())
                .bind(stream.reason.as_deref())
                .bind(millis(stream.created))
                .bind(millis(stream.updated))
                .bind(slot)
                .execute(self.writer)
                .await;
            match done {
                Ok(_) => return Ok(StreamInsert::Inserted),
                // Another create took the slot or the client id meanwhile: look again.
                Err(err) if is_unique_violation(&err) => continue,
                Err(err) => return Err(err.into()),
            }
        }
        Ok(StreamInsert::TenantFull)
    }

    pub(crate) async fn streams(&self) -> Result<Vec<Stream>, StoreError> {
        sqlx::query::<DB>(&format!(
            "SELECT {STREAM_COLUMNS} FROM ssf_streams ORDER BY created, id"
        ))
        .fetch_all(self.reader)
        .await?
        .iter()
        .map(stream_from_row)
        .collect()
    }

    pub(crate) async fn stream(&self, id: &str) -> Result<Option<Stream>, StoreError> {
        let sql = format!(
            "SELECT {STREAM_COLUMNS} FROM ssf_streams WHERE id = {}",
            DB::param(1)
        );
        sqlx::query::<DB>(&sql)
            .bind(id)
            .fetch_optional(self.writer)
            .await?
            .map(|row| stream_from_row(&row))
            .transpose()
    }

    /// Writes a stream's delivery, events, description, status and reason. A stream disabled
    /// drops the SETs it held (SSF 1.0 §8.1.2: a disabled stream holds nothing).
    pub(crate) async fn update_stream(&self, stream: &Stream) -> Result<bool, StoreError> {
        let p: Vec<String> = (1..=9).map(DB::param).collect();
        let sql = format!(
            "UPDATE ssf_streams SET method = {}, endpoint_url = {}, authorization_header = {}, \
                 events_requested = {}, description = {}, status = {}, reason = {}, updated = {} \
             WHERE id = {}",
            p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8]
        );
        let mut transaction = self.writer.begin().await?;
        let done = sqlx::query::<DB>(&sql)
            .bind(stream.delivery.method.urn())
            .bind(
                stream
                    .delivery
                    .endpoint_url
                    .as_ref()
                    .map(WebhookUrl::as_str),
            )
            .bind(stream.delivery.authorization_header.as_deref())
            .bind(to_json(&stream.events_requested))
            .bind(stream.description.as_str())
            .bind(stream.status.as_str())
            .bind(stream.reason.as_deref())
            .bind(millis(stream.updated))
            .bind(stream.id.as_str())
            .execute(&mut *transaction)
            .await?;
        let updated = DB::rows_affected(&done) > 0;
        // The pending SETs follow the stream's method: a switch from push to poll (or back)
        // keeps them, now delivered the new way.
        let sql = format!(
            "UPDATE outbox SET channel = {} WHERE stream_id = {} AND status = 'pending'",
            DB::param(1),
            DB::param(2)
        );
        sqlx::query::<DB>(&sql)
            .bind(stream.delivery.method.channel())
            .bind(stream.id.as_str())
            .execute(&mut *transaction)
            .await?;
        if stream.status == Status::Disabled {
            drop_pending::<DB>(&mut *transaction, &stream.id).await?;
        }
        transaction.commit().await?;
        Ok(updated)
    }

    /// Deletes a stream and the SETs it had not delivered.
    pub(crate) async fn delete_stream(&self, id: &str) -> Result<bool, StoreError> {
        let mut transaction = self.writer.begin().await?;
        let sql = format!("DELETE FROM ssf_streams WHERE id = {}", DB::param(1));
        let done = sqlx::query::<DB>(&sql)
            .bind(id)
            .execute(&mut *transaction)
            .await?;
        drop_pending::<DB>(&mut *transaction, id).await?;
        transaction.commit().await?;
        Ok(DB::rows_affected(&done) > 0)
    }

    /// Queues one SET for a stream (a verification), unless the stream is gone or disabled;
    /// returns whether it was queued.
    pub(crate) async fn queue_stream_set(
        &self,
        stream_id: &str,
        signal: &Signal,
    ) -> Result<bool, StoreError> {
        let mut transaction = self.writer.begin().await?;
        let found = listeners::<DB>(&mut *transaction)
            .await?
            .into_iter()
            .find(|listener| listener.id == stream_id);
        let Some(listener) = found.filter(|listener| listener.takes(signal.event_type)) else {
            return Ok(false);
        };
        queue_set::<DB>(&mut *transaction, stream_id, listener.method, signal).await?;
        transaction.commit().await?;
        Ok(true)
    }

    /// One RFC 8936 poll: the SETs named by `ack` and `errors` leave the queue for good, then
    /// at most `max` of those still pending come back oldest first, with whether more wait.
    pub(crate) async fn poll_stream(
        &self,
        stream_id: &str,
        ack: &[String],
        errors: &[(String, String)],
        max: i64,
    ) -> Result<(Vec<Delivery>, bool), StoreError> {
        let now = millis(OffsetDateTime::now_utc());
        let mut transaction = self.writer.begin().await?;
        let acknowledge = format!(
            "UPDATE outbox SET status = 'delivered', delivered = {} \
             WHERE id = {} AND stream_id = {} AND status = 'pending'",
            DB::param(1),
            DB::param(2),
            DB::param(3)
        );
        for jti in ack {
            sqlx::query::<DB>(&acknowledge)
                .bind(now)
                .bind(jti.as_str())
                .bind(stream_id)
                .execute(&mut *transaction)
                .await?;
        }
        let refuse = format!(
            "UPDATE outbox SET status = 'failed', last_error = {} \
             WHERE id = {} AND stream_id = {} AND status = 'pending'",
            DB::param(1),
            DB::param(2),
            DB::param(3)
        );
        for (jti, error) in errors {
            sqlx::query::<DB>(&refuse)
                .bind(error.as_str())
                .bind(jti.as_str())
                .bind(stream_id)
                .execute(&mut *transaction)
                .await?;
        }
        let pending = format!(
            "SELECT {DELIVERY_COLUMNS} FROM outbox WHERE stream_id = {} AND status = 'pending' \
               AND channel = {} ORDER BY seq LIMIT {}",
            DB::param(1),
            DB::param(2),
            DB::param(3)
        );
        let mut found = sqlx::query::<DB>(&pending)
            .bind(stream_id)
            .bind(patd_core::ssf::CHANNEL_POLL)
            .bind(max.saturating_add(1))
            .fetch_all(&mut *transaction)
            .await?
            .iter()
            .map(delivery_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        transaction.commit().await?;
        let more = i64::try_from(found.len()).unwrap_or(i64::MAX) > max;
        found.truncate(usize::try_from(max).unwrap_or(0));
        Ok((found, more))
    }

    /// The stored value of `key`, if any.
    pub(crate) async fn setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        let sql = format!("SELECT value FROM settings WHERE key = {}", DB::param(1));
        sqlx::query::<DB>(&sql)
            .bind(key)
            .fetch_optional(self.writer)
            .await?
            .map(|row| row.text("value"))
            .transpose()
    }
}

async fn drop_pending<DB>(
    connection: &mut DB::Connection,
    stream_id: &str,
) -> Result<(), StoreError>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'a> DB::Arguments<'a>: IntoArguments<'a, DB>,
    for<'a> &'a str: Encode<'a, DB> + Type<DB>,
{
    let sql = format!(
        "DELETE FROM outbox WHERE stream_id = {} AND status = 'pending'",
        DB::param(1)
    );
    sqlx::query::<DB>(&sql)
        .bind(stream_id)
        .execute(connection)
        .await?;
    Ok(())
}
