//! Integration tests: the real server on a random loopback port, spoken to over HTTP.
//! One test binary (see STYLE.md §6); each module is one area of the contract.

/// Who may do what: the authorization matrix.
mod authz;
/// The `patd` binary itself: bootstrap, `identity create`, `token create`, logs.
mod cli;
/// Concurrent writers.
mod concurrency;
/// Error bodies for unknown routes, bad methods and framework rejections.
mod errors;
/// `POST /oauth/token` and bearer-token checks.
mod exchange;
/// `spawn_app()` and one helper per route.
mod helpers;
/// Every route on every prefix, bodies checked field by field.
mod routes;
/// Where secrets must never appear.
mod secrets;
/// Every validation rule's 400.
mod validation;
