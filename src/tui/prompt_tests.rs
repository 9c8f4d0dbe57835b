use crossterm::event::KeyModifiers;

use super::*;

fn key(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

fn type_text(p: &mut Prompt, text: &str) {
    for c in text.chars() {
        assert_eq!(p.handle(&key(KeyCode::Char(c))), Outcome::Stay);
    }
}

#[test]
fn reject_sends_the_reason_as_the_note() {
    let mut p = Prompt::text(TextKind::Reject, "t-004".into(), Some("draft".into()));
    type_text(&mut p, "  off topic ");
    assert_eq!(
        p.handle(&key(KeyCode::Enter)),
        Outcome::Act {
            task: "t-004".into(),
            action: Decide::Reject,
            phase: Some("draft".into()),
            note: Some("off topic".into()),
        }
    );
    let mut empty = Prompt::text(TextKind::Reject, "t-004".into(), None);
    assert!(matches!(
        empty.handle(&key(KeyCode::Enter)),
        Outcome::Act { note: None, .. }
    ));
}

#[test]
fn feedback_must_say_something() {
    let mut p = Prompt::text(TextKind::Feedback, "t-004".into(), None);
    assert_eq!(p.handle(&key(KeyCode::Enter)), Outcome::Stay);
    assert!(matches!(
        p,
        Prompt::Text {
            complaint: Some(_),
            ..
        }
    ));
    type_text(&mut p, "shorter please");
    assert!(matches!(
        p,
        Prompt::Text {
            complaint: None,
            ..
        }
    ));
    let Outcome::Act { action, .. } = p.handle(&key(KeyCode::Enter)) else {
        panic!("expected an action");
    };
    assert_eq!(
        action,
        Decide::SendBack {
            feedback: "shorter please".into()
        }
    );
}

#[test]
fn escape_closes_without_acting() {
    let mut p = Prompt::text(TextKind::Feedback, "t".into(), None);
    type_text(&mut p, "abc");
    assert_eq!(p.handle(&key(KeyCode::Esc)), Outcome::Close);
}

#[test]
fn resolve_by_arrows_or_letter() {
    let resolve = || Prompt::Resolve {
        task: "t-005".into(),
        phase: Some("research".into()),
        reason: "needs a key".into(),
        choice: 0,
    };
    let mut p = resolve();
    p.handle(&key(KeyCode::Down));
    p.handle(&key(KeyCode::Down));
    p.handle(&key(KeyCode::Down));
    let Outcome::Act { action, phase, .. } = p.handle(&key(KeyCode::Enter)) else {
        panic!("expected an action");
    };
    assert_eq!(
        (action, phase.as_deref()),
        (Decide::ResolveFail, Some("research"))
    );
    let mut p = resolve();
    assert!(matches!(
        p.handle(&key(KeyCode::Char('s'))),
        Outcome::Act {
            action: Decide::ResolveSkip,
            ..
        }
    ));
    let mut p = resolve();
    assert!(matches!(
        p.handle(&key(KeyCode::Enter)),
        Outcome::Act {
            action: Decide::ResolveRetry,
            ..
        }
    ));
    assert_eq!(resolve().handle(&key(KeyCode::Char('x'))), Outcome::Stay);
}

#[test]
fn confirm_takes_y_or_n() {
    let mut p = Prompt::Confirm(ConfirmKind::Cancel {
        task: "t-002".into(),
        running: true,
    });
    assert_eq!(p.handle(&key(KeyCode::Char('x'))), Outcome::Stay);
    assert!(matches!(
        p.handle(&key(KeyCode::Char('y'))),
        Outcome::Act {
            action: Decide::Cancel,
            ..
        }
    ));
    let mut q = Prompt::Confirm(ConfirmKind::Quit {
        unfinished: 3,
        can_detach: true,
    });
    assert_eq!(q.handle(&key(KeyCode::Char('n'))), Outcome::Close);
    assert_eq!(q.handle(&key(KeyCode::Char('y'))), Outcome::Quit);
    assert_eq!(q.handle(&key(KeyCode::Char('d'))), Outcome::Detach);
    // An engine in this process cannot be left running.
    let mut here = Prompt::Confirm(ConfirmKind::Quit {
        unfinished: 3,
        can_detach: false,
    });
    assert_eq!(here.handle(&key(KeyCode::Char('d'))), Outcome::Stay);
}
