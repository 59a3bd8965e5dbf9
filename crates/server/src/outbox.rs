//! Delivers the outbox (EXTENSIONS E7, E8, E11): webhook calls signed the Standard Webhooks
//! way, owners' mail and pushed Shared Signals SETs (`ssf::push`), each leased by one node at a time, in order per webhook, retried with backoff
//! and jitter for a day and then marked failed. Webhook targets inside the network are refused
//! where they resolve, unless `--webhook-allow-private`.

use crate::state::AppState;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use patd_core::notify::{is_private_address, next_attempt, WebhookUrl};
use patd_store::{Delivery, DeliveryOutcome};
use sha2::Sha256;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;

/// How long a receiver has to answer.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a node holds a delivery it attempts: past the attempt's own bound, so that a node
/// that died mid-attempt frees it soon.
const LEASE: Duration = Duration::from_secs(30);

/// Deliveries looked at per round.
const BATCH: i64 = 32;

/// The Standard Webhooks signature of `body`: `v1,` and the base64 HMAC-SHA256, keyed by the
/// bytes after `whsec_`, over `id.timestamp.body`.
pub fn signature(secret: &str, message_id: &str, timestamp: i64, body: &str) -> Option<String> {
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.strip_prefix("whsec_")?)
        .ok()?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).ok()?;
    mac.update(format!("{message_id}.{timestamp}.{body}").as_bytes());
    Some(format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    ))
}

/// A new webhook secret: `whsec_` and the base64 of 32 bytes from the CSPRNG.
pub fn new_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

/// Resolves a webhook's host and keeps only addresses it may call: a name that points inside
/// the network (at creation or, later, by DNS) is refused where it is resolved.
struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0))
                .await?
                .filter(|address| !is_private_address(address.ip()))
                .collect();
            if found.is_empty() {
                return Err("the host resolves to no public address".into());
            }
            let addresses: reqwest::dns::Addrs = Box::new(found.into_iter());
            Ok(addresses)
        })
    }
}

fn http_client(allow_private: bool) -> reqwest::Client {
    let builder = reqwest::Client::builder()
        .timeout(ATTEMPT_TIMEOUT)
        // A redirect could lead anywhere, inside the network included.
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("patd/", env!("CARGO_PKG_VERSION")));
    let builder = if allow_private {
        builder
    } else {
        builder.dns_resolver(Arc::new(PublicOnly))
    };
    builder.build().unwrap_or_else(|err| {
        tracing::error!(error = %err, "the webhook client could not be built; using the default");
        reqwest::Client::new()
    })
}

/// What sends owners' mail: the SMTP transport of `--smtp-url` and the From address.
#[derive(Clone)]
struct Mailer {
    transport: lettre::AsyncSmtpTransport<lettre::Tokio1Executor>,
    from: lettre::message::Mailbox,
}

impl Mailer {
    fn new(config: &crate::state::MailConfig) -> anyhow::Result<Mailer> {
        use anyhow::Context as _;
        let redacted = patd_store::redact_url(&config.smtp_url);
        let mut builder =
            lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::from_url(&config.smtp_url)
                .with_context(|| format!("--smtp-url {redacted} is not an SMTP URL"))?;
        if let Some(password) = &config.password {
            let user = reqwest::Url::parse(&config.smtp_url)
                .map(|url| url.username().to_owned())
                .unwrap_or_default();
            builder = builder.credentials(
                lettre::transport::smtp::authentication::Credentials::new(user, password.clone()),
            );
        }
        let from = config
            .from
            .parse()
            .with_context(|| "--mail-from is not a mail address".to_owned())?;
        Ok(Mailer {
            transport: builder.timeout(Some(ATTEMPT_TIMEOUT)).build(),
            from,
        })
    }

    /// Sends the mail of one delivery; a refusal the server calls permanent is not retried.
    async fn send(&self, delivery: &Delivery) -> Result<(), (bool, String)> {
        use lettre::AsyncTransport as _;
        let kind = patd_core::audit::EventType::parse(&delivery.event_type)
            .ok_or((true, "an unknown event type".to_owned()))?;
        let payload: serde_json::Value = serde_json::from_str(&delivery.payload)
            .map_err(|_| (true, "an unreadable payload".to_owned()))?;
        let mail = patd_core::notify::mail(kind, &payload);
        let to: lettre::message::Mailbox = delivery
            .recipient
            .as_deref()
            .unwrap_or_default()
            .parse()
            .map_err(|_| (true, "the owner's address is not a mail address".to_owned()))?;
        let message = lettre::Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(mail.subject)
            .multipart(lettre::message::MultiPart::alternative_plain_html(
                mail.text, mail.html,
            ))
            .map_err(|err| (true, format!("the mail could not be built: {err}")))?;
        self.transport
            .send(message)
            .await
            .map(drop)
            .map_err(|err| (err.is_permanent(), format!("the SMTP server: {err}")))
    }
}

/// Runs the deliveries of this node for as long as the process does. Fails at once if the
/// mail settings cannot be used.
pub(crate) fn deliver_forever(state: AppState) -> anyhow::Result<()> {
    let mailer = state.config.mail.as_ref().map(Mailer::new).transpose()?;
    tokio::spawn(async move {
        let http = http_client(state.config.webhook_allow_private);
        loop {
            deliver_due(&state, &http, mailer.as_ref()).await;
            tokio::time::sleep(state.config.outbox_poll).await;
        }
    });
    Ok(())
}

/// One round: leases what is due and attempts each in its own task, so that a slow receiver
/// holds up no other webhook. A node without mail settings leaves mail to the nodes that have.
async fn deliver_due(state: &AppState, http: &reqwest::Client, mailer: Option<&Mailer>) {
    let now = OffsetDateTime::now_utc();
    let channels: &[&str] = if mailer.is_some() {
        &["webhook", patd_core::ssf::CHANNEL_PUSH, "email"]
    } else {
        &["webhook", patd_core::ssf::CHANNEL_PUSH]
    };
    let due = match state.store.due_deliveries(now, channels, BATCH).await {
        Ok(due) => due,
        Err(err) => {
            tracing::warn!(error = %err, "could not read the outbox");
            return;
        }
    };
    crate::metrics::outbox_depth(due.len());
    for delivery in due {
        let lease_until = now + LEASE;
        match state
            .store
            .claim_delivery(&delivery.id, now, lease_until)
            .await
        {
            Ok(true) => {
                let (state, http, mailer) = (state.clone(), http.clone(), mailer.cloned());
                tokio::spawn(
                    async move { attempt(&state, &http, mailer.as_ref(), delivery).await },
                );
            }
            Ok(false) => {}
            Err(err) => tracing::warn!(error = %err, "could not lease a delivery"),
        }
    }
}

async fn attempt(
    state: &AppState,
    http: &reqwest::Client,
    mailer: Option<&Mailer>,
    delivery: Delivery,
) {
    let result = match (delivery.channel.as_str(), mailer) {
        ("email", Some(mailer)) => match mailer.send(&delivery).await {
            Ok(()) => Ok(None),
            Err((true, error)) => {
                finish(
                    state,
                    &delivery,
                    DeliveryOutcome::Failed {
                        status: None,
                        error,
                    },
                )
                .await;
                return;
            }
            Err((false, error)) => Err((None, error)),
        },
        (patd_core::ssf::CHANNEL_PUSH, _) => {
            crate::ssf::push(state, http, &delivery).await.map(Some)
        }
        _ => call(state, http, &delivery).await.map(Some),
    };
    let outcome = match result {
        Ok(status) => DeliveryOutcome::Delivered { status },
        Err((status, error)) => {
            let now = OffsetDateTime::now_utc();
            // The attempt just made is counted in `attempts` already.
            let attempts = u32::try_from(delivery.attempts + 1).unwrap_or(u32::MAX);
            let base = time::Duration::try_from(state.config.outbox_retry_base)
                .unwrap_or(time::Duration::seconds(5));
            match next_attempt(delivery.created, attempts, now, base, rand::random()) {
                Some(next) => DeliveryOutcome::Retry {
                    next,
                    status,
                    error,
                },
                None => DeliveryOutcome::Failed { status, error },
            }
        }
    };
    finish(state, &delivery, outcome).await;
}

async fn finish(state: &AppState, delivery: &Delivery, outcome: DeliveryOutcome) {
    crate::metrics::delivery(match &outcome {
        DeliveryOutcome::Delivered { .. } => "delivered",
        DeliveryOutcome::Retry { .. } => "retry",
        DeliveryOutcome::Failed { .. } => "failed",
    });
    if let Err(err) = state
        .store
        .finish_delivery(&delivery.id, OffsetDateTime::now_utc(), &outcome)
        .await
    {
        // The lease runs out and the delivery is attempted again: at least once.
        tracing::warn!(error = %err, "could not record a delivery's outcome");
    }
}

/// Sends one webhook call: the status of a 2xx, or what went wrong.
async fn call(
    state: &AppState,
    http: &reqwest::Client,
    delivery: &Delivery,
) -> Result<u16, (Option<u16>, String)> {
    let failed = |error: &str| (None, error.to_owned());
    let Some(webhook_id) = &delivery.webhook_id else {
        return Err(failed("not a webhook delivery"));
    };
    let hook = match state.store.webhook(webhook_id).await {
        Ok(Some(hook)) => hook,
        Ok(None) => return Err(failed("the webhook was deleted")),
        Err(err) => return Err(failed(&format!("the database: {err}"))),
    };
    let allow_private = state.config.webhook_allow_private;
    if WebhookUrl::parse(hook.url.as_str(), allow_private).is_err() {
        return Err(failed("the webhook's URL is not allowed"));
    }
    let timestamp = OffsetDateTime::now_utc().unix_timestamp();
    let Some(signature) = signature(
        &hook.secret,
        &delivery.message_id,
        timestamp,
        &delivery.payload,
    ) else {
        return Err(failed("the webhook's secret is unreadable"));
    };
    let response = http
        .post(hook.url.as_str())
        .header("content-type", "application/json")
        .header("webhook-id", &delivery.message_id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(delivery.payload.clone())
        .send()
        .await
        .map_err(|err| (None, describe(&err)))?;
    let status = response.status();
    if status.is_success() {
        Ok(status.as_u16())
    } else {
        Err((
            Some(status.as_u16()),
            format!("the receiver answered {status}"),
        ))
    }
}

/// A transport failure in a few words, without the URL (it is the webhook's, already known).
pub(crate) fn describe(err: &reqwest::Error) -> String {
    if err.is_timeout() {
        format!("no answer within {} s", ATTEMPT_TIMEOUT.as_secs())
    } else if err.is_connect() {
        "could not connect".to_owned()
    } else {
        "the request failed".to_owned()
    }
}
