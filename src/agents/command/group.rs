//! The process group a command agent runs in, and killing all of it.

/// Owns the process group of one attempt. Dropping it kills the group, so a
/// call that is cancelled (its future dropped) leaves nothing running.
///
/// The group id is the leader's pid, and the kernel does not hand that pid
/// out again while the leader is unreaped. So the group may be signalled any
/// number of times until the leader is reaped, and once more right after
/// (to sweep up what the leader left behind), but never later: by then the
/// id may belong to someone else.
#[derive(Debug)]
pub(super) struct ProcessGroup {
    pgid: libc::pid_t,
    live: bool,
}

impl ProcessGroup {
    pub(super) fn new(leader_pid: u32) -> ProcessGroup {
        let pgid = libc::pid_t::try_from(leader_pid).unwrap_or(0);
        // kill(0) or kill(-1) would hit our own group or every process we
        // may signal; refuse ids that cannot be a child's group.
        ProcessGroup {
            pgid,
            live: pgid > 1,
        }
    }

    /// SIGKILL to every process in the group.
    pub(super) fn kill(&self) {
        if self.live {
            // SAFETY: kill has no memory effects; `pgid > 1` was checked.
            // ESRCH (nobody left) is fine to ignore.
            unsafe {
                libc::kill(-self.pgid, libc::SIGKILL);
            }
        }
    }

    /// The leader has been reaped: kill whatever it left behind in the group
    /// (background helpers would otherwise hold our pipes open), then stand
    /// down for good.
    pub(super) fn leader_reaped(&mut self) {
        self.kill();
        self.live = false;
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Asks the kernel to SIGKILL the agent when the engine dies, so that a
/// killed engine (kill -9, a crash) leaves no agent running. It covers the
/// group's leader only; its own children are swept up when the next engine's
/// attempt runs again. The signal follows the thread that spawned the child,
/// and tokio's worker threads live as long as the engine.
pub(super) fn die_with_parent(command: &mut tokio::process::Command) {
    // SAFETY: the closure runs between fork and exec and calls only
    // async-signal-safe functions (prctl, getppid).
    let parent = unsafe { libc::getpid() };
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The engine may have died before the request above took hold.
            if libc::getppid() != parent {
                return Err(std::io::Error::other(
                    "the engine exited while starting the agent",
                ));
            }
            Ok(())
        });
    }
}

/// The usual name of a signal, for messages.
pub(super) fn signal_name(signal: i32) -> Option<&'static str> {
    Some(match signal {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_that_are_not_a_child_group_are_never_signalled() {
        assert!(!ProcessGroup::new(0).live);
        assert!(!ProcessGroup::new(1).live);
        assert!(!ProcessGroup::new(u32::MAX).live);
    }

    #[test]
    fn signal_names() {
        assert_eq!(signal_name(libc::SIGSEGV), Some("SIGSEGV"));
        assert_eq!(signal_name(1000), None);
    }
}
