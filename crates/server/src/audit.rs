//! The audit trail as the server sees it: who did what to which PAT, from where, logged at info
//! once the change is committed.

use patd_core::ids::IdentityId;

/// The info line of a committed change: its type, the acting identity, the PAT it acted through
/// and the target's id. Ids only: names are client input.
pub(crate) fn log_committed(event: &'static str, actor: &IdentityId, target_id: &str) {
    let via_pat =
        crate::context::with_request(|context| context.client_id.get().cloned()).flatten();
    let tracking_id = crate::context::with_request(|context| context.tracking_id.clone());
    tracing::info!(
        event,
        actor_id = actor.as_str(),
        via_pat,
        target_id,
        tracking_id,
        "{event}"
    );
}
