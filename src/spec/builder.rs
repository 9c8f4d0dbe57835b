//! A pipeline built in code. The builder writes the TOML a person would
//! and reads it with the same loader, so a built pipeline is checked
//! exactly like a file: unknown agents, cycles, bad durations and the rest
//! are the same errors, placed in the generated text (`<built pipeline>`),
//! whose `Display` quotes nothing but names the phase or agent at fault.

use std::path::{Path, PathBuf};

use toml::{Table, Value};

use super::error::SpecError;
use super::model::Pipeline;

/// Where a built pipeline says it comes from in messages.
pub const BUILT: &str = "<built pipeline>";

impl Pipeline {
    /// Reads and checks a pipeline file.
    ///
    /// ```no_run
    /// let p = baton::Pipeline::from_file("pipelines/demo.toml")?;
    /// assert_eq!(p.name, "demo-dev-squad");
    /// # Ok::<(), baton::SpecError>(())
    /// ```
    pub fn from_file(path: impl AsRef<Path>) -> Result<Pipeline, SpecError> {
        super::load(path.as_ref())
    }

    /// Starts a pipeline in code; see [`PipelineBuilder`].
    pub fn builder(name: impl Into<String>) -> PipelineBuilder {
        PipelineBuilder {
            name: name.into(),
            defaults: Table::new(),
            agents: Table::new(),
            phases: Vec::new(),
            base_dir: PathBuf::from("."),
        }
    }
}

/// A pipeline made in code: agents, phases, defaults.
///
/// ```
/// use baton::{PhaseBuilder, Pipeline};
///
/// let p = Pipeline::builder("tickets")
///     .rust_agent("planner")
///     .rust_agent("reviewer")
///     .concurrency(4)
///     .phase(PhaseBuilder::new("plan", "planner").timeout("30s"))
///     .phase(PhaseBuilder::new("review", "reviewer").send_back(["plan"], 2))
///     .build()
///     .expect("a valid pipeline");
/// assert_eq!(p.phases[1].after, [0]);
/// assert_eq!(p.phases[1].send_back.as_ref().unwrap().max_rounds, 2);
///
/// let wrong = Pipeline::builder("x")
///     .phase(PhaseBuilder::new("plan", "nobody"))
///     .build()
///     .unwrap_err();
/// assert!(wrong.to_string().contains("unknown agent \"nobody\""));
/// ```
#[derive(Debug, Clone)]
pub struct PipelineBuilder {
    name: String,
    defaults: Table,
    agents: Table,
    phases: Vec<PhaseBuilder>,
    base_dir: PathBuf,
}

impl PipelineBuilder {
    /// An agent that is a function of this program (`kind = "rust"`),
    /// registered with [`crate::agents::Agents`] when the engine opens.
    pub fn rust_agent(self, name: impl Into<String>) -> PipelineBuilder {
        let mut t = Table::new();
        t.insert("kind".into(), "rust".into());
        self.agent_table(name, t)
    }

    /// A Rust agent with a version, which you change when its function
    /// changes: a phase with a `cache_key` then runs again instead of
    /// reusing what the older function stored.
    pub fn rust_agent_version(
        self,
        name: impl Into<String>,
        version: impl Into<String>,
    ) -> PipelineBuilder {
        let mut t = Table::new();
        t.insert("kind".into(), "rust".into());
        t.insert("version".into(), Value::String(version.into()));
        self.agent_table(name, t)
    }

    /// An agent of any kind, as its `[agents.NAME]` table would be
    /// written: `kind = "sim"` with its rates, `kind = "command"` with
    /// its command, `max_parallel`, `rpm`, and so on.
    pub fn agent_table(mut self, name: impl Into<String>, table: Table) -> PipelineBuilder {
        self.agents.insert(name.into(), Value::Table(table));
        self
    }

    /// Tasks in flight at once.
    pub fn concurrency(mut self, n: u32) -> PipelineBuilder {
        self.defaults
            .insert("concurrency".into(), Value::Integer(i64::from(n)));
        self
    }

    /// Each attempt's timeout unless a phase sets its own, e.g. `"2m"`.
    pub fn timeout(mut self, duration: &str) -> PipelineBuilder {
        self.defaults
            .insert("timeout".into(), Value::String(duration.into()));
        self
    }

    /// Attempts per phase unless a phase sets its own.
    pub fn max_attempts(mut self, n: u32) -> PipelineBuilder {
        let mut retry = Table::new();
        retry.insert("max_attempts".into(), Value::Integer(i64::from(n)));
        retry.insert("initial_delay".into(), "200ms".into());
        self.defaults.insert("retry".into(), Value::Table(retry));
        self
    }

    /// Where relative paths (a command agent's `cwd`) are resolved.
    pub fn base_dir(mut self, dir: impl Into<PathBuf>) -> PipelineBuilder {
        self.base_dir = dir.into();
        self
    }

    /// The next phase; without `after`, it runs after the one added before.
    pub fn phase(mut self, phase: PhaseBuilder) -> PipelineBuilder {
        self.phases.push(phase);
        self
    }

    /// The pipeline as a TOML file would say it.
    pub fn to_toml(&self) -> String {
        let mut root = Table::new();
        root.insert("name".into(), Value::String(self.name.clone()));
        if !self.defaults.is_empty() {
            root.insert("defaults".into(), Value::Table(self.defaults.clone()));
        }
        if !self.agents.is_empty() {
            root.insert("agents".into(), Value::Table(self.agents.clone()));
        }
        let phases = self
            .phases
            .iter()
            .map(|p| Value::Table(p.table.clone()))
            .collect();
        root.insert("phases".into(), Value::Array(phases));
        toml::to_string(&root).unwrap_or_default()
    }

    /// Checks the pipeline as `baton validate` would and returns it.
    pub fn build(self) -> Result<Pipeline, SpecError> {
        let text = self.to_toml();
        super::parse(&text, &self.base_dir.join(BUILT))
    }
}

/// One phase of a [`PipelineBuilder`].
#[derive(Debug, Clone)]
pub struct PhaseBuilder {
    table: Table,
}

impl PhaseBuilder {
    /// Phase `id`, run by agent `agent`.
    pub fn new(id: impl Into<String>, agent: impl Into<String>) -> PhaseBuilder {
        let mut table = Table::new();
        table.insert("id".into(), Value::String(id.into()));
        table.insert("agent".into(), Value::String(agent.into()));
        PhaseBuilder { table }
    }

    fn set(mut self, key: &str, value: Value) -> PhaseBuilder {
        self.table.insert(key.into(), value);
        self
    }

    fn strings<I, S>(items: I) -> Value
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Value::Array(items.into_iter().map(|s| Value::String(s.into())).collect())
    }

    /// The phases it waits for; `after([] as [&str; 0])` for none.
    pub fn after<I, S>(self, phases: I) -> PhaseBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.set("after", Self::strings(phases))
    }

    /// A condition on the input, e.g. `"input.risk == 'high'"`; the phase
    /// is skipped when it does not hold.
    pub fn when(self, condition: &str) -> PhaseBuilder {
        self.set("when", Value::String(condition.into()))
    }

    /// A person approves every output before the task goes on.
    pub fn review_always(self) -> PhaseBuilder {
        self.set("review", "always".into())
    }

    /// `"stop"`, `"continue"` or `"review"`.
    pub fn on_failure(self, what: &str) -> PhaseBuilder {
        self.set("on_failure", Value::String(what.into()))
    }

    /// Top-level fields the output must have.
    pub fn required_output<I, S>(self, fields: I) -> PhaseBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.set("required_output", Self::strings(fields))
    }

    /// This phase's attempts time out after `duration`, e.g. `"30s"`.
    pub fn timeout(self, duration: &str) -> PhaseBuilder {
        self.set("timeout", Value::String(duration.into()))
    }

    /// A reviewer loop: the agent may send the task back to these phases,
    /// at most `max_rounds` times before a person decides.
    pub fn send_back<I, S>(self, to: I, max_rounds: u32) -> PhaseBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut t = Table::new();
        t.insert("to".into(), Self::strings(to));
        t.insert("max_rounds".into(), Value::Integer(i64::from(max_rounds)));
        self.set("send_back", Value::Table(t))
    }

    /// Switched off: each task records it as skipped.
    pub fn disabled(self) -> PhaseBuilder {
        self.set("enabled", Value::Boolean(false))
    }

    /// Shares the phase's output between tasks with the same key, in this
    /// run and later ones (see the README's step cache): `template` as
    /// `cache_key` takes it, e.g. `"{{input.region}}"`.
    pub fn cache_key(self, template: &str) -> PhaseBuilder {
        self.set("cache_key", Value::String(template.into()))
    }

    /// Any other key of a `[[phases]]` table, as the file would write it.
    pub fn key(self, key: &str, value: Value) -> PhaseBuilder {
        self.set(key, value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_built_pipeline_is_checked_like_a_file() {
        let p = Pipeline::builder("b")
            .rust_agent("a")
            .phase(PhaseBuilder::new("one", "a"))
            .phase(PhaseBuilder::new("two", "a").when("input.risk == 'high'"))
            .build()
            .unwrap();
        assert_eq!(p.phases.len(), 2);
        assert!(p.phases[1].when_condition.is_some());
        let e = Pipeline::builder("b")
            .rust_agent("a")
            .phase(PhaseBuilder::new("one", "a").after(["two"]))
            .phase(PhaseBuilder::new("two", "a").after(["one"]))
            .build()
            .unwrap_err()
            .to_string();
        assert!(e.contains("cycle"), "{e}");
        let e = Pipeline::builder("b")
            .rust_agent("a")
            .phase(PhaseBuilder::new("one", "a").timeout("soon"))
            .build()
            .unwrap_err()
            .to_string();
        assert!(e.contains("timeout"), "{e}");
    }

    #[test]
    fn an_agent_of_another_kind_is_written_as_its_table() {
        let mut sim = Table::new();
        sim.insert("kind".into(), "sim".into());
        sim.insert("review_rate".into(), Value::Float(0.5));
        let p = Pipeline::builder("b")
            .agent_table("s", sim)
            .phase(PhaseBuilder::new("one", "s"))
            .build()
            .unwrap();
        assert!(matches!(
            p.agents["s"].kind,
            crate::spec::model::AgentKind::Sim(_)
        ));
    }
}
