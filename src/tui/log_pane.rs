//! The log pane: the run's events as they happen and the warnings of the
//! engine and the dashboard ([`super::run_feed`]), newest at the bottom,
//! wrapped to the pane's width, filtered with `/`, scrolled with the move
//! keys (esc follows the end again). `L` switches to baton's own log (all
//! of `tracing`, with tui-logger's target list) and back.

use crossterm::event::{KeyCode, KeyEvent};
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{BorderType, Paragraph, Widget, Wrap};
use tui_logger::{TuiLoggerLevelOutput, TuiLoggerSmartWidget, TuiWidgetEvent, TuiWidgetState};

use super::action::Action;
use super::run_feed::Tone;
use super::widgets::{Ctx, pane_block};

pub struct LogPane<'a> {
    pub ctx: &'a Ctx<'a>,
    pub focused: bool,
}

/// The keys the log pane takes beyond the keymap, and what they mean to it.
pub const LOG_KEYS: &[(&str, &str)] = &[
    ("L", "the run's events / baton's own log"),
    ("/", "filter the run's events"),
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

impl LogPane<'_> {
    /// The run's events, filtered, as lines to wrap.
    fn run_lines(&self) -> Vec<Line<'static>> {
        let (ctx, t) = (self.ctx, self.ctx.theme);
        let tz = ctx.tz;
        ctx.feed
            .matching(&ctx.state.log_filter)
            .map(|l| {
                let style = match l.tone {
                    Tone::Done => t.text("state.completed"),
                    Tone::Failed => t.text("state.failed"),
                    Tone::Waiting => t.text("state.awaiting_review"),
                    Tone::Decision => t.text("ui.text"),
                    Tone::Info => t.text("ui.text.dim"),
                    Tone::Warn => t.text("log.warn"),
                    Tone::Error => t.text("log.error"),
                };
                let clock = l.at.to_zoned(tz.clone()).strftime("%H:%M:%S").to_string();
                Line::from(vec![
                    Span::styled(format!("{clock} "), t.text("ui.text.dim")),
                    Span::styled(l.text.clone(), style),
                ])
            })
            .collect()
    }

    fn render_run(self, area: Rect, buf: &mut Buffer) {
        let (ctx, t) = (self.ctx, self.ctx.theme);
        let lines = self.run_lines();
        let width = area.width.saturating_sub(2);
        let room = area.height.saturating_sub(2) as usize;
        let wrap = Wrap { trim: false };
        let total = Paragraph::new(lines.clone()).wrap(wrap).line_count(width);
        // Scrolled up from the newest rows, at most to the first.
        let up = ctx.state.log_scroll.min(total.saturating_sub(room));
        let top = total.saturating_sub(room + up);
        let mut title = " Log · the run's events ".to_string();
        if !ctx.state.log_filter.is_empty() {
            title.push_str(&format!("matching {:?} ", ctx.state.log_filter));
        }
        if up > 0 {
            title.push_str(&format!("· {up} rows up (esc: newest) "));
        }
        let empty = lines.is_empty();
        Paragraph::new(lines)
            .wrap(wrap)
            .scroll((top.min(u16::MAX as usize) as u16, 0))
            .block(pane_block(title, self.focused, t))
            .style(t.text("ui.text"))
            .render(area, buf);
        if empty {
            let inner = Rect {
                x: area.x + 1,
                y: area.y + 1,
                width,
                height: area.height.saturating_sub(2),
            };
            let msg = if ctx.feed.is_empty() {
                "tasks finished and failed, retries, holds, decisions and warnings show here"
            } else {
                "nothing matches the filter (esc clears it)"
            };
            Line::styled(msg, t.text("ui.text.dim")).render(inner, buf);
        }
    }
}

impl Widget for LogPane<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        if !self.ctx.state.log_own {
            self.render_run(area, buf);
            return;
        }
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
            .title_log(Line::styled(
                " baton's own log (L: the run's events) ",
                title,
            ))
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
