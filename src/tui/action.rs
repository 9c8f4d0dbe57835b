//! Everything a key can ask of the dashboard. Keys become one of these before
//! anything acts on them; the names are the ones a `keys.toml` uses.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Approve,
    Reject,
    Feedback,
    Resolve,
    RetryPhase,
    Cancel,
    RaiseBudget,
    PauseResume,
    NextPane,
    PrevPane,
    Up,
    Down,
    PageUp,
    PageDown,
    Top,
    Bottom,
    Open,
    Back,
    Filter,
    Sort,
    SortReverse,
    CycleTheme,
    Help,
    Quit,
    Detach,
    Mark,
    CommandLine,
    Figures,
}

impl Action {
    /// In the order the help overlay lists them.
    pub const ALL: [Action; 28] = [
        Action::Approve,
        Action::Reject,
        Action::Feedback,
        Action::Resolve,
        Action::RetryPhase,
        Action::Cancel,
        Action::RaiseBudget,
        Action::PauseResume,
        Action::NextPane,
        Action::PrevPane,
        Action::Up,
        Action::Down,
        Action::PageUp,
        Action::PageDown,
        Action::Top,
        Action::Bottom,
        Action::Open,
        Action::Back,
        Action::Filter,
        Action::Sort,
        Action::SortReverse,
        Action::CycleTheme,
        Action::Help,
        Action::Quit,
        Action::Detach,
        Action::Mark,
        Action::CommandLine,
        Action::Figures,
    ];

    /// The name used in `keys.toml`.
    pub fn name(self) -> &'static str {
        match self {
            Action::Approve => "approve",
            Action::Reject => "reject",
            Action::Feedback => "feedback",
            Action::Resolve => "resolve",
            Action::RetryPhase => "retry_phase",
            Action::Cancel => "cancel",
            Action::RaiseBudget => "raise_budget",
            Action::PauseResume => "pause_resume",
            Action::NextPane => "next_pane",
            Action::PrevPane => "prev_pane",
            Action::Up => "up",
            Action::Down => "down",
            Action::PageUp => "page_up",
            Action::PageDown => "page_down",
            Action::Top => "top",
            Action::Bottom => "bottom",
            Action::Open => "open",
            Action::Back => "back",
            Action::Filter => "filter",
            Action::Sort => "sort",
            Action::SortReverse => "sort_reverse",
            Action::CycleTheme => "cycle_theme",
            Action::Help => "help",
            Action::Quit => "quit",
            Action::Detach => "detach",
            Action::Mark => "mark",
            Action::CommandLine => "command_line",
            Action::Figures => "figures",
        }
    }

    pub fn parse(name: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.name() == name)
    }

    /// One line for the help overlay.
    pub fn describe(self) -> &'static str {
        match self {
            Action::Approve => "approve the held phase",
            Action::Reject => "reject: fail the task (asks for a reason)",
            Action::Feedback => "send back: re-run the phase with feedback",
            Action::Resolve => "resolve a blocker: retry, skip or fail",
            Action::RetryPhase => "retry the phase now",
            Action::Cancel => "cancel the task (asks to confirm)",
            Action::RaiseBudget => "raise the task's budget, or the run's",
            Action::PauseResume => "pause or resume the run",
            Action::NextPane => "next pane",
            Action::PrevPane => "previous pane",
            Action::Up => "move up",
            Action::Down => "move down",
            Action::PageUp => "page up",
            Action::PageDown => "page down",
            Action::Top => "first row",
            Action::Bottom => "last row",
            Action::Open => "open the task's detail",
            Action::Back => "close, clear the filter, or go back",
            Action::Filter => "filter: state:failed phase:qa cost>0.1 /re/ !…",
            Action::Sort => "sort by the next column",
            Action::SortReverse => "reverse the sort",
            Action::CycleTheme => "next theme",
            Action::Help => "this help",
            Action::Quit => "quit (asks while work is running)",
            Action::Detach => "detach, leaving the run going",
            Action::Mark => "mark the row: a r R c then act on every marked row",
            Action::CommandLine => ":approve|reject|retry|cancel FILTER, over every match",
            Action::Figures => "figures per phase, agent, model; cost to finish",
        }
    }

    /// Acts on the selected task, so needs one.
    pub fn needs_task(self) -> bool {
        matches!(
            self,
            Action::Approve
                | Action::Reject
                | Action::Feedback
                | Action::Resolve
                | Action::RetryPhase
                | Action::Cancel
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_serde_and_parse_back() {
        for a in Action::ALL {
            let json = serde_json::to_string(&a).unwrap();
            assert_eq!(json, format!("\"{}\"", a.name()));
            assert_eq!(Action::parse(a.name()), Some(a));
        }
        assert_eq!(Action::parse("launch_missiles"), None);
    }
}
