use serde_json::json;

use super::*;
use crate::engine::Action;
use crate::engine::event::{AttemptOutcome, Decision, ErrorClass, ReviewReason};
use crate::report::run_log_lines::review_reason;
use crate::report::testing::{PHASES, at, finished_attempt, started};

/// A log over an empty run of phases `one` and `two`, fed events in order.
struct Feed {
    log: RunLog,
    seq: u64,
}

fn snapshot(tasks: Vec<Task>, seq: u64) -> RunSnapshot {
    RunSnapshot {
        pipeline: "demo".into(),
        phases: PHASES.iter().map(|p| p.to_string()).collect(),
        state_dir: "/srv/state".into(),
        store: None,
        started_at: at(1000),
        paused: false,
        tasks,
        seq,
        budget: Default::default(),
        live: Vec::new(),
    }
}

fn tester() -> Actor {
    Actor {
        user: "ann".into(),
        ssh_client: Some("10.1.2.3".into()),
    }
}

impl Feed {
    fn new() -> Feed {
        Feed::with(Masker::default())
    }

    fn with(masker: Masker) -> Feed {
        Feed {
            log: RunLog::new(snapshot(Vec::new(), 0), masker),
            seq: 0,
        }
    }

    /// The text logged for one event of task `t1` at `secs`.
    fn push(&mut self, secs: i64, kind: EventKind) -> String {
        self.push_for(Some("t1"), secs, kind)
    }

    fn push_for(&mut self, task: Option<&str>, secs: i64, kind: EventKind) -> String {
        self.seq += 1;
        self.log.apply(&Event {
            seq: self.seq,
            at: at(secs),
            task: task.map(str::to_string),
            kind,
        })
    }

    fn submit(&mut self, secs: i64, input: Value) -> String {
        self.push(secs, EventKind::TaskSubmitted { input })
    }

    fn decide(&mut self, secs: i64, action: Action, note: Option<&str>) -> String {
        self.push(
            secs,
            EventKind::DecisionRecorded {
                decision: Decision {
                    action,
                    phase: None,
                    by: tester(),
                    at: at(secs),
                    note: note.map(str::to_string),
                },
            },
        )
    }

    /// Runs phase `phase` to a review requested by the agent.
    fn run_to_review(&mut self, secs: i64, phase: &str, attempt: u32) {
        self.push(secs, started(phase, attempt));
        self.push(
            secs,
            finished_attempt(
                phase,
                attempt,
                AttemptOutcome::ReviewRequested {
                    reason: "low confidence".into(),
                    escalation: Default::default(),
                },
                10,
                Some(0.01),
            ),
        );
        self.push(
            secs,
            EventKind::ReviewRequested {
                phase: phase.into(),
                reason: ReviewReason::AgentAsked {
                    reason: "low confidence".into(),
                    escalation: Default::default(),
                },
            },
        );
    }

    fn run_to_blocker(&mut self, secs: i64) {
        self.push(secs, started("one", 1));
        self.push(
            secs,
            finished_attempt(
                "one",
                1,
                AttemptOutcome::Blocked {
                    reason: "needs a key".into(),
                    escalation: Default::default(),
                },
                5,
                None,
            ),
        );
        let blocked = self.push(
            secs,
            EventKind::TaskBlocked {
                phase: "one".into(),
                reason: "needs a key from ops@example.com".into(),
                escalation: Default::default(),
            },
        );
        assert_eq!(
            blocked,
            format!(
                "- {} **t1** ⛔ blocked at `one`: “needs a key from [email]”\n",
                clock(at(secs))
            )
        );
    }
}

#[test]
fn headers_name_the_run_the_folder_and_who() {
    let mut log = RunLog::new(snapshot(Vec::new(), 0), Masker::default());
    let h = log.header(&Opening::Started, Some("/p/demo.toml"), &tester(), at(0));
    assert_eq!(
        h,
        "\n## Run started · 1970-01-01 00:00:00 UTC\n\n\
         - pipeline: demo (`/p/demo.toml`)\n\
         - state folder: `/srv/state`\n\
         - started by: ann (ssh from 10.1.2.3, as its client claims)\n\
         - tasks in the folder: 0\n\n"
    );
    let tasks = vec![
        crate::report::testing::task("a", 0),
        crate::report::testing::task("b", 0),
    ];
    let mut log = RunLog::new(snapshot(tasks, 2), Masker::default());
    let h = log.header(&Opening::Resumed, None, &Actor::engine(), at(90_000));
    assert!(
        h.starts_with("\n## Run resumed · 1970-01-02 01:00:00 UTC\n"),
        "{h}"
    );
    assert!(h.contains("- resumed by: baton\n"), "{h}");
    assert!(h.contains("- tasks in the folder: 2: 2 pending\n"), "{h}");
    let h = log.header(
        &Opening::Command("baton approve t1".into()),
        None,
        &tester(),
        at(0),
    );
    assert!(h.starts_with("\n## `baton approve t1` · "), "{h}");
    assert!(
        h.contains("- by: ann (ssh from 10.1.2.3, as its client claims)\n"),
        "{h}"
    );
}

#[test]
fn submission_shows_the_input_masked_and_capped() {
    let mut f = Feed::new();
    let line = f.submit(
        0,
        json!({"id": "t1", "email": "jane@example.org", "phone": "+1 555 123 4567", "at": "2024-01-15"}),
    );
    assert_eq!(
        line,
        "- 00:00:00.000 **t1** submitted · input `{\"at\":\"2024-01-15\",\"email\":\"[email]\",\"id\":\"t1\",\"phone\":\"[phone]\"}`\n"
    );
    let mut f = Feed::new();
    let line = f.submit(0, json!({"note": "x".repeat(1000)}));
    let inside = line.split('`').nth(1).unwrap();
    assert_eq!(inside.chars().count(), EXCERPT_CHARS + 1, "{line}");
    assert!(inside.ends_with('…'));
}

#[test]
fn attempts_show_agent_model_tokens_cost_and_duration() {
    let mut f = Feed::new();
    f.submit(0, json!({}));
    let start = f.push(
        3,
        EventKind::PhaseStarted {
            phase: "one".into(),
            attempt: 1,
            agent: "writer".into(),
            model: Some("claude-haiku-4-5".into()),
            feedback: None,
            route: None,
            role: None,
        },
    );
    assert_eq!(
        start,
        "- 00:00:03.000 **t1** ▶ started after 3.0s in the queue\n\
         - 00:00:03.000 **t1** `one` #1 started · agent writer · model claude-haiku-4-5\n"
    );
    let done = f.push(
        4,
        EventKind::AttemptFinished {
            phase: "one".into(),
            attempt: 1,
            duration_ms: 1250,
            outcome: AttemptOutcome::Succeeded,
            usage: Some(crate::engine::cost::Usage {
                model: None,
                input_tokens: 1200,
                output_tokens: 34,
                cost_usd: None,
                ..Default::default()
            }),
            cost_usd: Some(0.0042),
            output: Some(json!({"reply": "call me at 555-123-4567"})),
            trace: vec!["not copied".into()],
            http: None,
            retry_after_ms: None,
        },
    );
    assert_eq!(
        done,
        "- 00:00:04.000 **t1** ✓ `one` #1 succeeded · agent writer · model claude-haiku-4-5 · 1,234 tok (1,200 in / 34 out) · $0.0042 · 1.2s · output `{\"reply\":\"call me at [phone]\"}`\n"
    );
}

#[test]
fn failures_and_retries_say_class_reason_and_delay() {
    let mut f = Feed::new();
    f.submit(0, json!({}));
    f.push(1, started("one", 1));
    let failed = f.push(
        2,
        finished_attempt(
            "one",
            1,
            AttemptOutcome::Failed {
                class: ErrorClass::Timeout,
                message: "no reply\nafter 30s".into(),
            },
            0,
            None,
        ),
    );
    assert_eq!(
        failed,
        "- 00:00:02.000 **t1** ✗ `one` #1 failed (timeout): “no reply after 30s” · agent a · model m · 0 tok (0 in / 0 out) · cost unknown · 250ms\n"
    );
    let retry = f.push(
        2,
        EventKind::RetryScheduled {
            phase: "one".into(),
            attempt: 2,
            delay_ms: 1500,
            due: at(3),
        },
    );
    assert_eq!(
        retry,
        "- 00:00:02.000 **t1** ↻ `one` retry #2 in 1.5s (at 00:00:03.000) · after a timeout error: “no reply after 30s”\n"
    );
    f.push(3, started("one", 2));
    f.push(
        4,
        finished_attempt(
            "one",
            2,
            AttemptOutcome::Failed {
                class: ErrorClass::Fatal,
                message: "bad".into(),
            },
            0,
            None,
        ),
    );
    let phase_failed = f.push(
        4,
        EventKind::PhaseFailed {
            phase: "one".into(),
            error: "bad".into(),
        },
    );
    assert_eq!(
        phase_failed,
        "- 00:00:04.000 **t1** ✗ `one` failed: “bad”\n"
    );
    let skipped = f.push(
        4,
        EventKind::PhaseSkipped {
            phase: "two".into(),
            reason: "input lacks payer".into(),
        },
    );
    assert_eq!(
        skipped,
        "- 00:00:04.000 **t1** · `two` skipped: “input lacks payer”\n"
    );
    let end = f.push(
        5,
        EventKind::TaskFinished {
            state: TaskState::Failed,
            reason: Some("phase one failed: bad".into()),
        },
    );
    assert_eq!(
        end,
        "- 00:00:05.000 **t1** ✗ **task failed**: “phase one failed: bad” · in 4.0s (5.0s since submitted) · 2 attempt(s) · 0 tok · unknown (2 unpriced)\n"
    );
}

#[test]
fn reviews_and_decisions_say_who_when_how_long_and_why() {
    let mut f = Feed::new();
    f.submit(0, json!({}));
    f.push(1, started("one", 1));
    let asked = f.push(
        2,
        finished_attempt(
            "one",
            1,
            AttemptOutcome::ReviewRequested {
                reason: "unsure".into(),
                escalation: Default::default(),
            },
            10,
            Some(0.01),
        ),
    );
    assert!(
        asked.contains("✓ `one` #1 succeeded, asks for a review: “unsure” · agent a"),
        "{asked}"
    );
    let review = f.push(
        2,
        EventKind::ReviewRequested {
            phase: "one".into(),
            reason: ReviewReason::AgentAsked {
                reason: "unsure".into(),
                escalation: Default::default(),
            },
        },
    );
    assert_eq!(
        review,
        "- 00:00:02.000 **t1** ⏸ review requested at `one`: agent asks: “unsure”\n"
    );
    let back = f.decide(
        65,
        Action::SendBack {
            feedback: "cite the note; ask jo@x.org".into(),
        },
        None,
    );
    assert_eq!(
        back,
        "- 00:01:05.000 **t1** ↩ **sent back** at `one` by ann (ssh from 10.1.2.3, as its client claims) at 00:01:05.000 after 1m03s waiting · feedback “cite the note; ask [email]”\n"
    );
    let again = f.push(
        66,
        EventKind::PhaseStarted {
            phase: "one".into(),
            attempt: 2,
            agent: "a".into(),
            model: None,
            feedback: Some("cite the note; ask jo@x.org".into()),
            route: None,
            role: None,
        },
    );
    assert_eq!(
        again,
        "- 00:01:06.000 **t1** `one` #2 started · agent a · with feedback “cite the note; ask [email]”\n"
    );
    f.push(
        67,
        finished_attempt("one", 2, AttemptOutcome::Succeeded, 10, Some(0.01)),
    );
    f.push(
        67,
        EventKind::ReviewRequested {
            phase: "one".into(),
            reason: ReviewReason::Always,
        },
    );
    let approved = f.decide(70, Action::Approve, Some("fine by me"));
    assert_eq!(
        approved,
        "- 00:01:10.000 **t1** ✔ **approved** at `one` by ann (ssh from 10.1.2.3, as its client claims) at 00:01:10.000 after 3.0s waiting · note “fine by me”\n"
    );
    f.run_to_review(71, "two", 1);
    let rejected = f.decide(
        80,
        Action::Reject,
        Some("wrong patient, call 020 7946 0958"),
    );
    assert_eq!(
        rejected,
        "- 00:01:20.000 **t1** ✘ **rejected** at `two` by ann (ssh from 10.1.2.3, as its client claims) at 00:01:20.000 after 9.0s waiting · reason “wrong patient, call [phone]”\n\
         - 00:01:20.000 **t1** ✗ **task failed**: “rejected at two: wrong patient, call [phone]” · in 1m19s (1m20s since submitted) · 3 attempt(s) · 30 tok · $0.0300\n"
    );
}

#[test]
fn review_reasons_of_every_kind() {
    let m = Masker::default();
    assert_eq!(
        review_reason(&m, &ReviewReason::Always),
        "output needs approval"
    );
    assert_eq!(
        review_reason(
            &m,
            &ReviewReason::PhaseFailed {
                error: "x@y.com said no".into()
            }
        ),
        "phase failed: “[email] said no”"
    );
}

#[test]
fn blockers_and_their_resolution() {
    for (action, word, state) in [
        (
            Action::ResolveRetry,
            "✔ **blocker resolved: retry**",
            TaskState::Running,
        ),
        (
            Action::ResolveSkip,
            "✔ **blocker resolved: skip**",
            TaskState::Running,
        ),
        (
            Action::ResolveFail,
            "✘ **blocker resolved: fail**",
            TaskState::Failed,
        ),
    ] {
        let mut f = Feed::new();
        f.submit(0, json!({}));
        f.run_to_blocker(1);
        let line = f.decide(31, action, Some("key added"));
        assert!(
            line.starts_with(&format!(
                "- 00:00:31.000 **t1** {word} at `one` by ann (ssh from 10.1.2.3, as its client claims) at 00:00:31.000 after 30.0s waiting · note “key added”\n"
            )),
            "{line}"
        );
        match f.log.tasks.get("t1") {
            Some(kept) => assert_eq!(kept.state(), state),
            // A final task is not kept; the totals count it.
            None => assert_eq!(f.log.tasks.totals().count(state), 1),
        }
        assert_eq!(
            line.contains("**task failed**"),
            state == TaskState::Failed,
            "{line}"
        );
    }
}

#[test]
fn cancel_retry_interrupt_and_completion() {
    let mut f = Feed::new();
    f.submit(0, json!({}));
    f.push(1, started("one", 1));
    let cancelled = f.decide(2, Action::Cancel, Some("duplicate"));
    assert_eq!(
        cancelled,
        "- 00:00:02.000 **t1** ⊘ **cancel asked** by ann (ssh from 10.1.2.3, as its client claims) at 00:00:02.000 · note “duplicate”\n\
         - 00:00:02.000 **t1** ⊘ **task cancelled**: “cancelled by ann: duplicate” · in 1.0s (2.0s since submitted) · 1 attempt(s) · 0 tok · $0.0000\n"
    );

    let mut f = Feed::new();
    f.submit(0, json!({}));
    f.push(1, started("one", 1));
    let interrupted = f.push(
        2,
        finished_attempt("one", 1, AttemptOutcome::Interrupted, 0, None),
    );
    assert!(
        interrupted.contains("↺ `one` #1 interrupted when the engine stopped; it runs again"),
        "{interrupted}"
    );
    f.push(3, started("one", 2));
    f.push(
        4,
        finished_attempt(
            "one",
            2,
            AttemptOutcome::Failed {
                class: ErrorClass::Retryable,
                message: "busy".into(),
            },
            0,
            None,
        ),
    );
    f.push(
        4,
        EventKind::RetryScheduled {
            phase: "one".into(),
            attempt: 3,
            delay_ms: 60_000,
            due: at(64),
        },
    );
    let retry = f.decide(5, Action::Retry, None);
    assert_eq!(
        retry,
        "- 00:00:05.000 **t1** ↻ **retry asked** at `one` by ann (ssh from 10.1.2.3, as its client claims) at 00:00:05.000\n"
    );
    f.push(5, started("one", 3));
    f.push(
        6,
        finished_attempt("one", 3, AttemptOutcome::Succeeded, 7, Some(0.5)),
    );
    f.push(7, started("two", 1));
    f.push(
        8,
        finished_attempt("two", 1, AttemptOutcome::Succeeded, 3, None),
    );
    let done = f.push(
        9,
        EventKind::TaskFinished {
            state: TaskState::Completed,
            reason: None,
        },
    );
    assert_eq!(
        done,
        "- 00:00:09.000 **t1** ✓ **task completed** · in 8.0s (9.0s since submitted) · 4 attempt(s) · 10 tok · $0.5000 + unknown (3 unpriced)\n"
    );
}

#[test]
fn pause_and_resume_name_who() {
    let mut f = Feed::new();
    assert_eq!(
        f.push_for(None, 5, EventKind::RunPaused { by: tester() }),
        "- 00:00:05.000 ⏸ **run paused** by ann (ssh from 10.1.2.3, as its client claims)\n"
    );
    assert_eq!(
        f.push_for(None, 6, EventKind::RunResumed { by: tester() }),
        "- 00:00:06.000 ▶ **run resumed** by ann (ssh from 10.1.2.3, as its client claims)\n"
    );
}

#[test]
fn pipeline_patterns_mask_what_is_copied() {
    let masker = Masker::new(&[r"MRN-\d{6}".to_string()]).unwrap();
    let mut f = Feed::with(masker);
    let line = f.submit(0, json!({"mrn": "MRN-123456"}));
    assert!(line.contains(r#"{"mrn":"[masked]"}"#), "{line}");
    f.push(1, started("one", 1));
    let failed = f.push(
        2,
        finished_attempt(
            "one",
            1,
            AttemptOutcome::Failed {
                class: ErrorClass::Contract,
                message: "MRN-654321 has no chart".into(),
            },
            0,
            None,
        ),
    );
    assert!(
        failed.contains("(contract): “[masked] has no chart”"),
        "{failed}"
    );
}

#[test]
fn a_new_day_gets_a_heading() {
    let mut f = Feed::new();
    f.log.header(&Opening::Started, None, &tester(), at(0));
    assert!(!f.submit(86_399, json!({})).contains("###"));
    let next = f.push(86_401, started("one", 1));
    assert!(
        next.starts_with("\n### 1970-01-02\n\n- 00:00:01.000 **t1**"),
        "{next}"
    );
}

#[test]
fn events_the_snapshot_holds_are_still_logged() {
    // A resumed run: the engine's snapshot already holds the submission and
    // the interrupted attempt of this session; the log still tells them.
    let mut task = crate::report::testing::task("t1", 0);
    let submitted = Event {
        seq: 1,
        at: at(0),
        task: Some("t1".into()),
        kind: EventKind::TaskSubmitted {
            input: json!({"a": 1}),
        },
    };
    let start = crate::report::testing::event(2, 1, "t1", started("one", 1));
    task.apply(&start).unwrap();
    let lost = crate::report::testing::event(
        3,
        2,
        "t1",
        finished_attempt("one", 1, AttemptOutcome::Interrupted, 0, None),
    );
    task.apply(&lost).unwrap();
    let mut log = RunLog::new(snapshot(vec![task], 3), Masker::default());
    assert!(
        log.apply(&submitted)
            .contains("**t1** submitted · input `{\"a\":1}`")
    );
    assert!(log.apply(&lost).contains("`one` #1 interrupted"));
    assert_eq!(log.tasks["t1"].attempts(), 1);
}

#[test]
fn the_summary_counts_states_tokens_dollars_and_time() {
    let mut f = Feed::new();
    f.submit(1000, json!({}));
    f.run_to_review(1001, "one", 1);
    f.push_for(
        Some("t2"),
        1002,
        EventKind::TaskSubmitted { input: json!({}) },
    );
    let s = f.log.summary(at(1125));
    assert_eq!(
        s,
        "\n### Summary · 1970-01-01 00:18:45 UTC\n\n\
         | state | tasks |\n| --- | ---: |\n\
         | pending | 1 |\n| awaiting_review | 1 |\n| **all** | **2** |\n\n\
         - waiting for a person: 1 (1 awaiting review, 0 blocked)\n\
         - attempts: 1 · tokens: 10\n\
         - cost: $0.0100\n\
         - run time: 2m05s this session; 2.0s since the first task was submitted\n"
    );
    f.push_for(Some("t2"), 1003, started("one", 1));
    f.push_for(
        Some("t2"),
        1004,
        finished_attempt("one", 1, AttemptOutcome::Succeeded, 5, None),
    );
    let s = f.log.summary(at(1125));
    assert!(
        s.contains("- cost: $0.0100 + unknown (1 unpriced) (a lower bound)\n"),
        "{s}"
    );
}

#[test]
fn budgets_roles_and_routes_are_logged() {
    let mut f = Feed::new();
    f.submit(0, json!({"risk": "high"}));
    let start = f.push(
        1,
        EventKind::PhaseStarted {
            phase: "one".into(),
            attempt: 1,
            agent: "senior".into(),
            model: Some("claude-opus-4-5".into()),
            feedback: None,
            route: Some(crate::engine::event::RouteChoice {
                index: 0,
                when: Some("input.risk == 'high'".into()),
            }),
            role: Some("reviewer".into()),
        },
    );
    assert!(
        start.ends_with("- 00:00:01.000 **t1** `one` #1 started · agent senior for role reviewer · model claude-opus-4-5 by route #1 (input.risk == 'high')\n"),
        "{start}"
    );
    let held = f.push(
        2,
        EventKind::ReviewRequested {
            phase: "one".into(),
            reason: ReviewReason::Budget {
                scope: crate::engine::event::BudgetScope::Task,
                detail: "$0.5000 reached: $0.5100 spent".into(),
            },
        },
    );
    assert!(
        held.ends_with(
            "⏸ review requested at `one`: task budget: “$0.5000 reached: $0.5100 spent”\n"
        ),
        "{held}"
    );
    let raised = f.push(
        3,
        EventKind::BudgetRaised {
            usd: Some(2.0),
            tokens: Some(20_000),
            accept_unknown: 0,
            by: tester(),
        },
    );
    assert_eq!(
        raised,
        "- 00:00:03.000 **t1** $ **budget raised** to $2.0000 and 20,000 tokens by ann (ssh from 10.1.2.3, as its client claims)\n"
    );
    let run = f.push_for(
        None,
        4,
        EventKind::BudgetRaised {
            usd: None,
            tokens: Some(5_000_000),
            accept_unknown: 0,
            by: tester(),
        },
    );
    assert_eq!(
        run,
        "- 00:00:04.000 $ **run budget raised** to 5,000,000 tokens by ann (ssh from 10.1.2.3, as its client claims)\n"
    );
}
