//! What the operator is looking at: selection, sort, filter, focus, open
//! popup, scroll positions and theme. Only keys change it; engine events
//! change the `RunView`.

use crate::engine::event::TaskId;

use super::line_edit::LineEdit;
use super::prompt::Prompt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pane {
    #[default]
    Tasks,
    Detail,
    Review,
    Log,
}

impl Pane {
    pub const ALL: [Pane; 4] = [Pane::Tasks, Pane::Detail, Pane::Review, Pane::Log];

    pub fn title(self) -> &'static str {
        match self {
            Pane::Tasks => "Tasks",
            Pane::Detail => "Detail",
            Pane::Review => "Review",
            Pane::Log => "Log",
        }
    }

    fn step(self, by: isize) -> Pane {
        let i = Pane::ALL.iter().position(|p| *p == self).unwrap_or(0) as isize;
        let n = Pane::ALL.len() as isize;
        Pane::ALL[(i + by).rem_euclid(n) as usize]
    }

    pub fn next(self) -> Pane {
        self.step(1)
    }

    pub fn prev(self) -> Pane {
        self.step(-1)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SortColumn {
    /// Submission order.
    Submitted,
    /// Needing a person first, then trouble, then work, then done.
    State,
    Id,
    Phase,
    Progress,
    Attempts,
    Tokens,
    Cost,
    Elapsed,
}

impl SortColumn {
    /// The order `s` steps through.
    pub const CYCLE: [SortColumn; 9] = [
        SortColumn::Submitted,
        SortColumn::State,
        SortColumn::Id,
        SortColumn::Phase,
        SortColumn::Progress,
        SortColumn::Attempts,
        SortColumn::Tokens,
        SortColumn::Cost,
        SortColumn::Elapsed,
    ];

    pub fn name(self) -> &'static str {
        match self {
            SortColumn::Submitted => "submitted",
            SortColumn::State => "state",
            SortColumn::Id => "id",
            SortColumn::Phase => "phase",
            SortColumn::Progress => "progress",
            SortColumn::Attempts => "attempts",
            SortColumn::Tokens => "tokens",
            SortColumn::Cost => "cost",
            SortColumn::Elapsed => "elapsed",
        }
    }

    /// Numbers read best largest first; names and order, first first.
    pub fn default_descending(self) -> bool {
        matches!(
            self,
            SortColumn::Progress
                | SortColumn::Attempts
                | SortColumn::Tokens
                | SortColumn::Cost
                | SortColumn::Elapsed
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sort {
    pub column: SortColumn,
    pub descending: bool,
}

impl Default for Sort {
    fn default() -> Sort {
        Sort {
            column: SortColumn::Submitted,
            descending: false,
        }
    }
}

impl Sort {
    pub fn next_column(self) -> Sort {
        let i = SortColumn::CYCLE
            .iter()
            .position(|c| *c == self.column)
            .unwrap_or(0);
        let column = SortColumn::CYCLE[(i + 1) % SortColumn::CYCLE.len()];
        Sort {
            column,
            descending: column.default_descending(),
        }
    }

    pub fn reversed(self) -> Sort {
        Sort {
            descending: !self.descending,
            ..self
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Popup {
    Help {
        scroll: u16,
    },
    /// The figures view: the report's text, as `baton stats` prints it.
    Figures {
        text: String,
        scroll: u16,
    },
    Prompt(Prompt),
}

/// A line for the operator at the bottom of the screen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub text: String,
    pub error: bool,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct ViewState {
    pub focus: Pane,
    /// The task the detail shows and commands act on, kept by id so that it
    /// survives re-sorting and resyncs.
    pub selected: Option<TaskId>,
    pub sort: Sort,
    /// Tasks whose id, state or current phase contain it (any case).
    pub filter: String,
    /// The filter being typed, with the filter it replaces.
    pub filter_edit: Option<(LineEdit, String)>,
    pub popup: Option<Popup>,
    pub table_offset: usize,
    /// The selected row's place in the table (kept when its task moves away).
    pub table_cursor: usize,
    pub review_offset: usize,
    pub review_cursor: usize,
    pub detail_scroll: u16,
    /// The detail follows the selected task's held phase (set on selecting
    /// a task, cleared when the operator scrolls the detail).
    pub detail_anchor: bool,
    /// Index into the loaded themes.
    pub theme: usize,
    pub status: Option<Status>,
    /// Status messages not yet handed to the log pane, which keeps them whole.
    pub told: Vec<Status>,
    pub link: LinkView,
    /// The log pane: rows scrolled up from its newest line, its filter, and
    /// whether it shows baton's own log instead of the run's events.
    pub log_scroll: usize,
    pub log_filter: String,
    pub log_own: bool,
    /// Rows marked with space, for acting on all of them at once.
    pub marks: std::collections::BTreeSet<TaskId>,
    /// The `:` command line being typed.
    pub command_edit: Option<super::line_edit::LineEdit>,
    /// A key that needs the selected task read whole, done once it is.
    pub waiting_for_task: Option<super::action::Action>,
}

/// How this dashboard reaches its engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkView {
    /// The engine runs in another process, reached over its control socket:
    /// `d` detaches.
    pub remote: bool,
    /// The engine went away, and why; the dashboard is reconnecting.
    pub lost: Option<String>,
    /// Attached with `--read-only`: the engine refuses every command.
    pub read_only: bool,
    /// No engine serves the run: the dashboard shows the stored state.
    pub stopped: bool,
    /// `q` stops the engine (and so asks first while work is unfinished);
    /// otherwise it only closes this dashboard.
    pub quit_stops_engine: bool,
}

impl Default for LinkView {
    /// An engine in this process, which quitting stops.
    fn default() -> LinkView {
        LinkView {
            remote: false,
            lost: None,
            read_only: false,
            stopped: false,
            quit_stops_engine: true,
        }
    }
}

impl ViewState {
    pub fn info(&mut self, text: impl Into<String>) {
        let status = Status {
            text: text.into(),
            error: false,
        };
        self.told.push(status.clone());
        self.status = Some(status);
    }

    pub fn error(&mut self, text: impl Into<String>) {
        let status = Status {
            text: text.into(),
            error: true,
        };
        self.told.push(status.clone());
        self.status = Some(status);
    }

    /// Selects a task; a different one starts its detail at the top.
    pub fn select(&mut self, id: Option<&str>) {
        if self.selected.as_deref() != id {
            self.selected = id.map(str::to_string);
            self.detail_scroll = 0;
            self.detail_anchor = true;
            self.waiting_for_task = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panes_cycle_both_ways() {
        assert_eq!(Pane::Tasks.next(), Pane::Detail);
        assert_eq!(Pane::Log.next(), Pane::Tasks);
        assert_eq!(Pane::Tasks.prev(), Pane::Log);
    }

    #[test]
    fn sort_steps_through_columns_with_their_natural_direction() {
        let s = Sort::default();
        let s = s.next_column();
        assert_eq!((s.column, s.descending), (SortColumn::State, false));
        let s = (0..4).fold(s, |s, _| s.next_column());
        assert_eq!((s.column, s.descending), (SortColumn::Attempts, true));
        assert!(!s.reversed().descending);
        let back = (0..SortColumn::CYCLE.len()).fold(s, |s, _| s.next_column());
        assert_eq!(back, s);
    }
}
