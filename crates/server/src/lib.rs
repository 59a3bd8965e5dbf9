//! patd's HTTP server: the axum router, extractors, the error contract and the signing keys.
//! Talks to the domain (`patd-core`) for every rule and to storage only through `patd-store`'s
//! `Store` trait; it holds no SQL and no business rule.

/// Whether an access token is live (bearer check and introspection), client authentication,
/// and the pruning of revoked tokens.
mod access;
/// Operations the `patd` command runs on the database directly: identities, tokens, bootstrap.
pub mod admin;
/// The audit trail: events stamped with their request, the log line of each committed one,
/// failed exchanges folded per minute, pruning.
pub mod audit;
/// The in-memory PAT records behind revocation checks and the exchange, and `lastUsed` marks.
pub mod cache;
/// The request in hand: tracking id, client address, user agent, authenticated client.
mod context;
/// Domain and store values turned into wire types.
pub mod convert;
/// `ApiError`: the one place that knows status codes and error bodies.
pub mod error;
/// Extractors: the bearer caller, JSON bodies, query strings and paths with our rejections.
mod extract;
/// The key-encryption key that seals the signing keys stored in the database.
pub mod kek;
/// Ed25519 signing keys: loading, generating, minting and verifying JWTs, the JWK set.
pub mod keys;
/// The background writer of `lastUsed`.
pub mod lastused;
/// The Prometheus series and the scrape.
pub mod metrics;
/// Per-request tracking ids, `X-Request-Id` and the request log.
mod middleware;
/// Expiry notices: `pat.expiring` and `pat.expired`, once each.
mod notices;
/// The OpenAPI 3.1 document: what the handlers' annotations do not say, and serving it.
pub mod openapi;
/// Delivering the outbox: signed webhook calls, retried.
pub mod outbox;
/// Trusted proxies and the client address they report.
pub mod proxies;
/// Rate limits per client and API version, and on failed exchanges per IP.
pub mod ratelimit;
/// The routes, one module per group.
mod routes;
/// The public keys that sign secret-scanning reports, and the check of a report's signature.
pub mod scanning_keys;
/// The accept loop: HTTP/1 connections, the header read timeout, graceful shutdown.
mod serve;
/// Use cases shared by the routes and the administration commands.
mod service;
/// Shared Signals: the SETs' key and JWK set, signing, and the RFC 8935 push.
pub mod ssf;
/// The state every handler sees.
pub mod state;
/// HTTPS: the certificate and key, reloaded on SIGHUP.
pub mod tls;
/// The web page under `/ui/`: sign-in, sessions, my tokens, the admin pages.
mod ui;

pub use routes::{metrics_router, route_table, router, RouteEntry};
pub use serve::{serve, ServeOptions};
pub use state::{AppState, OidcConfig, ServerConfig};
