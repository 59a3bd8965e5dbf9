//! Names: a PAT's name (unique per owner) and an identity's display name.

use crate::Rule;

/// The longest name, in characters, after trimming.
pub const MAX_NAME_CHARS: usize = 128;

/// A PAT name: trimmed, 1 to 128 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PatName(String);

impl PatName {
    pub fn parse(raw: &str) -> Result<PatName, Rule> {
        parse_name(raw).map(PatName)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An identity's name, shown as the owner's `name`; the same rules as a PAT name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdentityName(String);

impl IdentityName {
    pub fn parse(raw: &str) -> Result<IdentityName, Rule> {
        parse_name(raw).map(IdentityName)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn parse_name(raw: &str) -> Result<String, Rule> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(Rule::NameEmpty);
    }
    if trimmed.chars().count() > MAX_NAME_CHARS {
        return Err(Rule::NameTooLong {
            max: MAX_NAME_CHARS,
        });
    }
    if trimmed.chars().any(char::is_control) {
        return Err(Rule::NameControlCharacter);
    }
    Ok(trimmed.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_rules() {
        let check = |raw: &str, want: Result<&str, Rule>| {
            let got = PatName::parse(raw).map(|name| name.as_str().to_owned());
            assert_eq!(got, want.map(str::to_owned), "{raw:?}")
        };
        check("NodeJS Integration", Ok("NodeJS Integration"));
        check("  padded  ", Ok("padded"));
        check("", Err(Rule::NameEmpty));
        check("   ", Err(Rule::NameEmpty));
        check("tab\tinside", Err(Rule::NameControlCharacter));
        check(&"x".repeat(128), Ok(&"x".repeat(128)));
        check(&"x".repeat(129), Err(Rule::NameTooLong { max: 128 }));
        check(&"é".repeat(128), Ok(&"é".repeat(128)));
    }
}
