//! Fuzzing conditions (a phase's `when`, a route's): generated texts, well
//! formed or not, nested past the limit or long and flat, are parsed and,
//! when they parse, evaluated on generated task inputs. Each must end in a
//! result or an error at an offset inside the text; never a panic, an
//! abort or a hang. See `fuzz_support` for `BATON_FUZZ_CASES`.

mod fuzz_support;

use baton::spec::condition::Condition;
use fuzz_support::{Outcome, Watchdog, condition_text, fuzz};
use proptest::prelude::*;
use serde_json::Value;

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "[a-z ]{0,8}".prop_map(Value::from),
        Just(Value::from("high")),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map("[a-z_]{1,6}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

#[test]
fn generated_conditions_parse_or_fail_cleanly_and_evaluate() {
    let watchdog =
        Watchdog::new(
            |(text, inputs): (String, Vec<Value>)| match Condition::parse(&text) {
                Ok(c) => {
                    for input in &inputs {
                        let _ = c.eval(input);
                    }
                    Outcome::Accepted
                }
                Err(e) => {
                    assert!(e.offset <= text.len(), "offset {} past the text", e.offset);
                    assert!(!e.message.is_empty());
                    Outcome::Refused
                }
            },
        );
    let strategy = (condition_text(), prop::collection::vec(json_value(), 1..4));
    fuzz("fuzz conditions", 3000, strategy, watchdog);
}
