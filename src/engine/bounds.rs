//! How much text an operator's command may carry: a note or feedback of
//! [`MAX_TEXT`] characters at most, a name (task, phase, user, address) of
//! [`MAX_NAME`]. More is refused with the figures, whoever sends it (the
//! CLI, a dashboard, a client of the control socket), before anything is
//! recorded.

use super::event::{Action, Actor, Command};
use super::handle::Refusal;

/// The most characters of a note, a reason or feedback.
pub const MAX_TEXT: usize = 10_000;

/// The most characters of a task id, a phase, a user name or an address.
pub const MAX_NAME: usize = 1_000;

/// Refuses a command carrying more text than is taken.
pub fn check(command: &Command) -> Result<(), Refusal> {
    match command {
        Command::Act {
            task,
            action,
            phase,
            note,
            by,
        } => {
            name("task id", task)?;
            if let Some(p) = phase {
                name("phase", p)?;
            }
            if let Some(n) = note {
                text("note", n)?;
            }
            if let Action::SendBack { feedback } = action {
                text("feedback", feedback)?;
            }
            actor(by)
        }
        Command::RaiseBudget { task, by, .. } => {
            if let Some(t) = task {
                name("task id", t)?;
            }
            actor(by)
        }
        Command::Pause { by } | Command::Resume { by } => actor(by),
        Command::Shutdown => Ok(()),
    }
}

fn actor(by: &Actor) -> Result<(), Refusal> {
    name("user name", &by.user.name)?;
    match &by.ssh_client {
        Some(addr) => name("SSH address", addr),
        None => Ok(()),
    }
}

fn name(what: &str, value: &str) -> Result<(), Refusal> {
    limit(what, value, MAX_NAME)
}

fn text(what: &str, value: &str) -> Result<(), Refusal> {
    limit(what, value, MAX_TEXT)
}

fn limit(what: &str, value: &str, max: usize) -> Result<(), Refusal> {
    // Counting stops past the limit: a huge value costs no more than that.
    let n = value.chars().take(max + 1).count();
    if n > max {
        return Err(Refusal(format!(
            "the {what} is longer than {max} characters ({} bytes); nothing was recorded: shorten it to at most {max}",
            value.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn act(note: Option<String>, action: Action, user: &str) -> Command {
        Command::Act {
            task: "t1".into(),
            action,
            phase: None,
            note,
            by: Actor {
                user: user.into(),
                ssh_client: None,
            },
        }
    }

    #[test]
    fn text_up_to_the_limit_is_taken_and_past_it_refused_with_the_figures() {
        let ok = act(Some("é".repeat(MAX_TEXT)), Action::Approve, "ann");
        assert_eq!(check(&ok), Ok(()));
        let long = act(Some("x".repeat(MAX_TEXT + 1)), Action::Approve, "ann");
        let why = check(&long).unwrap_err().0;
        assert!(
            why.contains("the note is longer than 10000 characters (10001 bytes)"),
            "{why}"
        );
        let feedback = Action::SendBack {
            feedback: "y".repeat(100_000),
        };
        let why = check(&act(None, feedback, "ann")).unwrap_err().0;
        assert!(why.contains("the feedback is longer than 10000"), "{why}");
        let why = check(&act(None, Action::Approve, &"m".repeat(100_000)))
            .unwrap_err()
            .0;
        assert!(why.contains("the user name is longer than 1000"), "{why}");
    }
}
