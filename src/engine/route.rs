//! Which model an attempt runs on: the first of the agent's routing rules
//! whose condition holds for the task's input.

use serde_json::Value;

use super::event::RouteChoice;
use crate::spec::model::Route;

/// The model and the rule that chose it, or `None` when no rule applies (the
/// agent then uses its own model).
pub fn choose(routes: &[Route], input: &Value) -> Option<(String, RouteChoice)> {
    routes.iter().enumerate().find_map(|(index, r)| {
        r.when.as_ref().is_none_or(|c| c.eval(input)).then(|| {
            (
                r.model.clone(),
                RouteChoice {
                    index,
                    when: r.when_text.clone(),
                },
            )
        })
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::spec::model::Condition;

    fn route(when: Option<&str>, model: &str) -> Route {
        Route {
            when: when.map(|w| Condition::parse(w).unwrap()),
            when_text: when.map(str::to_string),
            model: model.into(),
        }
    }

    #[test]
    fn the_first_rule_that_holds_wins() {
        let routes = [
            route(Some("input.risk == 'high'"), "opus"),
            route(Some("input.pages > 10"), "sonnet"),
            route(None, "haiku"),
        ];
        let (m, c) = choose(&routes, &json!({"risk": "high", "pages": 50})).unwrap();
        assert_eq!((m.as_str(), c.index), ("opus", 0));
        assert_eq!(c.when.as_deref(), Some("input.risk == 'high'"));
        let (m, c) = choose(&routes, &json!({"pages": 50})).unwrap();
        assert_eq!((m.as_str(), c.index), ("sonnet", 1));
        let (m, c) = choose(&routes, &json!({})).unwrap();
        assert_eq!((m.as_str(), c.index, c.when), ("haiku", 2, None));
    }

    #[test]
    fn without_a_default_nothing_may_match() {
        let routes = [route(Some("input.risk == 'high'"), "opus")];
        assert!(choose(&routes, &json!({"risk": "low"})).is_none());
        assert!(choose(&[], &json!({})).is_none());
    }
}
