//! A one-line text field with the editing keys a shell user expects.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LineEdit {
    text: String,
    /// In characters, not bytes.
    cursor: usize,
}

/// What a key did to the field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edit {
    Changed,
    /// Moved the cursor, or nothing.
    Same,
    Submit,
    Cancel,
}

impl LineEdit {
    pub fn new(text: &str) -> LineEdit {
        LineEdit {
            text: text.to_string(),
            cursor: text.chars().count(),
        }
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn cursor(&self) -> usize {
        self.cursor
    }

    fn byte(&self, char_idx: usize) -> usize {
        self.text
            .char_indices()
            .nth(char_idx)
            .map_or(self.text.len(), |(b, _)| b)
    }

    fn len(&self) -> usize {
        self.text.chars().count()
    }

    /// Removes characters `from..to` (character positions).
    fn cut(&mut self, from: usize, to: usize) -> Edit {
        if from >= to {
            return Edit::Same;
        }
        let (a, b) = (self.byte(from), self.byte(to));
        self.text.replace_range(a..b, "");
        self.cursor = from;
        Edit::Changed
    }

    /// Where the word before the cursor starts (ctrl-w).
    fn word_start(&self) -> usize {
        let chars: Vec<char> = self.text.chars().take(self.cursor).collect();
        let mut i = chars.len();
        while i > 0 && chars[i - 1].is_whitespace() {
            i -= 1;
        }
        while i > 0 && !chars[i - 1].is_whitespace() {
            i -= 1;
        }
        i
    }

    pub fn handle(&mut self, key: &KeyEvent) -> Edit {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        match key.code {
            KeyCode::Enter => Edit::Submit,
            KeyCode::Esc => Edit::Cancel,
            KeyCode::Char('c') if ctrl => Edit::Cancel,
            KeyCode::Char('a') if ctrl => self.move_to(0),
            KeyCode::Char('e') if ctrl => self.move_to(self.len()),
            KeyCode::Char('u') if ctrl => self.cut(0, self.cursor),
            KeyCode::Char('k') if ctrl => self.cut(self.cursor, self.len()),
            KeyCode::Char('w') if ctrl => self.cut(self.word_start(), self.cursor),
            KeyCode::Char(_) if ctrl || key.modifiers.contains(KeyModifiers::ALT) => Edit::Same,
            KeyCode::Char(c) => {
                let at = self.byte(self.cursor);
                self.text.insert(at, c);
                self.cursor += 1;
                Edit::Changed
            }
            KeyCode::Backspace if self.cursor > 0 => self.cut(self.cursor - 1, self.cursor),
            KeyCode::Delete => self.cut(self.cursor, (self.cursor + 1).min(self.len())),
            KeyCode::Left => self.move_to(self.cursor.saturating_sub(1)),
            KeyCode::Right => self.move_to((self.cursor + 1).min(self.len())),
            KeyCode::Home => self.move_to(0),
            KeyCode::End => self.move_to(self.len()),
            _ => Edit::Same,
        }
    }

    fn move_to(&mut self, to: usize) -> Edit {
        self.cursor = to;
        Edit::Same
    }

    /// The part of the text that fits `width` cells with the cursor in view,
    /// and the cursor's column within it.
    pub fn visible(&self, width: usize) -> (String, usize) {
        let width = width.max(1);
        let skip = (self.cursor + 1).saturating_sub(width);
        let shown: String = self.text.chars().skip(skip).take(width).collect();
        (shown, self.cursor - skip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    fn ctrl(c: char) -> KeyEvent {
        KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL)
    }

    fn typed(text: &str) -> LineEdit {
        let mut e = LineEdit::default();
        for c in text.chars() {
            e.handle(&key(KeyCode::Char(c)));
        }
        e
    }

    #[test]
    fn typing_moving_and_deleting() {
        let mut e = typed("helo");
        assert_eq!(e.handle(&key(KeyCode::Left)), Edit::Same);
        e.handle(&key(KeyCode::Char('l')));
        assert_eq!(e.text(), "hello");
        assert_eq!(e.cursor(), 4);
        e.handle(&key(KeyCode::Home));
        e.handle(&key(KeyCode::Delete));
        assert_eq!(e.text(), "ello");
        e.handle(&key(KeyCode::End));
        e.handle(&key(KeyCode::Backspace));
        assert_eq!(e.text(), "ell");
        e.handle(&key(KeyCode::Home));
        assert_eq!(e.handle(&key(KeyCode::Backspace)), Edit::Same);
    }

    #[test]
    fn shell_keys() {
        let mut e = typed("send it back");
        e.handle(&ctrl('w'));
        assert_eq!(e.text(), "send it ");
        e.handle(&ctrl('a'));
        e.handle(&key(KeyCode::Right));
        e.handle(&ctrl('k'));
        assert_eq!(e.text(), "s");
        e.handle(&ctrl('e'));
        e.handle(&ctrl('u'));
        assert_eq!(e.text(), "");
        assert_eq!(e.handle(&ctrl('x')), Edit::Same);
    }

    #[test]
    fn multibyte_text_edits_by_character() {
        let mut e = typed("naïve ✓");
        e.handle(&key(KeyCode::Backspace));
        e.handle(&key(KeyCode::Left));
        e.handle(&key(KeyCode::Left));
        e.handle(&key(KeyCode::Backspace));
        assert_eq!(e.text(), "naïe ");
    }

    #[test]
    fn enter_and_escape_end_editing() {
        let mut e = typed("x");
        assert_eq!(e.handle(&key(KeyCode::Enter)), Edit::Submit);
        assert_eq!(e.handle(&key(KeyCode::Esc)), Edit::Cancel);
        assert_eq!(e.handle(&ctrl('c')), Edit::Cancel);
    }

    #[test]
    fn long_text_scrolls_to_keep_the_cursor_visible() {
        let e = typed("abcdefghij");
        assert_eq!(e.visible(4), ("hij".to_string(), 3));
        let mut e = e;
        e.handle(&key(KeyCode::Home));
        assert_eq!(e.visible(4), ("abcd".to_string(), 0));
    }
}
