//! The engine's own log (anything sent through `tracing`), with tui-logger's
//! target list for choosing what to see at which level.
//!
//! With the pane focused: ↑/↓ pick a target, ←/→ show less or more of it,
//! -/+ capture less or more, space hides targets that are off, h hides the
//! target list, F shows only the picked target, page keys scroll back, esc
//! returns to following the end.

use crossterm::event::{KeyCode, KeyEvent};
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::Line;
use ratatui::widgets::{BorderType, Widget};
use tui_logger::{TuiLoggerLevelOutput, TuiLoggerSmartWidget, TuiWidgetEvent, TuiWidgetState};

use super::action::Action;
use super::widgets::Ctx;

pub struct LogPane<'a> {
    pub ctx: &'a Ctx<'a>,
    pub focused: bool,
}

/// The keys the log pane takes beyond the keymap, and what they mean to it.
pub const LOG_KEYS: &[(&str, &str)] = &[
    ("←/→", "show less / more of the picked target"),
    ("-/+", "capture less / more of it"),
    ("space", "hide targets that are off"),
    ("h", "hide the target list"),
    ("F", "show only the picked target"),
];

/// A key the log pane handles itself, when the keymap has none for it.
pub fn raw_key(key: &KeyEvent) -> Option<TuiWidgetEvent> {
    Some(match key.code {
        KeyCode::Left => TuiWidgetEvent::LeftKey,
        KeyCode::Right => TuiWidgetEvent::RightKey,
        KeyCode::Char('+') => TuiWidgetEvent::PlusKey,
        KeyCode::Char('-') => TuiWidgetEvent::MinusKey,
        KeyCode::Char(' ') => TuiWidgetEvent::SpaceKey,
        KeyCode::Char('h') => TuiWidgetEvent::HideKey,
        KeyCode::Char('F') => TuiWidgetEvent::FocusKey,
        _ => return None,
    })
}

/// Keymap actions that mean something else inside the log pane.
pub fn action(action: Action) -> Option<TuiWidgetEvent> {
    Some(match action {
        Action::Up => TuiWidgetEvent::UpKey,
        Action::Down => TuiWidgetEvent::DownKey,
        Action::PageUp => TuiWidgetEvent::PrevPageKey,
        Action::PageDown => TuiWidgetEvent::NextPageKey,
        Action::Back => TuiWidgetEvent::EscapeKey,
        _ => return None,
    })
}

/// The `tracing` layer that feeds the log pane. Add it to the subscriber
/// before `tui::run`, in place of one writing to the terminal: while the
/// dashboard owns the screen, anything written to stderr garbles it.
pub fn tracing_layer() -> tui_logger::TuiTracingSubscriberLayer {
    // Fails only if called twice; the first set-up stands.
    let _ = tui_logger::init_logger(tui_logger::LevelFilter::Trace);
    tui_logger::set_default_level(tui_logger::LevelFilter::Info);
    tui_logger::TuiTracingSubscriberLayer
}

/// Fresh log pane state: everything at info and above shown.
pub fn new_state() -> TuiWidgetState {
    TuiWidgetState::new().set_default_display_level(tui_logger::LevelFilter::Info)
}

impl Widget for LogPane<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let t = self.ctx.theme;
        let (border, title, kind) = if self.focused {
            (
                t.style("ui.border.focus"),
                t.style("ui.title.focus"),
                BorderType::Thick,
            )
        } else {
            (t.style("ui.border"), t.style("ui.title"), BorderType::Plain)
        };
        TuiLoggerSmartWidget::default()
            .title_log(Line::styled(" Log ", title))
            .title_target(Line::styled(" Targets ", title))
            .border_style(border)
            .border_type(kind)
            .style(t.text("ui.text"))
            .highlight_style(t.style("ui.selection"))
            .style_error(t.text("log.error"))
            .style_warn(t.text("log.warn"))
            .style_info(t.text("log.info"))
            .style_debug(t.text("log.debug"))
            .style_trace(t.text("log.trace"))
            .output_separator(' ')
            .output_timestamp(Some("%H:%M:%S".to_string()))
            .output_level(Some(TuiLoggerLevelOutput::Abbreviated))
            .output_target(true)
            .output_file(false)
            .output_line(false)
            .state(self.ctx.log)
            .render(area, buf);
    }
}
