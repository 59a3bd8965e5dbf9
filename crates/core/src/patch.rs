//! RFC 6902 patches on a PAT. The operations run, all or nothing, on the PAT's patchable
//! document (the fields its family lets a client change), and the result must pass the same
//! rules as a create.

use crate::expiry::{Expiry, Family};
use crate::name::PatName;
use crate::pat::PatRecord;
use crate::scope::Scope;
use crate::{to_millis, Rule};
use patd_proto::timestamp::{self, DateTimeError};
use serde_json::{Map, Value};
use time::OffsetDateTime;

const NAME: &str = "name";
const SCOPE: &str = "scope";
const EXPIRATION_DATE: &str = "expirationDate";
const NEVER_EXPIRES: &str = "userAwareTokenNeverExpires";

/// At most this many operations in one patch (and in a bulk update's patch).
pub const MAX_OPERATIONS: usize = 100;
/// The most the patched document may weigh (JSON values plus string bytes) after any
/// operation. A valid PAT weighs about 13 KiB at most (50 scope entries of 256 characters), so
/// this leaves room for any real patch while bounding what `copy` and `add` can build.
const MAX_DOCUMENT_WEIGHT: usize = 64 * 1024;

impl Family {
    /// The top-level members a patch may touch in this family.
    pub fn patchable_paths(self) -> &'static [&'static str] {
        match self {
            Family::Classic => &[NAME, SCOPE],
            Family::NeverExpiresAware => &[NAME, SCOPE, EXPIRATION_DATE, NEVER_EXPIRES],
        }
    }
}

/// Applies `operations` (the request body) to `current` and returns the PAT as it would be
/// stored. Nothing is changed on error.
pub fn apply_patch(
    current: &PatRecord,
    family: Family,
    operations: &Value,
    now: OffsetDateTime,
) -> Result<PatRecord, Rule> {
    check_operation_count(operations)?;
    let patch: json_patch::Patch = serde_json::from_value(operations.clone())
        .map_err(|err| Rule::PatchSyntax(format!("the body is not a JSON Patch: {err}")))?;
    let touched = touched_members(operations, family)?;

    let mut document = patchable_document(current, family);
    apply_bounded(&mut document, &patch)?;

    let mut updated = current.clone();
    updated.name = match document.get(NAME) {
        Some(Value::String(raw)) => PatName::parse(raw)?,
        Some(Value::Null) | None => return Err(Rule::NameRequired),
        Some(_) => return Err(Rule::NameEmpty),
    };
    updated.scope = match document.get(SCOPE) {
        None | Some(Value::Null) => Scope::all(),
        Some(Value::Array(items)) => Scope::parse(Some(
            items
                .iter()
                .map(|item| {
                    item.as_str()
                        .map(str::to_owned)
                        .ok_or(Rule::ScopeNotStrings)
                })
                .collect::<Result<Vec<_>, _>>()?,
        ))?,
        Some(_) => return Err(Rule::ScopeNotStrings),
    };
    if family == Family::NeverExpiresAware {
        let acknowledged = match document.get(NEVER_EXPIRES) {
            None | Some(Value::Null) => false,
            Some(Value::Bool(flag)) => *flag,
            Some(_) => return Err(Rule::NeverExpiresNotBoolean),
        };
        let expiry = match document.get(EXPIRATION_DATE) {
            None | Some(Value::Null) => Expiry::Never,
            Some(Value::String(raw)) => timestamp::parse(raw)
                .map(|at| Expiry::At(to_millis(at)))
                .map_err(Rule::ExpirationNotADate)?,
            Some(_) => return Err(Rule::ExpirationNotADate(DateTimeError::Syntax)),
        };
        match expiry {
            Expiry::Never if !acknowledged => return Err(Rule::NeverExpiresNotAcknowledged),
            // Clearing a date is the risky change, so the acknowledgement must come with it.
            Expiry::Never
                if current.expiry != Expiry::Never && !touched.contains(&NEVER_EXPIRES) =>
            {
                return Err(Rule::NeverExpiresNotAcknowledged)
            }
            Expiry::At(at) if expiry != current.expiry && at <= to_millis(now) => {
                return Err(Rule::ExpirationNotInFuture)
            }
            _ => {}
        }
        updated.expiry = expiry;
        updated.never_expires_acknowledged = acknowledged;
    }
    Ok(updated)
}

/// Refuses a patch of more than [`MAX_OPERATIONS`] operations before any is read.
pub fn check_operation_count(operations: &Value) -> Result<(), Rule> {
    match operations.as_array() {
        Some(list) if list.len() > MAX_OPERATIONS => Err(Rule::TooManyOperations {
            max: MAX_OPERATIONS,
        }),
        _ => Ok(()),
    }
}

/// Runs the operations one at a time, so that no operation starts on a document that has
/// outgrown its bounds: `copy` and `move` may not write inside an array (each such copy could
/// double the array), `scope` may hold at most its documented number of entries, and the whole
/// document may not outweigh [`MAX_DOCUMENT_WEIGHT`]. With at most [`MAX_OPERATIONS`]
/// operations on a document this small, a patch costs microseconds whatever it asks for.
fn apply_bounded(document: &mut Value, patch: &json_patch::Patch) -> Result<(), Rule> {
    use json_patch::PatchOperation;
    for operation in &patch.0 {
        if let PatchOperation::Copy(json_patch::CopyOperation { path, .. })
        | PatchOperation::Move(json_patch::MoveOperation { path, .. }) = operation
        {
            if parent_is_array(document, path.as_str()) {
                return Err(Rule::PatchCopyIntoArray);
            }
        }
        json_patch::patch(document, std::slice::from_ref(operation))
            .map_err(|err| Rule::PatchFailed(err.to_string()))?;
        if let Some(Value::Array(entries)) = document.get(SCOPE) {
            if entries.len() > Scope::MAX_ENTRIES {
                return Err(Rule::ScopeTooMany {
                    max: Scope::MAX_ENTRIES,
                });
            }
        }
        if weight(document, MAX_DOCUMENT_WEIGHT).is_none() {
            return Err(Rule::PatchTooLarge);
        }
    }
    Ok(())
}

/// Whether the member `path` would be written into is an array.
fn parent_is_array(document: &Value, path: &str) -> bool {
    // A pointer's tokens escape `/` (as `~1`), so the last `/` ends the parent.
    match path.rsplit_once('/') {
        Some((parent, _)) => document.pointer(parent).is_some_and(Value::is_array),
        None => false,
    }
}

/// The weight of `value` (one per JSON value, plus every string's and key's bytes), or `None`
/// once it passes `budget`: the walk stops there, so it never costs more than the budget.
fn weight(value: &Value, budget: usize) -> Option<usize> {
    let mut total = 0usize;
    let mut pending = vec![value];
    while let Some(value) = pending.pop() {
        total += 1;
        match value {
            Value::String(text) => total += text.len(),
            Value::Array(items) => pending.extend(items),
            Value::Object(members) => {
                for (key, member) in members {
                    total += key.len();
                    pending.push(member);
                }
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
        if total > budget {
            return None;
        }
    }
    Some(total)
}

/// The document a patch runs against: only the family's patchable members.
fn patchable_document(pat: &PatRecord, family: Family) -> Value {
    let mut document = Map::new();
    document.insert(NAME.to_owned(), Value::String(pat.name.as_str().to_owned()));
    document.insert(
        SCOPE.to_owned(),
        Value::Array(
            pat.scope
                .entries()
                .iter()
                .cloned()
                .map(Value::String)
                .collect(),
        ),
    );
    if family == Family::NeverExpiresAware {
        let date = pat
            .expiry
            .date()
            // As the API prints it, so a `test` operation can compare with what a client saw.
            .map_or(Value::Null, |at| {
                Value::String(patd_proto::timestamp::format(at))
            });
        document.insert(EXPIRATION_DATE.to_owned(), date);
        document.insert(
            NEVER_EXPIRES.to_owned(),
            Value::Bool(pat.never_expires_acknowledged),
        );
    }
    Value::Object(document)
}

/// Checks every `path` and `from` against the family's patchable members and returns the
/// members touched.
fn touched_members(operations: &Value, family: Family) -> Result<Vec<&'static str>, Rule> {
    let allowed = family.patchable_paths();
    let mut touched = Vec::new();
    for operation in operations.as_array().into_iter().flatten() {
        for key in ["path", "from"] {
            let Some(pointer) = operation.get(key).and_then(Value::as_str) else {
                continue;
            };
            let first = pointer
                .strip_prefix('/')
                .map(|rest| rest.split('/').next().unwrap_or(rest));
            match first.and_then(|member| allowed.iter().find(|name| **name == member)) {
                Some(member) => touched.push(*member),
                None => return Err(Rule::PathNotPatchable(pointer.to_owned())),
            }
        }
    }
    Ok(touched)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{IdentityId, PatId};
    use crate::pat::Validity;
    use serde_json::json;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-01-01 00:00 UTC);

    fn pat(expiry: Expiry, acknowledged: bool) -> PatRecord {
        let mut rng = rand::rng();
        PatRecord {
            id: PatId::generate(&mut rng),
            owner_id: IdentityId::generate(&mut rng),
            name: PatName::parse("ci").unwrap(),
            scope: Scope::all(),
            validity: Validity::parse(None).unwrap(),
            expiry,
            never_expires_acknowledged: acknowledged,
            managed: false,
            created: NOW,
            last_used: None,
        }
    }

    fn check(
        family: Family,
        start: &PatRecord,
        ops: Value,
        want: Result<(&str, Vec<&str>, Expiry, bool), Rule>,
    ) {
        let got = apply_patch(start, family, &ops, NOW).map(|p| {
            (
                p.name.as_str().to_owned(),
                p.scope.entries().to_vec(),
                p.expiry,
                p.never_expires_acknowledged,
            )
        });
        let want = want.map(|(n, s, e, a)| {
            (
                n.to_owned(),
                s.into_iter().map(str::to_owned).collect(),
                e,
                a,
            )
        });
        assert_eq!(got, want, "{ops}");
    }

    #[test]
    fn classic_patches() {
        use Family::Classic;
        let dated = Expiry::At(datetime!(2026-06-01 00:00 UTC));
        let start = pat(dated, false);
        check(
            Classic,
            &start,
            json!([{"op": "replace", "path": "/name", "value": "new"}]),
            Ok(("new", vec!["sp:scopes:all"], dated, false)),
        );
        check(
            Classic,
            &start,
            json!([{"op": "add", "path": "/scope/-", "value": "demo:x"}]),
            Ok(("ci", vec!["sp:scopes:all", "demo:x"], dated, false)),
        );
        check(
            Classic,
            &start,
            json!([{"op": "replace", "path": "/scope", "value": ["sp:scopes:default"]}, {"op": "test", "path": "/name", "value": "ci"}]),
            Ok(("ci", vec!["sp:scopes:default"], dated, false)),
        );
        patch_failed(
            &start,
            Classic,
            json!([{"op": "replace", "path": "/name", "value": "a"}, {"op": "test", "path": "/name", "value": "b"}]),
        );
        check(
            Classic,
            &start,
            json!([{"op": "replace", "path": "/expirationDate", "value": null}]),
            Err(Rule::PathNotPatchable("/expirationDate".into())),
        );
        check(
            Classic,
            &start,
            json!([{"op": "replace", "path": "/id", "value": "x"}]),
            Err(Rule::PathNotPatchable("/id".into())),
        );
        check(
            Classic,
            &start,
            json!([{"op": "copy", "from": "/owner", "path": "/name"}]),
            Err(Rule::PathNotPatchable("/owner".into())),
        );
        check(
            Classic,
            &start,
            json!([{"op": "replace", "path": "", "value": {}}]),
            Err(Rule::PathNotPatchable(String::new())),
        );
        check(
            Classic,
            &start,
            json!([{"op": "replace", "path": "/scope", "value": []}]),
            Err(Rule::ScopeEmpty),
        );
        check(
            Classic,
            &start,
            json!([{"op": "replace", "path": "/scope", "value": [1]}]),
            Err(Rule::ScopeNotStrings),
        );
        check(
            Classic,
            &start,
            json!([{"op": "remove", "path": "/name"}]),
            Err(Rule::NameRequired),
        );
        check(
            Classic,
            &start,
            json!([{"op": "replace", "path": "/name", "value": "  "}]),
            Err(Rule::NameEmpty),
        );
        patch_failed(&start, Classic, json!({"op": "replace"}));
        patch_failed(
            &start,
            Classic,
            json!([{"op": "frobnicate", "path": "/name"}]),
        );
    }

    #[test]
    fn patches_are_bounded_before_each_operation() {
        let start = pat(Expiry::Never, true);
        let run = |ops: Value| apply_patch(&start, Family::Classic, &ops, NOW).map(|_| ());
        // The copy bomb: each operation would double the scope.
        let bomb = vec![json!({"op": "copy", "from": "/scope", "path": "/scope/-"}); 26];
        assert_eq!(run(Value::Array(bomb)), Err(Rule::PatchCopyIntoArray));
        let bomb = vec![json!({"op": "move", "from": "/name", "path": "/scope/0"}); 2];
        assert_eq!(run(Value::Array(bomb)), Err(Rule::PatchCopyIntoArray));
        // Doubling through objects instead of arrays stops at the weight bound.
        let mut nested = vec![
            json!({"op": "replace", "path": "/scope", "value": vec!["x".repeat(256); 50]}),
            json!({"op": "add", "path": "/name", "value": {}}),
        ];
        for step in 0..60 {
            nested.push(json!({"op": "copy", "from": "/scope", "path": format!("/name/{step}")}));
            nested.push(json!({"op": "copy", "from": "/name", "path": "/scope"}));
        }
        nested.truncate(MAX_OPERATIONS);
        assert_eq!(run(Value::Array(nested)), Err(Rule::PatchTooLarge));
        // One entry past the documented maximum is refused as it is added.
        let mut adds = vec![json!({"op": "replace", "path": "/scope", "value": vec!["a"; 50]})];
        adds.extend(vec![
            json!({"op": "add", "path": "/scope/-", "value": "b"});
            40
        ]);
        assert_eq!(run(Value::Array(adds)), Err(Rule::ScopeTooMany { max: 50 }));
        // More operations than allowed are refused before any runs.
        let many = vec![json!({"op": "test", "path": "/name", "value": "ci"}); MAX_OPERATIONS + 1];
        assert_eq!(
            run(Value::Array(many)),
            Err(Rule::TooManyOperations {
                max: MAX_OPERATIONS
            })
        );
        let enough = vec![json!({"op": "test", "path": "/name", "value": "ci"}); MAX_OPERATIONS];
        assert_eq!(run(Value::Array(enough)), Ok(()));
        // Copying a whole member onto a member is still allowed.
        assert_eq!(
            run(
                json!([{"op": "replace", "path": "/scope", "value": ["ci"]}, {"op": "copy", "from": "/scope", "path": "/scope"}])
            ),
            Ok(())
        );
    }

    fn patch_failed(start: &PatRecord, family: Family, ops: Value) -> Rule {
        let err = apply_patch(start, family, &ops, NOW).unwrap_err();
        assert!(
            matches!(err, Rule::PatchFailed(_) | Rule::PatchSyntax(_)),
            "{err:?}"
        );
        err
    }

    #[test]
    fn never_expires_aware_patches() {
        use Family::NeverExpiresAware as Aware;
        let dated = Expiry::At(datetime!(2026-06-01 00:00 UTC));
        let start = pat(dated, false);
        // A `test` compares with the date as the API prints it.
        check(
            Aware,
            &start,
            json!([{"op": "test", "path": "/expirationDate", "value": "2026-06-01T00:00:00.000Z"}, {"op": "replace", "path": "/name", "value": "tested"}]),
            Ok(("tested", vec!["sp:scopes:all"], dated, false)),
        );
        check(
            Aware,
            &start,
            json!([{"op": "replace", "path": "/expirationDate", "value": "2030-01-01T00:00:00.000Z"}]),
            Ok((
                "ci",
                vec!["sp:scopes:all"],
                Expiry::At(datetime!(2030-01-01 00:00 UTC)),
                false,
            )),
        );
        check(
            Aware,
            &start,
            json!([{"op": "replace", "path": "/expirationDate", "value": "2020-01-01T00:00:00.000Z"}]),
            Err(Rule::ExpirationNotInFuture),
        );
        check(
            Aware,
            &start,
            json!([{"op": "replace", "path": "/expirationDate", "value": "soon"}]),
            Err(Rule::ExpirationNotADate(DateTimeError::Syntax)),
        );
        // Any client form of a date-time, truncated to milliseconds.
        for (raw, want) in [
            (
                "2030-01-01T10:00:00.1234567",
                datetime!(2030-01-01 10:00:00.123 UTC),
            ),
            (
                "2030-01-01T10:00:00.1234567+01:00",
                datetime!(2030-01-01 09:00:00.123 UTC),
            ),
            ("2030-01-01T10:00:00", datetime!(2030-01-01 10:00 UTC)),
        ] {
            check(
                Aware,
                &start,
                json!([{"op": "replace", "path": "/expirationDate", "value": raw}]),
                Ok(("ci", vec!["sp:scopes:all"], Expiry::At(want), false)),
            );
        }
        check(
            Aware,
            &start,
            json!([{"op": "replace", "path": "/expirationDate", "value": "2030-01-01T10:00:00.1234567890"}]),
            Err(Rule::ExpirationNotADate(DateTimeError::TooManyDigits)),
        );
        check(
            Aware,
            &start,
            json!([{"op": "replace", "path": "/expirationDate", "value": 2030}]),
            Err(Rule::ExpirationNotADate(DateTimeError::Syntax)),
        );
        check(
            Aware,
            &start,
            json!([{"op": "replace", "path": "/expirationDate", "value": null}]),
            Err(Rule::NeverExpiresNotAcknowledged),
        );
        check(
            Aware,
            &start,
            json!([{"op": "remove", "path": "/expirationDate"}, {"op": "replace", "path": "/userAwareTokenNeverExpires", "value": true}]),
            Ok(("ci", vec!["sp:scopes:all"], Expiry::Never, true)),
        );
        check(
            Aware,
            &start,
            json!([{"op": "replace", "path": "/userAwareTokenNeverExpires", "value": "yes"}]),
            Err(Rule::NeverExpiresNotBoolean),
        );
        // Already acknowledged, the date cleared without saying so again: refused.
        let acknowledged = pat(dated, true);
        check(
            Aware,
            &acknowledged,
            json!([{"op": "replace", "path": "/expirationDate", "value": null}]),
            Err(Rule::NeverExpiresNotAcknowledged),
        );
        // A never-expiring PAT can be renamed without repeating the acknowledgement.
        let forever = pat(Expiry::Never, true);
        check(
            Aware,
            &forever,
            json!([{"op": "replace", "path": "/name", "value": "x"}]),
            Ok(("x", vec!["sp:scopes:all"], Expiry::Never, true)),
        );
        // An expired PAT can still be renamed: its unchanged date is not re-checked.
        let expired = pat(Expiry::At(datetime!(2025-01-01 00:00 UTC)), false);
        check(
            Aware,
            &expired,
            json!([{"op": "replace", "path": "/name", "value": "x"}]),
            Ok((
                "x",
                vec!["sp:scopes:all"],
                Expiry::At(datetime!(2025-01-01 00:00 UTC)),
                false,
            )),
        );
    }
}
