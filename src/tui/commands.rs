//! What each `Action` does: moving about, opening prompts, and turning the
//! operator's decisions into engine `Command`s. The engine has the last word;
//! the checks here only pick the phase and save a round trip for the obvious.

use crate::engine::budget;
use crate::engine::event::{Action as Decide, Command, TaskId};
use crate::engine::state::{HoldKind, TaskState};

use super::view_model::Target;

use super::action::Action;
use super::line_edit::LineEdit;
use super::prompt::{ConfirmKind, Prompt, TextKind};
use super::ui::{Effect, Ui};
use super::view_state::{Pane, Popup};

/// Shown for `d` when the engine runs inside this dashboard's process.
pub const DETACH_UNAVAILABLE: &str = "this engine runs inside this process (its agents may be functions of it), so it cannot be left running: start it with `baton run` (without --in-process) to detach";

impl Ui {
    pub fn on_action(&mut self, action: Action) -> Effect {
        // With rows marked, a r R c act on all of them, after one question.
        if !self.state.marks.is_empty()
            && let Some(decide) = match action {
                Action::Approve => Some(Decide::Approve),
                Action::Reject => Some(Decide::Reject),
                Action::RetryPhase => Some(Decide::Retry),
                Action::Cancel => Some(Decide::Cancel),
                _ => None,
            }
        {
            let tasks: Vec<TaskId> = self.state.marks.iter().cloned().collect();
            self.state.popup = Some(Popup::Prompt(Prompt::Confirm(ConfirmKind::Bulk {
                action: decide,
                tasks,
                what: "marked".into(),
            })));
            return Effect::None;
        }
        if action.needs_task() {
            return self.task_action(action);
        }
        let focus = self.state.focus;
        match action {
            Action::Up => self.scroll(focus, -1),
            Action::Down => self.scroll(focus, 1),
            Action::PageUp => self.scroll(focus, -self.page_size()),
            Action::PageDown => self.scroll(focus, self.page_size()),
            Action::Top => self.scroll(focus, isize::MIN / 2),
            Action::Bottom => self.scroll(focus, isize::MAX / 2),
            Action::NextPane => self.state.focus = focus.next(),
            Action::PrevPane => self.state.focus = focus.prev(),
            Action::Open
                if matches!(focus, Pane::Tasks | Pane::Review) && self.state.selected.is_some() =>
            {
                self.state.focus = Pane::Detail;
            }
            Action::Back if !self.state.marks.is_empty() => {
                let n = self.state.marks.len();
                self.state.marks.clear();
                self.state.info(format!("{n} marks cleared"));
            }
            Action::Mark if matches!(focus, Pane::Tasks | Pane::Review) => {
                if let Some(id) = self.state.selected.clone()
                    && !self.state.marks.remove(&id)
                {
                    self.state.marks.insert(id);
                }
                // On to the next row, so that space space space marks a run of them.
                self.scroll(focus, 1);
            }
            Action::CommandLine => {
                self.state.command_edit = Some(LineEdit::new(""));
            }
            Action::Back => {
                if !self.state.filter.is_empty() {
                    self.state.filter.clear();
                } else if focus != Pane::Tasks {
                    self.state.focus = Pane::Tasks;
                }
            }
            Action::Filter => {
                let current = self.state.filter.clone();
                self.state.filter_edit = Some((LineEdit::new(&current), current));
            }
            Action::Sort => self.state.sort = self.state.sort.next_column(),
            Action::SortReverse => self.state.sort = self.state.sort.reversed(),
            Action::CycleTheme => {
                self.state.theme = (self.state.theme + 1) % self.themes.len();
                let name = self.theme().name.clone();
                self.state.info(format!("theme: {name}"));
            }
            Action::Help => self.state.popup = Some(Popup::Help { scroll: 0 }),
            Action::Figures => {
                self.state.info("reading the run's figures…");
                return Effect::Figures;
            }
            Action::Detach if self.state.link.remote => return Effect::Detach,
            Action::RaiseBudget => self.open_budget_prompt(),
            Action::Detach => self.state.error(DETACH_UNAVAILABLE),
            Action::PauseResume => {
                let by = self.actor.clone();
                let (command, label) = if self.view.paused {
                    (Command::Resume { by }, "resume")
                } else {
                    (Command::Pause { by }, "pause")
                };
                return Effect::Send {
                    command,
                    label: label.into(),
                };
            }
            Action::Quit => {
                let unfinished = self.view.unfinished();
                if unfinished == 0 || !self.state.link.quit_stops_engine {
                    return Effect::Quit;
                }
                self.state.popup = Some(Popup::Prompt(Prompt::Confirm(ConfirmKind::Quit {
                    unfinished,
                    can_detach: self.state.link.remote,
                })));
            }
            _ => {}
        }
        Effect::None
    }

    fn task_action(&mut self, action: Action) -> Effect {
        // The task read whole, or else its row in the table or the queue:
        // enough to pick the hold, and a key pressed before the detail has
        // been read still acts.
        let Some(task) = self
            .state
            .selected
            .as_deref()
            .and_then(|id| self.view.target(id))
        else {
            self.state.error("select a task first");
            return Effect::None;
        };
        let task = &task;
        let id = task.id.clone();
        let hold = |kind: HoldKind| oldest_hold(task, kind);
        let prompt = match action {
            Action::Approve | Action::Reject | Action::Feedback => {
                let Some(phase) = hold(HoldKind::Review) else {
                    self.state.error(format!(
                        "{id} has nothing awaiting review (it is {})",
                        task.state
                    ));
                    return Effect::None;
                };
                match action {
                    Action::Approve => return self.act(id, Decide::Approve, Some(phase), None),
                    Action::Reject => Prompt::text(TextKind::Reject, id, Some(phase)),
                    _ => Prompt::text(TextKind::Feedback, id, Some(phase)),
                }
            }
            Action::Resolve => {
                let Some(h) = task.holds.iter().find(|h| h.kind == HoldKind::Blocked) else {
                    self.state
                        .error(format!("{id} is not blocked (it is {})", task.state));
                    return Effect::None;
                };
                Prompt::Resolve {
                    task: id,
                    phase: Some(h.phase.clone()),
                    reason: h.reason.clone(),
                    choice: 0,
                }
            }
            Action::RetryPhase => return self.act(id, Decide::Retry, None, None),
            Action::Cancel => {
                if task.state.is_final() {
                    self.state.error(format!("{id} is already {}", task.state));
                    return Effect::None;
                }
                let running = self
                    .view
                    .task(&id)
                    .is_some_and(|t| t.phases.iter().any(|p| p.running_attempt().is_some()));
                Prompt::Confirm(ConfirmKind::Cancel { task: id, running })
            }
            _ => return Effect::None,
        };
        self.state.popup = Some(Popup::Prompt(prompt));
        Effect::None
    }

    /// Asks for new limits: the selected task's (tab switches to the run's),
    /// or the run's when no task is selected.
    fn open_budget_prompt(&mut self) {
        if let Some(id) = &self.state.selected
            && self.view.task(id).is_none()
        {
            // Its limits and raises come with the task read whole: in a
            // moment, and the prompt opens then.
            self.state.waiting_for_task = Some(Action::RaiseBudget);
            return;
        }

        let task = self
            .state
            .selected
            .as_deref()
            .and_then(|id| self.view.task(id))
            .filter(|t| !matches!(t.state, TaskState::Completed | TaskState::Cancelled));
        let (task, current) = match task {
            Some(t) => {
                let limits = self.view.budget.task_limits(t);
                let spent = budget::Spend::of_task(t);
                let flying = self.view.task_in_flight(&t.id);
                let mut now = budget::describe(limits, spent, flying);
                if now.is_empty() {
                    now = "no limit".into();
                }
                (Some(t.id.clone()), format!("{} {now}", t.id))
            }
            None => (None, String::new()),
        };
        let run_now = budget::describe(
            self.view.budget.run_limits(),
            self.view.spend(),
            self.view.in_flight(),
        );
        let run_now = if run_now.is_empty() {
            "run: no limit".to_string()
        } else {
            format!("run {run_now}")
        };
        let current = if current.is_empty() {
            run_now
        } else {
            format!("{current}; {run_now}")
        };
        self.state.popup = Some(Popup::Prompt(Prompt::Budget {
            run: task.is_none(),
            task,
            current,
            edit: LineEdit::default(),
            complaint: None,
        }));
    }

    /// Raising a budget, as a command for the engine.
    pub fn raise_budget(
        &mut self,
        task: Option<TaskId>,
        usd: Option<f64>,
        tokens: Option<u64>,
    ) -> Effect {
        let label = match &task {
            Some(t) => format!("raise the budget of {t}"),
            None => "raise the run's budget".to_string(),
        };
        let command = Command::RaiseBudget {
            task,
            usd,
            tokens,
            by: self.actor.clone(),
        };
        self.state.info(format!("{label}…"));
        Effect::Send { command, label }
    }

    /// A decision on a task, as a command for the engine.
    pub fn act(
        &mut self,
        task: TaskId,
        action: Decide,
        phase: Option<String>,
        note: Option<String>,
    ) -> Effect {
        let label = format!("{} {task}", action.name());
        let command = Command::Act {
            task,
            action,
            phase,
            note,
            by: self.actor.clone(),
        };
        self.state.info(format!("{label}…"));
        Effect::Send { command, label }
    }
}

fn oldest_hold(task: &Target, kind: HoldKind) -> Option<String> {
    task.holds
        .iter()
        .find(|h| h.kind == kind)
        .map(|h| h.phase.clone())
}
