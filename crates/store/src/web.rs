//! The web page's part of `Queries` (EXTENSIONS E12, migration `0011_web.sql`): sign-in links
//! used at most once, sessions, and OpenID Connect logins under way, each kept by the digest of
//! its secret. A link is redeemed and its session stored in one transaction, so two nodes given
//! the same link at the same moment open one session between them.

use crate::queries::{write_events, Queries};
use crate::sql::{corrupt, from_millis, millis, Dialect, RowAccess};
use crate::StoreError;
use patd_core::audit::AuditEvent;
use patd_core::ids::IdentityId;
use patd_core::web::{Session, SignInLink, SignInMethod, WebDigest};
use sqlx::{Encode, Executor, IntoArguments, Pool, Type};
use time::OffsetDateTime;

/// An OpenID Connect authorization request under way: what its callback needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcLogin {
    /// The digest of the `state` sent to the provider.
    pub state_digest: WebDigest,
    pub nonce: String,
    pub pkce_verifier: String,
    /// The page to show after signing in.
    pub return_to: Option<String>,
    pub created: OffsetDateTime,
}

fn session_from_row(row: &impl RowAccess) -> Result<Session, StoreError> {
    let identity = row.text("identity_id")?;
    let method = row.text("method")?;
    Ok(Session {
        digest: WebDigest::from_stored(row.text("digest")?),
        identity_id: IdentityId::parse(&identity)
            .ok_or_else(|| corrupt("identity_id", identity))?,
        method: SignInMethod::parse(&method).ok_or_else(|| corrupt("method", method))?,
        created: from_millis(row.int("created")?, "created")?,
        last_seen: from_millis(row.int("last_seen")?, "last_seen")?,
    })
}

async fn insert_session<DB>(
    connection: &mut DB::Connection,
    session: &Session,
) -> Result<(), StoreError>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'a> DB::Arguments<'a>: IntoArguments<'a, DB>,
    for<'a> &'a str: Encode<'a, DB> + Type<DB>,
    for<'a> i64: Encode<'a, DB> + Type<DB>,
{
    let p: Vec<String> = (1..=5).map(DB::param).collect();
    let sql = format!(
        "INSERT INTO web_sessions (digest, identity_id, method, created, last_seen) \
         VALUES ({}, {}, {}, {}, {})",
        p[0], p[1], p[2], p[3], p[4]
    );
    sqlx::query::<DB>(&sql)
        .bind(session.digest.as_str())
        .bind(session.identity_id.as_str())
        .bind(session.method.as_str())
        .bind(millis(session.created))
        .bind(millis(session.last_seen))
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
    pub(crate) async fn insert_sign_in_link(&self, link: &SignInLink) -> Result<(), StoreError> {
        let p: Vec<String> = (1..=4).map(DB::param).collect();
        let sql = format!(
            "INSERT INTO web_sign_in_links (digest, identity_id, created, expires_at) \
             VALUES ({}, {}, {}, {})",
            p[0], p[1], p[2], p[3]
        );
        sqlx::query::<DB>(&sql)
            .bind(link.digest.as_str())
            .bind(link.identity_id.as_str())
            .bind(millis(link.created))
            .bind(millis(link.expires))
            .execute(self.writer)
            .await?;
        Ok(())
    }

    /// The identity a sign-in link would sign in at `now`, without using it up (the page a
    /// link opens names whom it signs in).
    pub(crate) async fn sign_in_link(
        &self,
        digest: &WebDigest,
        now: OffsetDateTime,
    ) -> Result<Option<IdentityId>, StoreError> {
        let [digest_param, now_param] = [DB::param(1), DB::param(2)];
        let sql = format!(
            "SELECT identity_id FROM web_sign_in_links \
             WHERE digest = {digest_param} AND used_at IS NULL AND expires_at > {now_param}"
        );
        let row = sqlx::query::<DB>(&sql)
            .bind(digest.as_str())
            .bind(millis(now))
            .fetch_optional(self.writer)
            .await?;
        row.map(|row| {
            let raw = row.text("identity_id")?;
            IdentityId::parse(&raw).ok_or_else(|| corrupt("identity_id", raw))
        })
        .transpose()
    }

    /// Uses up the link whose digest is `link` (unused, unexpired at the session's start, and
    /// of the session's identity) and stores `session` with `event`, in one transaction. False:
    /// no such link now, and nothing was written.
    pub(crate) async fn redeem_sign_in_link(
        &self,
        link: &WebDigest,
        session: &Session,
        event: &AuditEvent,
    ) -> Result<bool, StoreError> {
        let mut transaction = self.writer.begin().await?;
        let [used, digest, identity, now] =
            [DB::param(1), DB::param(2), DB::param(3), DB::param(4)];
        // The conditional UPDATE is what makes a link single-use: of two redemptions at once,
        // one changes the row and the other finds it used.
        let sql = format!(
            "UPDATE web_sign_in_links SET used_at = {used} \
             WHERE digest = {digest} AND identity_id = {identity} AND used_at IS NULL \
               AND expires_at > {now}"
        );
        let done = sqlx::query::<DB>(&sql)
            .bind(millis(session.created))
            .bind(link.as_str())
            .bind(session.identity_id.as_str())
            .bind(millis(session.created))
            .execute(&mut *transaction)
            .await?;
        if DB::rows_affected(&done) == 0 {
            return Ok(false);
        }
        insert_session::<DB>(&mut *transaction, session).await?;
        write_events::<DB>(&mut *transaction, std::slice::from_ref(event)).await?;
        transaction.commit().await?;
        Ok(true)
    }

    /// Stores a session opened another way (OpenID Connect), with its event.
    pub(crate) async fn insert_session(
        &self,
        session: &Session,
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        let mut transaction = self.writer.begin().await?;
        insert_session::<DB>(&mut *transaction, session).await?;
        write_events::<DB>(&mut *transaction, std::slice::from_ref(event)).await?;
        transaction.commit().await?;
        Ok(())
    }

    pub(crate) async fn session(&self, digest: &WebDigest) -> Result<Option<Session>, StoreError> {
        let sql = format!(
            "SELECT digest, identity_id, method, created, last_seen FROM web_sessions \
             WHERE digest = {}",
            DB::param(1)
        );
        sqlx::query::<DB>(&sql)
            .bind(digest.as_str())
            .fetch_optional(self.reader)
            .await?
            .map(|row| session_from_row(&row))
            .transpose()
    }

    /// Records a use of the session at `at`; never moves it back.
    pub(crate) async fn touch_session(
        &self,
        digest: &WebDigest,
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let [seen, digest_param, before] = [DB::param(1), DB::param(2), DB::param(3)];
        let sql = format!(
            "UPDATE web_sessions SET last_seen = {seen} \
             WHERE digest = {digest_param} AND last_seen < {before}"
        );
        sqlx::query::<DB>(&sql)
            .bind(millis(at))
            .bind(digest.as_str())
            .bind(millis(at))
            .execute(self.writer)
            .await?;
        Ok(())
    }

    /// Ends a session (sign-out) with its event; false if it was not there.
    pub(crate) async fn delete_session(
        &self,
        digest: &WebDigest,
        event: &AuditEvent,
    ) -> Result<bool, StoreError> {
        let mut transaction = self.writer.begin().await?;
        let sql = format!("DELETE FROM web_sessions WHERE digest = {}", DB::param(1));
        let done = sqlx::query::<DB>(&sql)
            .bind(digest.as_str())
            .execute(&mut *transaction)
            .await?;
        let deleted = DB::rows_affected(&done) > 0;
        if deleted {
            write_events::<DB>(&mut *transaction, std::slice::from_ref(event)).await?;
        }
        transaction.commit().await?;
        Ok(deleted)
    }

    /// Forgets what can no longer sign anyone in: sessions last used or begun before
    /// `sessions_before`, links expired before `links_before`, logins begun before
    /// `logins_before`.
    pub(crate) async fn prune_web(
        &self,
        sessions_idle_before: OffsetDateTime,
        sessions_begun_before: OffsetDateTime,
        links_before: OffsetDateTime,
        logins_before: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        let mut pruned = 0;
        let [idle, begun] = [DB::param(1), DB::param(2)];
        let sessions =
            format!("DELETE FROM web_sessions WHERE last_seen < {idle} OR created < {begun}");
        let done = sqlx::query::<DB>(&sessions)
            .bind(millis(sessions_idle_before))
            .bind(millis(sessions_begun_before))
            .execute(self.writer)
            .await?;
        pruned += DB::rows_affected(&done);
        for (table, column, before) in [
            ("web_sign_in_links", "expires_at", links_before),
            ("web_oidc_logins", "created", logins_before),
        ] {
            let sql = format!("DELETE FROM {table} WHERE {column} < {}", DB::param(1));
            let done = sqlx::query::<DB>(&sql)
                .bind(millis(before))
                .execute(self.writer)
                .await?;
            pruned += DB::rows_affected(&done);
        }
        Ok(pruned)
    }

    pub(crate) async fn insert_oidc_login(&self, login: &OidcLogin) -> Result<(), StoreError> {
        let p: Vec<String> = (1..=5).map(DB::param).collect();
        let sql = format!(
            "INSERT INTO web_oidc_logins (state_digest, nonce, pkce_verifier, return_to, created) \
             VALUES ({}, {}, {}, {}, {})",
            p[0], p[1], p[2], p[3], p[4]
        );
        sqlx::query::<DB>(&sql)
            .bind(login.state_digest.as_str())
            .bind(login.nonce.as_str())
            .bind(login.pkce_verifier.as_str())
            .bind(login.return_to.as_deref())
            .bind(millis(login.created))
            .execute(self.writer)
            .await?;
        Ok(())
    }

    /// Takes the login whose state has this digest: it is deleted as it is read, so a callback
    /// is answered once.
    pub(crate) async fn take_oidc_login(
        &self,
        state_digest: &WebDigest,
    ) -> Result<Option<OidcLogin>, StoreError> {
        let sql = format!(
            "DELETE FROM web_oidc_logins WHERE state_digest = {} \
             RETURNING state_digest, nonce, pkce_verifier, return_to, created",
            DB::param(1)
        );
        let row = sqlx::query::<DB>(&sql)
            .bind(state_digest.as_str())
            .fetch_optional(self.writer)
            .await?;
        row.map(|row| {
            Ok(OidcLogin {
                state_digest: WebDigest::from_stored(row.text("state_digest")?),
                nonce: row.text("nonce")?,
                pkce_verifier: row.text("pkce_verifier")?,
                return_to: row.opt_text("return_to")?,
                created: from_millis(row.int("created")?, "created")?,
            })
        })
        .transpose()
    }
}
