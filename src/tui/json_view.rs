//! A phase's output as pretty-printed, highlighted JSON lines.

use ratatui::style::Style;
use ratatui::text::{Line, Span};
use serde_json::Value;

use super::theme::Theme;

/// Lines kept per output; a huge output should not make each frame slow.
pub const MAX_LINES: usize = 400;

/// `value` pretty-printed, each line indented by `indent`, at most
/// `MAX_LINES` of them with a last line saying how many were left out.
pub fn json_lines(value: &Value, indent: &str, theme: &Theme) -> Vec<Line<'static>> {
    let pretty =
        serde_json::to_string_pretty(value).unwrap_or_else(|e| format!("<unprintable: {e}>"));
    let total = pretty.lines().count();
    let mut lines: Vec<Line<'static>> = pretty
        .lines()
        .take(MAX_LINES)
        .map(|l| highlight(l, indent, theme))
        .collect();
    if total > MAX_LINES {
        lines.push(Line::styled(
            format!("{indent}… {} more lines", total - MAX_LINES),
            theme.text("ui.text.dim"),
        ));
    }
    lines
}

fn highlight(line: &str, indent: &str, theme: &Theme) -> Line<'static> {
    let mut spans = vec![Span::raw(indent.to_string())];
    let chars: Vec<char> = line.chars().collect();
    let mut i = 0;
    let push = |spans: &mut Vec<Span<'static>>, text: String, style: Style| {
        spans.push(Span::styled(text, style))
    };
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i = (i + 1).min(chars.len());
            let rest = chars[i..].iter().find(|c| !c.is_whitespace());
            let scope = if rest == Some(&':') {
                "json.key"
            } else {
                "json.string"
            };
            push(
                &mut spans,
                chars[start..i].iter().collect(),
                theme.text(scope),
            );
        } else if c == '-' || c.is_ascii_digit() {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || "+-.".contains(chars[i]))
            {
                i += 1;
            }
            push(
                &mut spans,
                chars[start..i].iter().collect(),
                theme.text("json.number"),
            );
        } else if c.is_ascii_alphabetic() {
            while i < chars.len() && chars[i].is_ascii_alphabetic() {
                i += 1;
            }
            push(
                &mut spans,
                chars[start..i].iter().collect(),
                theme.text("json.literal"),
            );
        } else if c.is_whitespace() {
            while i < chars.len() && chars[i].is_whitespace() {
                i += 1;
            }
            spans.push(Span::raw(chars[start..i].iter().collect::<String>()));
        } else {
            i += 1;
            push(&mut spans, c.to_string(), theme.text("json.punct"));
        }
    }
    Line::from(spans)
}

#[cfg(test)]
mod tests {
    use ratatui::style::Color;
    use serde_json::json;

    use super::*;

    fn text(line: &Line<'_>) -> String {
        line.spans.iter().map(|s| s.content.as_ref()).collect()
    }

    #[test]
    fn pretty_prints_with_indent() {
        let lines = json_lines(
            &json!({"a": [1, true], "b": "x\"y"}),
            "  ",
            &Theme::default(),
        );
        let texts: Vec<_> = lines.iter().map(text).collect();
        assert_eq!(
            texts,
            [
                "  {",
                "    \"a\": [",
                "      1,",
                "      true",
                "    ],",
                "    \"b\": \"x\\\"y\"",
                "  }"
            ]
        );
    }

    #[test]
    fn keys_and_values_get_their_own_scopes() {
        let mut styles = std::collections::HashMap::new();
        styles.insert("json.key".to_string(), Style::new().fg(Color::Blue));
        styles.insert("json.string".to_string(), Style::new().fg(Color::Green));
        let theme = Theme::new("t", styles);
        let line = highlight("  \"k\": \"v\",", "", &theme);
        let key = line.spans.iter().find(|s| s.content == "\"k\"").unwrap();
        let val = line.spans.iter().find(|s| s.content == "\"v\"").unwrap();
        assert_eq!(key.style.fg, Some(Color::Blue));
        assert_eq!(val.style.fg, Some(Color::Green));
    }

    #[test]
    fn long_outputs_are_cut_with_a_count() {
        let big = Value::Array((0..1000).map(Value::from).collect());
        let lines = json_lines(&big, "", &Theme::default());
        assert_eq!(lines.len(), MAX_LINES + 1);
        assert!(text(lines.last().unwrap()).contains("602 more lines"));
    }
}
