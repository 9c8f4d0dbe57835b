//! When to draw: only after a change, at most `max_fps` times a second, and
//! once a second when nothing changes (for the clock and retry countdowns).

use std::time::Duration;

use tokio::time::Instant;

const IDLE: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct Pacer {
    frame: Duration,
    last_draw: Option<Instant>,
    dirty: bool,
}

impl Pacer {
    pub fn new(max_fps: u32) -> Pacer {
        Pacer {
            frame: Duration::from_secs(1) / max_fps.max(1),
            last_draw: None,
            dirty: true,
        }
    }

    /// Something on screen changed.
    pub fn mark(&mut self) {
        self.dirty = true;
    }

    /// What changed is not worth a frame after all (more is on its way).
    pub fn unmark(&mut self) {
        self.dirty = false;
    }

    pub fn should_draw(&self, now: Instant) -> bool {
        self.dirty && self.last_draw.is_none_or(|t| now >= t + self.frame)
    }

    pub fn drew(&mut self, now: Instant) {
        self.dirty = false;
        self.last_draw = Some(now);
    }

    /// When the loop should wake if nothing else happens: the end of the
    /// frame when a change waits, else the next clock tick.
    pub fn wake_at(&self, now: Instant) -> Instant {
        match self.last_draw {
            None => now,
            Some(t) if self.dirty => t + self.frame,
            Some(t) => t + IDLE,
        }
    }

    /// Called on waking at `wake_at`: an idle screen is redrawn for the clock.
    pub fn woke(&mut self, now: Instant) {
        if self.last_draw.is_none_or(|t| now >= t + IDLE) {
            self.dirty = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_at_most_max_fps_however_many_changes() {
        let t0 = Instant::now();
        let mut p = Pacer::new(10);
        assert!(p.should_draw(t0));
        p.drew(t0);
        let mut draws = 1;
        // A change every millisecond for a second.
        for ms in 1..=1000 {
            let now = t0 + Duration::from_millis(ms);
            p.mark();
            if p.should_draw(now) {
                p.drew(now);
                draws += 1;
            }
        }
        assert_eq!(draws, 11);
    }

    #[test]
    fn idle_redraws_once_a_second() {
        let t0 = Instant::now();
        let mut p = Pacer::new(10);
        p.drew(t0);
        assert!(!p.should_draw(t0 + Duration::from_millis(500)));
        assert_eq!(p.wake_at(t0), t0 + IDLE);
        p.woke(t0 + Duration::from_millis(300));
        assert!(!p.should_draw(t0 + Duration::from_millis(300)));
        p.woke(t0 + IDLE);
        assert!(p.should_draw(t0 + IDLE));
    }

    #[test]
    fn a_pending_change_wakes_at_the_end_of_the_frame() {
        let t0 = Instant::now();
        let mut p = Pacer::new(4);
        p.drew(t0);
        p.mark();
        assert!(!p.should_draw(t0 + Duration::from_millis(100)));
        assert_eq!(p.wake_at(t0), t0 + Duration::from_millis(250));
        assert!(p.should_draw(t0 + Duration::from_millis(250)));
    }
}
