//! Bulk update (CONTRACT §7): one patch applied to up to 25 PATs, all or nothing.

use crate::ids::PatId;
use crate::Rule;
use serde_json::Value;

/// At most this many ids in one bulk update.
pub const MAX_BULK_IDS: usize = 25;

/// A checked bulk request: the ids that name PATs, the ones that cannot, and the patch.
#[derive(Debug, Clone, PartialEq)]
pub struct BulkPlan {
    pub ids: Vec<PatId>,
    /// Ids that are not even shaped like one; reported with the unknown ones.
    pub malformed: Vec<String>,
}

/// Checks the ids and the patch's shape. Each PAT is then patched with
/// [`crate::patch::apply_patch`] in the never-expires-aware family.
pub fn plan(ids: &[String], operations: &Value) -> Result<BulkPlan, Rule> {
    if ids.is_empty() || ids.len() > MAX_BULK_IDS {
        return Err(Rule::Bulk(format!(
            "ids must hold 1 to {MAX_BULK_IDS} ids, not {}",
            ids.len()
        )));
    }
    let mut seen: Vec<&str> = Vec::with_capacity(ids.len());
    for id in ids {
        if id.trim().is_empty() {
            return Err(Rule::Bulk("ids must not be blank".to_owned()));
        }
        if seen.contains(&id.as_str()) {
            return Err(Rule::Bulk(format!("id '{id}' is given twice")));
        }
        seen.push(id);
    }
    crate::patch::check_operation_count(operations)?;
    let Some(list) = operations.as_array().filter(|list| !list.is_empty()) else {
        return Err(Rule::Bulk(
            "patch must hold at least one operation".to_owned(),
        ));
    };
    let mut clears_expiration = false;
    let mut acknowledges = false;
    for operation in list {
        let op = operation
            .get("op")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let path = operation
            .get("path")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let value = operation.get("value");
        match (path, op) {
            ("/expirationDate", "replace") if value.is_some_and(Value::is_null) => {
                clears_expiration = true
            }
            ("/expirationDate", "remove") => clears_expiration = true,
            ("/expirationDate", "replace") => {}
            ("/userAwareTokenNeverExpires", "replace" | "add") => {
                acknowledges |= value == Some(&Value::Bool(true));
            }
            ("/expirationDate" | "/userAwareTokenNeverExpires", other) => {
                return Err(Rule::Bulk(format!(
                    "operation '{other}' is not allowed on '{path}'"
                )))
            }
            (other, _) => return Err(Rule::PathNotPatchable(other.to_owned())),
        }
    }
    if clears_expiration && !acknowledges {
        return Err(Rule::NeverExpiresNotAcknowledged);
    }
    let (ids, malformed): (Vec<_>, Vec<_>) = ids.iter().partition(|id| PatId::parse(id).is_some());
    Ok(BulkPlan {
        ids: ids.iter().filter_map(|id| PatId::parse(id)).collect(),
        malformed: malformed.into_iter().cloned().collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ID: &str = "86f1dc6fe8f54414950454cbb11278fa";

    fn check(ids: &[&str], ops: Value, want: Result<usize, &str>) {
        let ids: Vec<String> = ids.iter().map(|s| (*s).to_owned()).collect();
        let got = plan(&ids, &ops)
            .map(|plan| plan.ids.len() + plan.malformed.len())
            .map_err(|rule| rule.to_string());
        match want {
            Ok(n) => assert_eq!(got, Ok(n), "{ops}"),
            Err(text) => assert!(
                got.as_ref().is_err_and(|e| e.contains(text)),
                "{ops}: {got:?}"
            ),
        }
    }

    #[test]
    fn bulk_rules() {
        let date =
            json!([{"op": "replace", "path": "/expirationDate", "value": "2030-01-01T00:00:00Z"}]);
        check(&[ID], date.clone(), Ok(1));
        check(&[ID, "bogus"], date.clone(), Ok(2));
        check(&[], date.clone(), Err("1 to 25 ids"));
        check(&vec![ID; 26], date.clone(), Err("1 to 25 ids, not 26"));
        check(&[ID, ID], date.clone(), Err("given twice"));
        check(&[" "], date.clone(), Err("blank"));
        check(&[ID], json!([]), Err("at least one operation"));
        check(
            &[ID],
            json!([{"op": "replace", "path": "/name", "value": "x"}]),
            Err("path '/name' is not patchable"),
        );
        check(
            &[ID],
            json!([{"op": "copy", "from": "/a", "path": "/expirationDate"}]),
            Err("operation 'copy' is not allowed"),
        );
        check(
            &[ID],
            json!([{"op": "remove", "path": "/expirationDate"}]),
            Err("userAwareTokenNeverExpires is true"),
        );
        check(
            &[ID],
            json!([{"op": "replace", "path": "/expirationDate", "value": null}]),
            Err("userAwareTokenNeverExpires is true"),
        );
        check(
            &[ID],
            json!([{"op": "replace", "path": "/expirationDate", "value": null}, {"op": "replace", "path": "/userAwareTokenNeverExpires", "value": true}]),
            Ok(1),
        );
    }
}
