//! Reviewer loops. A phase with `send_back` may end an attempt with
//! `SentBack { to, feedback }`; the task then goes round once more: `to`
//! and every settled phase after it run again (`LoopRound`), `to` with the
//! feedback. After `max_rounds` rounds the next send-back waits for a
//! person (`ReviewReason::RoundsSpent`), who may approve the reviewer's
//! verdict away, grant one more round with their own feedback, or reject.

use super::event::{EventKind, ReviewReason};
use super::state::PhaseState;
use super::task::Task;
use crate::agents::SendBackOffer;
use crate::spec::model::{PhaseSpec, Pipeline};

/// Why a reply's send-back is refused by the phase's `send_back`, if it is.
pub fn refusal(spec: &PhaseSpec, to: &str) -> Option<String> {
    match &spec.send_back {
        None => Some(format!(
            "the agent asked to send the task back to \"{to}\", but phase {} has no send_back; add send_back = {{ to = [\"{to}\"] }} to the phase to allow it",
            spec.id
        )),
        Some(s) if s.to.iter().any(|t| t == to) => None,
        Some(s) => Some(format!(
            "the agent asked to send the task back to \"{to}\", but phase {} may send back only to {}",
            spec.id,
            s.to.join(", ")
        )),
    }
}

/// What the agent of phase `idx` is told it may do with `send_back`.
pub fn offer(task: &Task, pipeline: &Pipeline, idx: usize) -> Option<SendBackOffer> {
    let s = pipeline.phases[idx].send_back.as_ref()?;
    Some(SendBackOffer {
        to: s.to.clone(),
        rounds: task.phases[idx].rounds,
        max_rounds: s.max_rounds,
    })
}

/// Phase `from` and every phase after it, directly or through others, in
/// pipeline order.
fn downstream(pipeline: &Pipeline, from: usize) -> Vec<usize> {
    let mut hit = vec![false; pipeline.phases.len()];
    hit[from] = true;
    // `after` points backwards, and a phase may wait for a later one in the
    // file: sweep until nothing changes (phases are few).
    loop {
        let mut changed = false;
        for (i, p) in pipeline.phases.iter().enumerate() {
            if !hit[i] && p.after.iter().any(|&a| hit[a]) {
                hit[i] = true;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    (0..hit.len()).filter(|&i| hit[i]).collect()
}

/// A reviewer's send-back waits to be carried out: no new phase may start
/// until it is (its round would reset it).
pub fn awaits_round(task: &Task) -> bool {
    task.phases.iter().any(|p| {
        p.state == PhaseState::Completed
            && !p.approved
            && p.sent_back().is_some()
            && !task.holds.iter().any(|h| h.phase == p.id)
    })
}

/// The event that carries out phase `idx`'s send-back: a round, or a hold
/// for a person once the rounds are spent. `None` while a phase the round
/// would reset still runs or is held: the round waits for it.
pub fn next(task: &Task, pipeline: &Pipeline, idx: usize) -> Option<EventKind> {
    let p = &task.phases[idx];
    let (to, agent_feedback) = p.sent_back()?;
    let to_idx = pipeline.phases.iter().position(|s| s.id == to)?;
    let after = downstream(pipeline, to_idx);
    let busy = after.iter().any(|&i| {
        let q = &task.phases[i];
        q.state == PhaseState::Running || task.holds.iter().any(|h| h.phase == q.id)
    });
    if busy {
        return None;
    }
    let max_rounds = pipeline.phases[idx]
        .send_back
        .as_ref()
        .map_or(0, |s| s.max_rounds);
    let (feedback, granted) = match &p.granted {
        Some(f) => (f.clone(), true),
        None if p.rounds < max_rounds => (agent_feedback.to_string(), false),
        None => {
            return Some(EventKind::ReviewRequested {
                phase: p.id.clone(),
                reason: ReviewReason::RoundsSpent {
                    to: to.to_string(),
                    feedback: agent_feedback.to_string(),
                    rounds: p.rounds,
                },
            });
        }
    };
    let reset = after
        .into_iter()
        // Skipped phases stay skipped: their reason (a condition on the
        // input, a switch, a person) still holds.
        .filter(|&i| {
            matches!(
                task.phases[i].state,
                PhaseState::Completed | PhaseState::Failed
            )
        })
        .map(|i| task.phases[i].id.clone())
        .collect();
    Some(EventKind::LoopRound {
        phase: p.id.clone(),
        to: to.to_string(),
        feedback,
        round: p.rounds.saturating_add(1),
        reset,
        granted,
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use jiff::Timestamp;
    use serde_json::json;

    use super::*;
    use crate::engine::advance::{follow_up, ready_phases};
    use crate::engine::event::{AttemptOutcome, Event};
    use crate::engine::state::TaskState;

    /// plan, then code and docs beside each other, then review of code.
    const DIAMOND: &str = "name = \"p\"\n[agents.a]\nkind = \"sim\"\n\
        [[phases]]\nid = \"plan\"\nagent = \"a\"\n\
        [[phases]]\nid = \"code\"\nagent = \"a\"\nafter = [\"plan\"]\n\
        [[phases]]\nid = \"docs\"\nagent = \"a\"\nafter = [\"plan\"]\n\
        [[phases]]\nid = \"review\"\nagent = \"a\"\nafter = [\"code\"]\nsend_back = { to = [\"plan\"], max_rounds = 1 }\n\
        [[phases]]\nid = \"ship\"\nagent = \"a\"\nafter = [\"review\", \"docs\"]\n";

    struct Run {
        pipeline: Pipeline,
        task: Task,
        seq: u64,
    }

    impl Run {
        fn new() -> Run {
            let pipeline = crate::spec::parse(DIAMOND, Path::new("p.toml")).expect("valid");
            let ids: Vec<String> = pipeline.phases.iter().map(|p| p.id.clone()).collect();
            let task = Task::new("t".into(), json!({}), &ids, Timestamp::UNIX_EPOCH, 1);
            Run {
                pipeline,
                task,
                seq: 1,
            }
        }

        fn apply(&mut self, kind: EventKind) {
            self.seq += 1;
            let ev = Event {
                seq: self.seq,
                at: Timestamp::from_second(1_700_000_000 + self.seq as i64).unwrap(),
                task: Some("t".into()),
                kind,
            };
            self.task.apply(&ev).unwrap_or_else(|e| panic!("{e}"));
        }

        /// Applies what the task's state calls for until nothing is.
        fn settle(&mut self) -> Vec<EventKind> {
            let mut out = Vec::new();
            while let Some(kind) = follow_up(&self.task, &self.pipeline) {
                out.push(kind.clone());
                self.apply(kind);
            }
            out
        }

        fn ready(&self) -> Vec<&str> {
            ready_phases(&self.task, &self.pipeline, Timestamp::MAX)
                .into_iter()
                .map(|i| self.pipeline.phases[i].id.as_str())
                .collect()
        }

        fn start(&mut self, phase: &str) {
            let attempt = self.attempts(phase) + 1;
            self.apply(EventKind::PhaseStarted {
                phase: phase.into(),
                attempt,
                agent: "a".into(),
                model: None,
                feedback: None,
                route: None,
                role: None,
            });
        }

        fn finish(&mut self, phase: &str, outcome: AttemptOutcome) {
            let attempt = self.attempts(phase);
            self.apply(EventKind::AttemptFinished {
                phase: phase.into(),
                attempt,
                duration_ms: 1,
                outcome,
                usage: None,
                cost_usd: None,
                output: Some(json!({"by": phase})),
                trace: Vec::new(),
                http: None,
                retry_after_ms: None,
            });
            self.settle();
        }

        fn attempts(&self, phase: &str) -> u32 {
            self.task.phase(phase).expect("phase").attempts.len() as u32
        }
    }

    fn back(feedback: &str) -> AttemptOutcome {
        AttemptOutcome::SentBack {
            to: "plan".into(),
            feedback: feedback.into(),
        }
    }

    #[test]
    fn a_round_waits_for_a_running_phase_it_would_reset_and_starts_nothing_new() {
        let mut r = Run::new();
        for phase in ["plan", "code"] {
            r.start(phase);
            r.finish(phase, AttemptOutcome::Succeeded);
        }
        r.start("docs");
        r.start("review");
        r.finish("review", back("too vague"));
        // docs still runs: the round waits, and ship may not start.
        assert_eq!(r.settle(), []);
        assert!(r.ready().is_empty(), "{:?}", r.ready());
        assert_eq!(r.task.phase("plan").unwrap().state, PhaseState::Completed);
        r.finish("docs", AttemptOutcome::Succeeded);
        // Now the round ran: everything after plan is pending again.
        let p = |id: &str| r.task.phase(id).unwrap().clone();
        assert_eq!(p("plan").state, PhaseState::Pending);
        assert_eq!(p("plan").feedback.as_deref(), Some("too vague"));
        for id in ["code", "docs", "review"] {
            assert_eq!(p(id).state, PhaseState::Pending, "{id}");
            assert_eq!(p(id).feedback, None, "{id}");
        }
        assert_eq!(p("review").rounds, 1);
        assert_eq!(p("ship").state, PhaseState::Pending);
        assert_eq!(r.ready(), ["plan"]);
        assert_eq!(r.task.state, TaskState::Running);
    }

    #[test]
    fn past_max_rounds_a_person_grants_a_round_or_approves() {
        let mut r = Run::new();
        let through = |r: &mut Run, verdict: AttemptOutcome| {
            for phase in ["plan", "code", "docs"] {
                r.start(phase);
                r.finish(phase, AttemptOutcome::Succeeded);
            }
            r.start("review");
            r.finish("review", verdict);
        };
        through(&mut r, back("one"));
        assert_eq!(r.task.phase("review").unwrap().rounds, 1);
        // Rounds spent: the second send-back waits for a person.
        through(&mut r, back("two"));
        assert_eq!(r.task.state, TaskState::AwaitingReview);
        let hold = &r.task.holds[0];
        assert!(
            matches!(&hold.review, Some(ReviewReason::RoundsSpent { to, feedback, rounds: 1 }) if to == "plan" && feedback == "two"),
            "{hold:?}"
        );
        assert!(r.ready().is_empty());
        let by = crate::engine::event::Actor::engine();
        let decide = |action| EventKind::DecisionRecorded {
            decision: crate::engine::event::Decision {
                action,
                phase: None,
                by: by.clone(),
                at: Timestamp::UNIX_EPOCH,
                note: None,
            },
        };
        r.apply(decide(crate::engine::event::Action::SendBack {
            feedback: "from a person".into(),
        }));
        let events = r.settle();
        assert!(
            matches!(&events[..], [EventKind::LoopRound { granted: true, round: 2, feedback, .. }] if feedback == "from a person"),
            "{events:?}"
        );
        assert_eq!(
            r.task.phase("plan").unwrap().feedback.as_deref(),
            Some("from a person")
        );
        through(&mut r, back("three"));
        assert_eq!(r.task.state, TaskState::AwaitingReview);
        r.apply(decide(crate::engine::event::Action::Approve));
        r.settle();
        assert_eq!(r.ready(), ["ship"]);
        r.start("ship");
        r.finish("ship", AttemptOutcome::Succeeded);
        assert_eq!(r.task.state, TaskState::Completed);
    }

    #[test]
    fn a_round_out_of_order_is_refused_and_changes_nothing() {
        let mut r = Run::new();
        for phase in ["plan", "code", "docs"] {
            r.start(phase);
            r.finish(phase, AttemptOutcome::Succeeded);
        }
        let before = r.task.clone();
        let ev = Event {
            seq: 99,
            at: Timestamp::UNIX_EPOCH,
            task: Some("t".into()),
            kind: EventKind::LoopRound {
                phase: "review".into(),
                to: "plan".into(),
                feedback: "f".into(),
                round: 1,
                reset: vec!["plan".into()],
                granted: false,
            },
        };
        assert!(r.task.apply(&ev).is_err(), "review never sent back");
        assert_eq!(r.task, before);
    }

    #[test]
    fn a_phase_run_again_that_fails_shows_no_output_from_before() {
        let mut r = Run::new();
        for phase in ["plan", "code", "docs"] {
            r.start(phase);
            r.finish(phase, AttemptOutcome::Succeeded);
        }
        r.start("review");
        r.finish("review", back("again"));
        assert_eq!(r.task.phase("plan").unwrap().state, PhaseState::Pending);
        r.start("plan");
        r.apply(EventKind::AttemptFinished {
            phase: "plan".into(),
            attempt: 2,
            duration_ms: 1,
            outcome: AttemptOutcome::Failed {
                class: crate::engine::event::ErrorClass::Fatal,
                message: "no".into(),
            },
            usage: None,
            cost_usd: None,
            output: None,
            trace: Vec::new(),
            http: None,
            retry_after_ms: None,
        });
        let plan = r.task.phase("plan").unwrap();
        assert_eq!(
            plan.output, None,
            "the first run's output is not shown beside the new error"
        );
        assert_eq!(plan.error.as_deref(), Some("no"));
    }

    #[test]
    fn refusals_say_what_to_add() {
        let r = Run::new();
        let none = refusal(&r.pipeline.phases[0], "x").unwrap();
        assert!(none.contains("add send_back = { to = [\"x\"] }"), "{none}");
        let other = refusal(&r.pipeline.phases[3], "code").unwrap();
        assert!(other.contains("may send back only to plan"), "{other}");
        assert_eq!(refusal(&r.pipeline.phases[3], "plan"), None);
    }
}
