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
    if has_invisible(trimmed) {
        return Err(Rule::NameInvisibleCharacter);
    }
    if crate::secret::holds_secret(trimmed) {
        return Err(Rule::NameHoldsSecret);
    }
    Ok(trimmed.to_owned())
}

/// Whether `text` holds a character that hides or disguises a name: a format character (Cf:
/// zero-width spaces and joiners, U+FEFF, every bidi control such as U+202E), or a line or
/// paragraph separator (Zl, Zp), which breaks line-based logs. The zero-width joiner is allowed
/// between two emoji, where it joins them into one (👩‍💻).
fn has_invisible(text: &str) -> bool {
    use unicode_properties::{GeneralCategory, UnicodeEmoji, UnicodeGeneralCategory};
    const ZERO_WIDTH_JOINER: char = '\u{200D}';
    let is_emoji =
        |c: Option<char>| c.is_some_and(|c| !c.is_ascii() && c.is_emoji_char_or_emoji_component());
    let chars: Vec<char> = text.chars().collect();
    chars
        .iter()
        .enumerate()
        .any(|(at, &c)| match c.general_category() {
            GeneralCategory::LineSeparator | GeneralCategory::ParagraphSeparator => true,
            GeneralCategory::Format if c == ZERO_WIDTH_JOINER => {
                let before = at.checked_sub(1).map(|before| chars[before]);
                !(is_emoji(before) && is_emoji(chars.get(at + 1).copied()))
            }
            GeneralCategory::Format => true,
            _ => false,
        })
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

    #[test]
    fn names_cannot_hide_or_disguise() {
        for raw in [
            "\u{200B}",
            "a\u{200B}b",
            "admin\u{202E}nimda",
            "\u{FEFF}ci",
            "line\u{2028}break",
            "para\u{2029}graph",
            "\u{2066}isolate\u{2069}",
            "\u{200E}mark",
            "soft\u{00AD}hyphen",
            "a\u{200D}b",
            "\u{200D}",
        ] {
            assert_eq!(
                PatName::parse(raw),
                Err(Rule::NameInvisibleCharacter),
                "{raw:?}"
            );
            assert_eq!(
                IdentityName::parse(raw),
                Err(Rule::NameInvisibleCharacter),
                "{raw:?}"
            );
        }
        for raw in [
            "café",
            "名前",
            "deploy 🚀",
            "👩\u{200D}💻 dev",
            "👍🏽",
            "🇫🇷 prod",
            "❤\u{FE0F}",
            "مرحبا",
            "עברית",
        ] {
            assert_eq!(
                PatName::parse(raw).map(|name| name.as_str().to_owned()),
                Ok(raw.to_owned()),
                "{raw:?}"
            );
        }
    }
}
