//! Property tests for the filter parser: printing a parsed filter and parsing it again gives the
//! same tree, and no input makes it panic.

use patd_core::filter::{Comparison, Filter, NameMatch, TimeField, TimeOp};
use proptest::prelude::*;
use time::OffsetDateTime;

fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9 _.-]{0,12}",
        // A string holding a control character is refused (no name holds one).
        any::<String>().prop_map(|text| text.chars().filter(|c| !c.is_control()).collect()),
        Just("quote \" and backslash \\".to_owned()),
    ]
}

fn any_time() -> impl Strategy<Value = OffsetDateTime> {
    // Years 1970 to 2200, with milliseconds.
    (0i64..7_258_118_400_000).prop_map(|millis| {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    })
}

fn any_comparison() -> impl Strategy<Value = Comparison> {
    let time_field = prop_oneof![
        Just(TimeField::Created),
        Just(TimeField::LastUsed),
        Just(TimeField::ExpirationDate)
    ];
    let nullable = prop_oneof![Just(TimeField::LastUsed), Just(TimeField::ExpirationDate)];
    let op = prop_oneof![
        Just(TimeOp::Gt),
        Just(TimeOp::Ge),
        Just(TimeOp::Lt),
        Just(TimeOp::Le)
    ];
    prop_oneof![
        (time_field, op, any_time()).prop_map(|(field, op, value)| Comparison::Time {
            field,
            op,
            value
        }),
        (nullable, any::<bool>())
            .prop_map(|(field, present)| Comparison::Presence { field, present }),
        any_text().prop_map(|v| Comparison::Name(NameMatch::Eq(v))),
        any_text().prop_map(|v| Comparison::Name(NameMatch::Contains(v))),
        any_text().prop_map(|v| Comparison::Name(NameMatch::StartsWith(v))),
        prop::collection::vec(any_text(), 1..4).prop_map(|v| Comparison::Name(NameMatch::In(v))),
        any::<bool>().prop_map(Comparison::Managed),
    ]
}

fn any_filter() -> impl Strategy<Value = Filter> {
    any_comparison()
        .prop_map(Filter::Compare)
        .prop_recursive(6, 48, 2, |inner| {
            prop_oneof![
                (inner.clone(), inner.clone())
                    .prop_map(|(a, b)| Filter::And(Box::new(a), Box::new(b))),
                (inner.clone(), inner.clone())
                    .prop_map(|(a, b)| Filter::Or(Box::new(a), Box::new(b))),
                inner.prop_map(|a| Filter::Not(Box::new(a))),
            ]
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn printing_and_parsing_again_gives_the_same_tree(filter in any_filter()) {
        let printed = filter.to_string();
        prop_assert_eq!(Filter::<Comparison>::parse(&printed), Ok(filter), "{}", printed);
    }

    #[test]
    fn random_input_never_panics(input in any::<String>()) {
        let _ = Filter::<Comparison>::parse(&input);
    }

    #[test]
    fn near_valid_input_never_panics(input in r#"(not |\(|\)|name |eq |in |and |or |"x" |, |lastUsed |le |2020-01-01T00:00:00Z |pr |managed |true ){0,20}"#) {
        if let Ok(filter) = Filter::<Comparison>::parse(&input) {
            // Whatever parses prints to something that parses to the same tree.
            prop_assert_eq!(Filter::<Comparison>::parse(&filter.to_string()), Ok(filter));
        }
    }
}
