//! `[roles]`: a role names the agents that can serve it, preferred first,
//! e.g. `reviewer = ["senior", "generalist"]`. A phase with `role = "reviewer"`
//! runs each attempt on the first of them with room.

use std::collections::BTreeMap;

use toml::de::DeValue;

use super::error::Diag;
use super::model::AgentSpec;
use super::raw::Table;
use super::suggest::did_you_mean;

const ROLE_HELP: &str = "list the agents that serve the role, preferred first, e.g. reviewer = [\"senior\", \"generalist\"]";

/// Every role by name with its agents; a role with problems (recorded) is
/// kept with the agents that are fine, so that phases naming it are not
/// reported as well.
pub(crate) fn read_roles(
    d: &mut Diag<'_>,
    root: &Table<'_, '_>,
    agents: &BTreeMap<String, Option<AgentSpec>>,
) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    let Some(roles) = root.table(d, "roles", "in [roles]".into()) else {
        return out;
    };
    for (key, value) in roles.inner.iter() {
        let role: &str = key.get_ref();
        let DeValue::Array(_) = value.get_ref() else {
            d.error(
                value.span(),
                format!("role \"{role}\" in [roles] must be an array of agent names"),
                ROLE_HELP,
            );
            out.insert(role.to_string(), Vec::new());
            continue;
        };
        let names = roles.strings(d, role).unwrap_or_default();
        if names.is_empty() {
            d.error(
                value.span(),
                format!("role \"{role}\" in [roles] lists no agents"),
                ROLE_HELP,
            );
        }
        let mut list: Vec<String> = Vec::new();
        for name in names {
            let n = *name.get_ref();
            if list.iter().any(|x| x == n) {
                d.error(
                    name.span(),
                    format!("agent \"{n}\" is listed twice for role \"{role}\""),
                    "list each agent once; the order is the preference",
                );
                continue;
            }
            if !agents.contains_key(n) {
                let known: Vec<&str> = agents.keys().map(String::as_str).collect();
                d.error(
                    name.span(),
                    format!("unknown agent \"{n}\" in role \"{role}\""),
                    format!(
                        "agents defined here are: {}{}",
                        known.join(", "),
                        did_you_mean(n, known.iter().copied())
                    ),
                );
                continue;
            }
            list.push(n.to_string());
        }
        out.insert(role.to_string(), list);
    }
    out
}
