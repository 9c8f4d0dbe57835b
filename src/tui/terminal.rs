//! Taking the terminal over and giving it back. Restoring happens in two
//! places: a Drop guard for every normal and error exit, and a panic hook so
//! the panic message lands on a usable screen instead of the alternate one.

use std::io::{self, Stdout, stdout};
use std::sync::Once;
use std::sync::atomic::{AtomicBool, Ordering};

use crossterm::event::{DisableMouseCapture, EnableMouseCapture};
use crossterm::execute;
use crossterm::terminal::{
    Clear, ClearType, EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;

pub type Term = Terminal<CrosstermBackend<Stdout>>;

/// Set by the panic hook; the loop takes the screen back if it still runs
/// (a panic in another task of the process need not end the dashboard).
static RESTORED_BY_PANIC: AtomicBool = AtomicBool::new(false);

/// Owns the terminal while the dashboard runs; dropping it restores the
/// terminal however the dashboard ends.
pub struct TerminalGuard {
    pub terminal: Term,
}

impl TerminalGuard {
    pub fn new() -> io::Result<TerminalGuard> {
        install_panic_hook();
        enter()?;
        // No guard exists yet to restore on failure, so restore by hand.
        match Terminal::new(CrosstermBackend::new(stdout())) {
            Ok(terminal) => Ok(TerminalGuard { terminal }),
            Err(e) => {
                restore();
                Err(e)
            }
        }
    }

    /// If a panic elsewhere gave the terminal back, takes it again and
    /// clears, so the next frame draws everything. True when it did.
    pub fn reclaim_after_panic(&mut self) -> io::Result<bool> {
        if !RESTORED_BY_PANIC.swap(false, Ordering::SeqCst) {
            return Ok(false);
        }
        enter()?;
        // Blank both frame buffers so the next draw repaints every cell.
        // (`Terminal::clear` would do it too, but asks the terminal for the
        // cursor position, which can time out over a slow SSH link.)
        self.terminal.swap_buffers();
        Ok(true)
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore();
    }
}

fn enter() -> io::Result<()> {
    enable_raw_mode()?;
    // Mouse capture lets a click pick a row; shift-drag still selects text
    // in most terminals and in tmux.
    if let Err(e) = execute!(
        stdout(),
        EnterAlternateScreen,
        Clear(ClearType::All),
        EnableMouseCapture
    ) {
        restore();
        return Err(e);
    }
    Ok(())
}

/// Gives the terminal back: safe to call more than once, errors ignored
/// because there is nowhere left to report them.
pub fn restore() {
    let _ = execute!(
        stdout(),
        DisableMouseCapture,
        LeaveAlternateScreen,
        crossterm::cursor::Show
    );
    let _ = disable_raw_mode();
}

fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            RESTORED_BY_PANIC.store(true, Ordering::SeqCst);
            previous(info);
        }));
    });
}
