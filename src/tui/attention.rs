//! Telling the operator's terminal when a task starts waiting for them:
//! a bell, an OSC 9 or OSC 777 desktop notification, or nothing; at most
//! once every few seconds however many arrive.

use std::time::Duration;

use tokio::time::Instant;

use crate::engine::event::{Event, EventKind};

/// The fewest seconds between two notifications.
pub const QUIET_FOR: Duration = Duration::from_secs(5);

/// How a waiting task is announced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Notify {
    /// BEL: most terminals beep or flash, and mark the tab.
    #[default]
    Bell,
    /// OSC 9: a desktop notification (iTerm2, WezTerm, kitty, foot, Windows Terminal).
    Osc9,
    /// OSC 777: a desktop notification (rxvt-unicode, VTE terminals such as GNOME Terminal).
    Osc777,
    Off,
}

impl Notify {
    pub const NAMES: [&'static str; 4] = ["bell", "osc9", "osc777", "off"];

    pub fn parse(s: &str) -> Option<Notify> {
        Some(match s {
            "bell" => Notify::Bell,
            "osc9" => Notify::Osc9,
            "osc777" => Notify::Osc777,
            "off" => Notify::Off,
            _ => return None,
        })
    }

    /// The bytes that say `text`.
    pub fn bytes(self, text: &str) -> Vec<u8> {
        // Control characters in the text would end the sequence early.
        let clean: String = text.chars().filter(|c| !c.is_control()).collect();
        match self {
            Notify::Bell => b"\x07".to_vec(),
            Notify::Osc9 => format!("\x1b]9;baton: {clean}\x07").into_bytes(),
            Notify::Osc777 => format!("\x1b]777;notify;baton;{clean}\x07").into_bytes(),
            Notify::Off => Vec::new(),
        }
    }
}

/// `notify` from the dashboard's config file (`dashboard.toml` in the
/// config folder), with a warning at its line when it is not understood.
pub fn from_config(
    path: &std::path::Path,
) -> (Option<Notify>, Vec<super::config_file::FileWarning>) {
    use super::config_file::{Source, read, strings};
    if !path.is_file() {
        return (None, Vec::new());
    }
    let text = match read(path) {
        Ok(t) => t,
        Err(w) => return (None, vec![w]),
    };
    let src = Source { path, text: &text };
    let table = match src.parse() {
        Ok(t) => t,
        Err(w) => return (None, vec![w]),
    };
    let mut notify = None;
    let mut warnings = Vec::new();
    for (name, value) in table.iter() {
        if name.get_ref() != "notify" {
            warnings.push(src.warning(
                name.span(),
                format!("unknown setting {:?}; known: notify", name.get_ref()),
            ));
            continue;
        }
        match strings(&src, value).map(|v| v.first().map(|(s, span)| (s.to_string(), span.clone())))
        {
            Ok(Some((s, span))) => match Notify::parse(&s) {
                Some(n) => notify = Some(n),
                None => warnings.push(src.warning(
                    span,
                    format!("notify = {s:?}: use one of {}", Notify::NAMES.join(", ")),
                )),
            },
            Ok(None) => {}
            Err(w) => warnings.push(w),
        }
    }
    (notify, warnings)
}

/// Waits not told yet, and when the last telling was.
#[derive(Debug, Default)]
pub struct Attention {
    pub notify: Notify,
    /// What started waiting since the last notification.
    waiting: Vec<String>,
    last: Option<Instant>,
}

impl Attention {
    pub fn new(notify: Notify) -> Attention {
        Attention {
            notify,
            ..Attention::default()
        }
    }

    /// Notes an event that makes a task wait for a person.
    pub fn on_event(&mut self, ev: &Event) {
        let what = match (&ev.kind, &ev.task) {
            (EventKind::ReviewRequested { phase, .. }, Some(t)) => {
                format!("{t} waits for review at {phase}")
            }
            (EventKind::TaskBlocked { phase, .. }, Some(t)) => format!("{t} is blocked at {phase}"),
            _ => return,
        };
        if self.notify != Notify::Off {
            self.waiting.push(what);
        }
    }

    /// Notes what waits already (the dashboard just opened on it).
    pub fn already_waiting(&mut self, n: usize) {
        if n > 0 && self.notify != Notify::Off {
            self.waiting.push(if n == 1 {
                "a task waits for you".to_string()
            } else {
                format!("{n} tasks wait for you")
            });
        }
    }

    /// The bytes to write now, if a notification is due.
    pub fn due(&mut self, now: Instant) -> Option<Vec<u8>> {
        if self.waiting.is_empty() || self.last.is_some_and(|t| now < t + QUIET_FOR) {
            return None;
        }
        let text = match self.waiting.len() {
            1 => self.waiting[0].clone(),
            n => format!("{} and {} more wait for you", self.waiting[0], n - 1),
        };
        self.waiting.clear();
        self.last = Some(now);
        Some(self.notify.bytes(&text))
    }

    /// When to wake to tell what waits, if anything does.
    pub fn next_at(&self) -> Option<Instant> {
        if self.waiting.is_empty() {
            return None;
        }
        Some(self.last.map_or_else(Instant::now, |t| t + QUIET_FOR))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tui::test_support::sample_events;

    #[test]
    fn many_waits_make_one_notification_every_few_seconds() {
        let mut a = Attention::new(Notify::Osc9);
        let t0 = Instant::now();
        for ev in sample_events() {
            a.on_event(&ev);
        }
        let first = String::from_utf8(a.due(t0).expect("due")).unwrap();
        assert!(first.starts_with("\x1b]9;baton: "), "{first:?}");
        assert!(first.contains("more wait for you"), "{first:?}");
        assert!(a.due(t0).is_none(), "nothing new");
        for ev in sample_events() {
            a.on_event(&ev);
        }
        assert!(a.due(t0 + Duration::from_secs(1)).is_none(), "too soon");
        assert!(a.due(t0 + QUIET_FOR).is_some());
        let mut off = Attention::new(Notify::Off);
        for ev in sample_events() {
            off.on_event(&ev);
        }
        assert!(off.due(t0).is_none());
        assert_eq!(Notify::Bell.bytes("x"), b"\x07");
        assert_eq!(
            Notify::Osc777.bytes("t1\x1b waits"),
            b"\x1b]777;notify;baton;t1 waits\x07"
        );
    }
}
