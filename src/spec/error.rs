//! Problems found in a pipeline file, and the error that carries them.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One thing wrong with a pipeline file, at a 1-based line and column.
///
/// `line` and `col` are 0 when the problem concerns the file as a whole
/// (for instance when it cannot be read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub line: usize,
    pub col: usize,
    pub message: String,
    /// How to fix it.
    pub help: Option<String>,
}

/// Everything wrong with one pipeline file.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", self.render())]
pub struct SpecError {
    /// The file as it was named to `load` or `parse`.
    pub file: PathBuf,
    /// In file order.
    pub problems: Vec<Problem>,
}

impl SpecError {
    /// An error about the file as a whole, with no position in it.
    pub(crate) fn whole_file(file: &Path, message: String, help: &str) -> SpecError {
        SpecError {
            file: file.to_path_buf(),
            problems: vec![Problem {
                line: 0,
                col: 0,
                message,
                help: Some(help.to_string()),
            }],
        }
    }

    /// One block per problem: `file:line:col: error: message`, then an
    /// indented `help:` line when there is one.
    fn render(&self) -> String {
        let file = self.file.display();
        let mut out = String::new();
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                out.push('\n');
            }
            let block = match p.line {
                0 => format!("{file}: error: {}", p.message),
                _ => format!("{file}:{}:{}: error: {}", p.line, p.col, p.message),
            };
            out.push_str(&block);
            if let Some(help) = &p.help {
                out.push_str("\n  help: ");
                out.push_str(help);
            }
        }
        out
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: error: {}", self.line, self.col, self.message)?;
        if let Some(help) = &self.help {
            write!(f, "\n  help: {help}")?;
        }
        Ok(())
    }
}

/// Collects problems while a file is checked, positioned by byte offsets into
/// its text so that they can be reported in file order at the end. Lines
/// and columns are worked out once, in one pass over the text for all the
/// problems, so that a file with many problems costs its size, not its
/// size times their number.
pub(crate) struct Diag<'t> {
    text: &'t str,
    found: Vec<(usize, Problem)>,
    /// Where each line starts, built when first asked for.
    line_starts: Option<Vec<usize>>,
}

impl<'t> Diag<'t> {
    pub(crate) fn new(text: &'t str) -> Diag<'t> {
        Diag {
            text,
            found: Vec::new(),
            line_starts: None,
        }
    }

    /// Records a problem at the start of `span`.
    pub(crate) fn error(
        &mut self,
        span: Range<usize>,
        message: impl Into<String>,
        help: impl Into<String>,
    ) {
        self.found.push((
            span.start,
            Problem {
                line: 0,
                col: 0,
                message: message.into(),
                help: Some(help.into()),
            },
        ));
    }

    /// The file's text.
    pub(crate) fn text(&self) -> &'t str {
        self.text
    }

    /// 1-based line of a byte offset, for help lines that point elsewhere.
    pub(crate) fn line_of(&mut self, offset: usize) -> usize {
        let text = self.text;
        let starts = self.line_starts.get_or_insert_with(|| {
            std::iter::once(0)
                .chain(text.match_indices('\n').map(|(i, _)| i + 1))
                .collect()
        });
        starts.partition_point(|&s| s <= offset).max(1)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.found.is_empty()
    }

    /// The problems in file order, or `None` when there are none.
    pub(crate) fn into_error(mut self, file: &Path) -> Option<SpecError> {
        if self.found.is_empty() {
            return None;
        }
        // Stable, so problems at one spot keep the order they were found in.
        self.found.sort_by_key(|(offset, _)| *offset);
        let mut walk = Walk::new(self.text);
        for (offset, p) in &mut self.found {
            (p.line, p.col) = walk.to(*offset);
        }
        Some(SpecError {
            file: file.to_path_buf(),
            problems: self.found.into_iter().map(|(_, p)| p).collect(),
        })
    }
}

/// Lines and columns of increasing offsets, in one pass over the text.
struct Walk<'t> {
    text: &'t str,
    at: usize,
    line: usize,
    col: usize,
}

impl<'t> Walk<'t> {
    fn new(text: &'t str) -> Walk<'t> {
        Walk {
            text,
            at: 0,
            line: 1,
            col: 1,
        }
    }

    /// The 1-based line and column (in characters) of `offset`, no lower
    /// than the last one asked for; as [`super::line_col`] gives them.
    fn to(&mut self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.text.len());
        // An offset inside a character counts as that character.
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        if offset > self.at {
            for c in self.text[self.at..offset].chars() {
                if c == '\n' {
                    self.line += 1;
                    self.col = 1;
                } else {
                    self.col += 1;
                }
            }
            self.at = offset;
        }
        (self.line, self.col)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_has_one_block_per_problem() {
        let err = SpecError {
            file: PathBuf::from("path/to/p.toml"),
            problems: vec![
                Problem {
                    line: 12,
                    col: 9,
                    message: "unknown agent \"fsat\"".into(),
                    help: Some("agents defined here are: documenter, fast".into()),
                },
                Problem {
                    line: 13,
                    col: 1,
                    message: "second".into(),
                    help: None,
                },
            ],
        };
        assert_eq!(
            err.to_string(),
            "path/to/p.toml:12:9: error: unknown agent \"fsat\"\n  help: agents defined here are: documenter, fast\npath/to/p.toml:13:1: error: second"
        );
    }

    #[test]
    fn whole_file_problems_have_no_position() {
        let err = SpecError::whole_file(Path::new("p.toml"), "cannot read it".into(), "check");
        assert_eq!(
            err.to_string(),
            "p.toml: error: cannot read it\n  help: check"
        );
    }

    #[test]
    fn positions_match_line_col_and_many_problems_cost_one_pass() {
        let text = "a = 1\nbé = \"x\"\n\n[t]\nz = 3";
        let offsets: Vec<usize> = (0..=text.len() + 2).collect();
        let mut d = Diag::new(text);
        for &o in offsets.iter().rev() {
            d.error(o..o, "here", "h");
        }
        let err = d.into_error(Path::new("x")).unwrap();
        for (p, &o) in err.problems.iter().zip(&offsets) {
            assert_eq!(
                (p.line, p.col),
                crate::spec::line_col(text, o),
                "offset {o}"
            );
        }
        let mut d = Diag::new(text);
        assert_eq!(
            (d.line_of(0), d.line_of(6), d.line_of(13), d.line_of(99)),
            (1, 2, 2, 5)
        );

        // 100,000 problems in a 1 MB file: one pass, not one per problem.
        let big = "[agents.a]\n".repeat(100_000);
        let mut d = Diag::new(&big);
        for i in 0..100_000 {
            d.error(i * 11..i * 11 + 1, "duplicate", "h");
            let _ = d.line_of(i * 11);
        }
        let err = d.into_error(Path::new("x")).unwrap();
        assert_eq!(err.problems[99_999].line, 100_000);
    }

    #[test]
    fn problems_come_out_in_file_order() {
        let text = "a\nb\nc\n";
        let mut d = Diag::new(text);
        d.error(4..5, "third", "h");
        d.error(0..1, "first", "h");
        d.error(2..3, "second", "h");
        let err = d.into_error(Path::new("x")).unwrap();
        let lines: Vec<usize> = err.problems.iter().map(|p| p.line).collect();
        assert_eq!(lines, [1, 2, 3]);
    }
}
