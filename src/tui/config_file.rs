//! Reading the dashboard's own TOML files (themes, key bindings) so that every
//! complaint names the file and the line to fix.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// A problem in a user's file. The dashboard still starts, with defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileWarning {
    pub path: PathBuf,
    /// From 1; 0 when the file could not be read at all.
    pub line: usize,
    pub message: String,
}

impl fmt::Display for FileWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.path.display(), self.message)
        } else {
            write!(f, "{}:{}: {}", self.path.display(), self.line, self.message)
        }
    }
}

/// One parsed file: its text and where it came from, for locating problems.
pub struct Source<'a> {
    pub path: &'a Path,
    pub text: &'a str,
}

impl<'a> Source<'a> {
    pub fn warning(&self, span: Range<usize>, message: impl Into<String>) -> FileWarning {
        FileWarning {
            path: self.path.to_path_buf(),
            line: crate::spec::line_col(self.text, span.start).0,
            message: message.into(),
        }
    }

    /// The document's top-level table, keeping spans for later complaints.
    pub fn parse(&self) -> Result<DeTable<'a>, FileWarning> {
        match DeTable::parse(self.text) {
            Ok(table) => Ok(table.into_inner()),
            Err(e) => Err(self.warning(e.span().unwrap_or(0..0), e.message().trim().to_string())),
        }
    }
}

pub fn read(path: &Path) -> Result<String, FileWarning> {
    std::fs::read_to_string(path).map_err(|e| FileWarning {
        path: path.to_path_buf(),
        line: 0,
        message: format!("cannot read: {e}"),
    })
}

/// A value's kind in words, for "expected a string, found a table".
pub fn kind(value: &DeValue<'_>) -> &'static str {
    match value {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a number",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

/// A string, or an array of strings; anything else is a warning.
pub fn strings<'v>(
    src: &Source<'_>,
    value: &'v Spanned<DeValue<'_>>,
) -> Result<Vec<(&'v str, Range<usize>)>, FileWarning> {
    match value.get_ref() {
        DeValue::String(s) => Ok(vec![(s.as_ref(), value.span())]),
        DeValue::Array(items) => items
            .iter()
            .map(|item| match item.get_ref() {
                DeValue::String(s) => Ok((s.as_ref(), item.span())),
                other => Err(src.warning(
                    item.span(),
                    format!("expected a string, found {}", kind(other)),
                )),
            })
            .collect(),
        other => Err(src.warning(
            value.span(),
            format!(
                "expected a string or an array of strings, found {}",
                kind(other)
            ),
        )),
    }
}
