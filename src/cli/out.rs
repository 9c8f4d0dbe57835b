//! Printing to stdout without panicking: a reader that went away (`baton
//! run --headless | head`) ends the printing, not the process.

use std::fmt::Display;
use std::io::Write;

/// Prints one line; a closed stdout is ignored.
pub fn line(text: impl Display) {
    let _ = writeln!(std::io::stdout().lock(), "{text}");
}

/// Lets the commands that only print what they read die quietly of
/// SIGPIPE when their reader goes away, as `cat` and `ls` do. Not for
/// commands that talk to an engine's socket: there SIGPIPE would end the
/// process on a closed connection instead of an error it handles.
pub fn die_quietly_on_a_closed_pipe() {
    // SAFETY: resets one signal's disposition; no handler is installed.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
