//! Switchable phases: `enabled = false` in the file, `--disable PHASE` and
//! `--only PHASE,…` on the command line. A disabled phase never runs; each
//! task records it as skipped with the reason. A plan in which an enabled
//! phase needs the output of a disabled one is refused.

use super::error::{Problem, SpecError};
use super::model::Pipeline;
use super::suggest::did_you_mean;

/// The reason recorded for `enabled = false`.
pub const IN_FILE: &str = "disabled in the pipeline file";
/// The reason recorded for `--disable`.
pub const BY_DISABLE: &str = "disabled by --disable";
/// The reason recorded for a phase `--only` leaves out.
pub const NOT_IN_ONLY: &str = "not in --only";

impl Pipeline {
    /// Switches phases off for this run: those in `disable`, and, when
    /// `only` is not empty, those not in it. Unknown names, and a plan in
    /// which an enabled phase needs a disabled phase's output, are errors.
    pub fn switch_off(&mut self, disable: &[String], only: &[String]) -> Result<(), SpecError> {
        let ids: Vec<&str> = self.phases.iter().map(|p| p.id.as_str()).collect();
        let mut unknown = Vec::new();
        for (flag, names) in [("--disable", disable), ("--only", only)] {
            for name in names.iter().filter(|n| !ids.contains(&n.as_str())) {
                unknown.push(Problem {
                    line: 0,
                    col: 0,
                    message: format!("unknown phase \"{name}\" in {flag}"),
                    help: Some(format!(
                        "phases here are: {}{}",
                        ids.join(", "),
                        did_you_mean(name, ids.iter().copied())
                    )),
                });
            }
        }
        if !unknown.is_empty() {
            return Err(self.error(unknown));
        }
        for phase in &mut self.phases {
            if phase.disabled.is_some() {
                continue;
            }
            if disable.contains(&phase.id) {
                phase.disabled = Some(BY_DISABLE.into());
            } else if !only.is_empty() && !only.contains(&phase.id) {
                phase.disabled = Some(NOT_IN_ONLY.into());
            }
        }
        self.check_switched_off()
    }

    /// Refuses a plan in which an enabled phase's agent reads
    /// `outputs.PHASE` of a disabled phase: one problem per place.
    pub fn check_switched_off(&self) -> Result<(), SpecError> {
        let mut problems = Vec::new();
        for phase in self.phases.iter().filter(|p| p.disabled.is_none()) {
            let agents: Vec<&str> = match &phase.role {
                Some(role) => self
                    .roles
                    .get(role)
                    .map(|a| a.iter().map(String::as_str).collect())
                    .unwrap_or_default(),
                None => vec![phase.agent.as_str()],
            };
            for u in self
                .output_uses
                .iter()
                .filter(|u| agents.contains(&u.agent.as_str()))
            {
                let Some(off) = self.phases.iter().find(|p| p.id == u.phase) else {
                    continue;
                };
                let Some(why) = &off.disabled else { continue };
                problems.push(Problem {
                    line: u.line,
                    col: u.col,
                    message: format!(
                        "phase \"{}\" needs `outputs.{}` (in the prompt of agent \"{}\"), but phase \"{}\" is {why}",
                        phase.id,
                        u.phase,
                        u.agent,
                        off.id
                    ),
                    help: Some(format!(
                        "enable \"{}\" ({}), or disable \"{}\" too ({})",
                        off.id,
                        how_to_enable(why),
                        phase.id,
                        how_to_disable(why, &phase.id)
                    )),
                });
            }
        }
        problems.sort_by_key(|p| (p.line, p.col));
        match problems.is_empty() {
            true => Ok(()),
            false => Err(self.error(problems)),
        }
    }

    /// Phases switched off, each with why.
    pub fn disabled_phases(&self) -> Vec<(&str, &str)> {
        self.phases
            .iter()
            .filter_map(|p| Some((p.id.as_str(), p.disabled.as_deref()?)))
            .collect()
    }

    fn error(&self, problems: Vec<Problem>) -> SpecError {
        SpecError {
            file: self.source.clone(),
            problems,
        }
    }
}

fn how_to_enable(why: &str) -> &'static str {
    match why {
        BY_DISABLE => "drop it from --disable",
        NOT_IN_ONLY => "add it to --only",
        _ => "remove `enabled = false` from it",
    }
}

fn how_to_disable(why: &str, id: &str) -> String {
    match why {
        BY_DISABLE => format!("--disable {id}"),
        NOT_IN_ONLY => "leave it out of --only".into(),
        _ => "enabled = false".into(),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::spec::parse;

    const FILE: &str = r#"name = "p"
[agents.a]
kind = "sim"
[agents.w]
kind = "http"
provider = "openai"
model = "m"
api_key_env = "K"
prompt = "Write from {{outputs.draft}}"
[[phases]]
id = "draft"
agent = "a"
[[phases]]
id = "extra"
agent = "a"
[[phases]]
id = "write"
agent = "w"
"#;

    fn pipeline(text: &str) -> crate::spec::Pipeline {
        parse(text, Path::new("p.toml")).expect("valid")
    }

    #[test]
    fn enabled_false_records_the_reason_and_validate_refuses_a_needed_output() {
        let p = pipeline(&FILE.replace("id = \"extra\"", "id = \"extra\"\nenabled = false"));
        assert_eq!(
            p.disabled_phases(),
            vec![("extra", "disabled in the pipeline file")]
        );
        let bad = FILE.replace("id = \"draft\"", "id = \"draft\"\nenabled = false");
        let e = parse(&bad, Path::new("p.toml")).unwrap_err().to_string();
        assert!(
            e.contains("p.toml:9:22: error: phase \"write\" needs `outputs.draft`"),
            "{e}"
        );
        assert!(e.contains("disabled in the pipeline file"), "{e}");
        assert!(e.contains("or disable \"write\" too"), "{e}");
    }

    #[test]
    fn enabled_must_be_a_boolean() {
        let bad = FILE.replace("id = \"extra\"", "id = \"extra\"\nenabled = \"no\"");
        let e = parse(&bad, Path::new("p.toml")).unwrap_err().to_string();
        assert!(
            e.contains("`enabled` in phase \"extra\" must be true or false"),
            "{e}"
        );
    }

    #[test]
    fn disable_and_only_switch_phases_off_with_their_reasons() {
        let mut p = pipeline(FILE);
        p.switch_off(&["extra".into()], &[]).unwrap();
        assert_eq!(
            p.disabled_phases(),
            vec![("extra", "disabled by --disable")]
        );
        let mut p = pipeline(FILE);
        p.switch_off(&[], &["draft".into(), "write".into()])
            .unwrap();
        assert_eq!(p.disabled_phases(), vec![("extra", "not in --only")]);
    }

    #[test]
    fn disabling_a_needed_phase_is_refused_at_the_place_that_needs_it() {
        let mut p = pipeline(FILE);
        let e = p
            .switch_off(&["draft".into()], &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains(":9:22: error: phase \"write\" needs"), "{e}");
        assert!(e.contains("drop it from --disable"), "{e}");
        assert!(e.contains("--disable write"), "{e}");
        // Switching off the reader too makes the plan valid.
        let mut p = pipeline(FILE);
        p.switch_off(&["draft".into(), "write".into()], &[])
            .unwrap();
    }

    #[test]
    fn unknown_names_list_the_phases() {
        let mut p = pipeline(FILE);
        let e = p
            .switch_off(&[], &["drafts".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown phase \"drafts\" in --only"), "{e}");
        assert!(e.contains("phases here are: draft, extra, write"), "{e}");
    }
}
