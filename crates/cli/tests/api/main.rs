//! Integration tests: the real server on a random loopback port, spoken to over HTTP.
//! One test binary (see STYLE.md §6); each module is one area of the contract.

/// The audit trail.
mod audit;
/// Who may do what: the authorization matrix.
mod authz;
/// Bulk update.
mod bulk;
/// The `patd` binary itself: bootstrap, `identity create`, `token create`, logs.
mod cli;
/// The Rust client crate.
mod client;
/// Concurrent writers.
mod concurrency;
/// Crash safety under SIGKILL.
mod crash;
/// Date-times as .NET, PowerShell and Python write them.
mod datetimes;
/// Error bodies for unknown routes, bad methods and framework rejections.
mod errors;
/// A narrowed token cannot mint or patch itself a wider PAT.
mod escalation;
/// `POST /oauth/token` and bearer-token checks.
mod exchange;
/// The filter grammar against known PATs.
mod filters;
/// Generated and mutated filters, patches and bulk updates: none answers 5xx.
mod fuzz;
/// `spawn_app()` and one helper per route.
mod helpers;
/// Hostile input: patch bombs, names that hide.
mod hostile;
/// For resource servers: RFC 9068 tokens, discovery, introspection, revocation by jti.
mod introspection;
/// Signing keys sealed at rest with the key-encryption key.
mod kek;
/// The `lastUsed` write rule.
mod lastused;
/// Leaked-secret reports (E9) and `POST /oauth/revoke`: signed reports, true and false positives.
mod leak;
/// The body cap, the header read and request timeouts, and the bounded graceful shutdown.
mod limits;
/// Owners' mail through a real SMTP server.
mod mail;
/// Many nodes on one PostgreSQL.
mod nodes;
/// OpenID Connect sign-in to the web page, against a provider of its own.
mod oidc;
/// The OpenAPI document against the router.
mod openapi;
/// Health, metrics, logs, TLS and trusted proxies (E3).
mod ops;
/// PostgreSQL cut and restored under a running node.
mod outage;
/// Paging and sorting.
mod paging;
/// Rate limits.
mod ratelimit;
/// Instant revocation.
mod revocation;
/// Rotation and the lifetime policy.
mod rotation;
/// Every route on every prefix, bodies checked field by field.
mod routes;
/// The command line as scripts use it: paging, pipes, tables, errors, keys, completions.
mod scripts;
/// Where secrets must never appear.
mod secrets;
/// The Shared Signals transmitter (E11): streams, SETs pushed and polled, verified with the JWKS.
mod ssf;
/// The SQLite file removed, replaced or made immutable under a running server.
mod storage;
/// Whole-tenant lists of many PATs against a reference, both ways a page is found.
mod tenant_lists;
/// Every validation rule's 400.
mod validation;
/// The web page: sign-in links, sessions, CSRF, the admin pages' rights.
mod web;
/// Webhooks and the outbox.
mod webhooks;
