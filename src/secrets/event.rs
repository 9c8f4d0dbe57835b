//! Which text of an event is masked: everything that came from an agent, a
//! task's input or a person. Names the pipeline file gives (phases, agents,
//! roles) and task ids are identifiers the engine works by, and are kept.

use super::Secrets;
use crate::engine::escalation::Escalation;
use crate::engine::event::{
    Action, Actor, AttemptOutcome, Decision, EventKind, HttpInfo, ReviewReason,
};
use crate::engine::live::{LiveEvent, LiveKind};

impl Secrets {
    /// Masks an event's free text in place.
    pub fn mask_event(&self, kind: &mut EventKind) {
        if self.is_empty() {
            return;
        }
        let m = |s: &mut String| self.mask_string(s);
        let mo = |s: &mut Option<String>| {
            if let Some(s) = s {
                self.mask_string(s)
            }
        };
        match kind {
            EventKind::TaskSubmitted { input } => self.mask_value(input),
            EventKind::PhaseStarted {
                model, feedback, ..
            } => {
                mo(model);
                mo(feedback);
            }
            EventKind::AttemptFinished {
                outcome,
                usage,
                output,
                trace,
                http,
                ..
            } => {
                self.mask_outcome(outcome);
                if let Some(u) = usage {
                    mo(&mut u.model);
                }
                if let Some(o) = output {
                    self.mask_value(o);
                }
                trace.iter_mut().for_each(m);
                if let Some(HttpInfo {
                    error_type,
                    request_id,
                    ..
                }) = http
                {
                    mo(error_type);
                    mo(request_id);
                }
            }
            EventKind::RetryScheduled { .. }
            | EventKind::ItemsListed { error: None, .. }
            | EventKind::ItemRetryScheduled { .. }
            | EventKind::ItemsSettled { .. } => {}
            EventKind::ItemStarted { model, .. } => mo(model),
            EventKind::ItemFinished {
                outcome,
                usage,
                output,
                ..
            } => {
                self.mask_outcome(outcome);
                if let Some(u) = usage {
                    mo(&mut u.model);
                }
                if let Some(o) = output {
                    self.mask_value(o);
                }
            }
            EventKind::ItemFailed { error, .. }
            | EventKind::ItemsListed {
                error: Some(error), ..
            } => m(error),
            EventKind::PhaseCached {
                key,
                output,
                from_task,
                ..
            } => {
                m(key);
                m(from_task);
                self.mask_value(output);
            }
            EventKind::PhaseFailed { error: text, .. }
            | EventKind::PhaseSkipped { reason: text, .. }
            | EventKind::LoopRound { feedback: text, .. } => m(text),
            EventKind::TaskBlocked {
                reason, escalation, ..
            } => {
                m(reason);
                self.mask_escalation(escalation);
            }
            EventKind::ReviewRequested { reason, .. } => match reason {
                ReviewReason::PhaseFailed { error: text }
                | ReviewReason::RoundsSpent { feedback: text, .. }
                | ReviewReason::Budget { detail: text, .. } => m(text),
                ReviewReason::AgentAsked { reason, escalation } => {
                    m(reason);
                    self.mask_escalation(escalation);
                }
                ReviewReason::Always => {}
            },
            EventKind::DecisionRecorded { decision } => self.mask_decision(decision),
            EventKind::TaskFinished { reason, .. } => mo(reason),
            EventKind::RunPaused { by }
            | EventKind::RunResumed { by }
            | EventKind::BudgetRaised { by, .. } => self.mask_actor(by),
        }
    }

    /// Masks what a running attempt shows.
    pub fn mask_live(&self, live: &mut LiveEvent) {
        match &mut live.kind {
            LiveKind::Progress(p) => self.mask_string(&mut p.text),
            LiveKind::Trace { line } => self.mask_string(line),
        }
    }

    fn mask_outcome(&self, outcome: &mut AttemptOutcome) {
        match outcome {
            AttemptOutcome::Failed { message: text, .. }
            | AttemptOutcome::SentBack { feedback: text, .. } => self.mask_string(text),
            AttemptOutcome::Blocked {
                reason: text,
                escalation,
            }
            | AttemptOutcome::ReviewRequested {
                reason: text,
                escalation,
            } => {
                self.mask_string(text);
                self.mask_escalation(escalation);
            }
            AttemptOutcome::Succeeded | AttemptOutcome::Interrupted | AttemptOutcome::Cancelled => {
            }
        }
    }

    fn mask_escalation(&self, e: &mut Escalation) {
        for line in &mut e.attempted {
            self.mask_string(line);
        }
    }

    fn mask_decision(&self, d: &mut Decision) {
        if let Action::SendBack { feedback } = &mut d.action {
            self.mask_string(feedback);
        }
        if let Some(note) = &mut d.note {
            self.mask_string(note);
        }
        self.mask_actor(&mut d.by);
    }

    fn mask_actor(&self, by: &mut Actor) {
        self.mask_string(&mut by.user.name);
        if let Some(addr) = &mut by.ssh_client {
            self.mask_string(addr);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::event::ErrorClass;
    use serde_json::json;

    #[test]
    fn every_free_text_of_an_attempt_is_masked() {
        let key = "tok-0123456789abcdef";
        let s = Secrets::new([key]);
        let mut kind = EventKind::AttemptFinished {
            phase: "draft".into(),
            attempt: 1,
            duration_ms: 3,
            outcome: AttemptOutcome::Failed {
                class: ErrorClass::Fatal,
                message: format!("bad {}", key.to_uppercase()),
            },
            usage: None,
            cost_usd: None,
            output: Some(json!({"text": &key[1..]})),
            trace: vec![format!("using {}", &key[..10])],
            http: None,
            retry_after_ms: None,
        };
        s.mask_event(&mut kind);
        let text = serde_json::to_string(&kind).unwrap();
        assert!(!text.contains("0123456"), "{text}");
        assert!(text.contains("bad [secret]"), "{text}");
        assert!(text.contains("\"draft\""), "names stay: {text}");
    }

    #[test]
    fn what_a_running_attempt_shows_is_masked() {
        let key = "tok-0123456789abcdef";
        let s = Secrets::new([key]);
        let mut live = LiveEvent {
            task: "t".into(),
            phase: "p".into(),
            attempt: 1,
            kind: LiveKind::Trace {
                line: format!("key {key}"),
            },
        };
        s.mask_live(&mut live);
        assert_eq!(
            live.kind,
            LiveKind::Trace {
                line: "key [secret]".into()
            }
        );
    }
}
