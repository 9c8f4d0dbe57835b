//! Changes to a file's bytes: cut, added (some not UTF-8), truncated,
//! lines doubled or swapped, numbers and durations swapped for extreme
//! ones, a snippet repeated thousands of times.

use proptest::prelude::*;

use crate::fuzz_support::{duration_text, float_text, integer_text, toml_string};

/// One change to a file's bytes.
#[derive(Debug, Clone)]
enum Edit {
    Cut(prop::sample::Index, usize),
    Insert(prop::sample::Index, Vec<u8>),
    Truncate(prop::sample::Index),
    DoubleLine(prop::sample::Index),
    SwapLines(prop::sample::Index, prop::sample::Index),
    /// The number or quoted duration at a place becomes another.
    Replace(prop::sample::Index, String),
    /// Many copies of a snippet at a place.
    Repeat(prop::sample::Index, Vec<u8>, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    let index = any::<prop::sample::Index>;
    let snippet = prop_oneof![
        prop::sample::select(vec![
            "[",
            "]",
            "{",
            "}",
            "\"",
            "'",
            "=",
            "\n",
            ",",
            ".",
            "#",
            "[[phases]]\n",
            "[agents.a]\n",
            "when = \"",
            "not ",
            "(",
            ")",
            "\"\"\"",
            "'''",
            "\\u0000",
            "\\",
            "..",
            "\r\n",
            "\t",
            "é",
            "\u{202e}",
        ])
        .prop_map(|s| s.as_bytes().to_vec()),
        prop::collection::vec(any::<u8>(), 1..4),
    ];
    prop_oneof![
        (index(), 1usize..40).prop_map(|(i, n)| Edit::Cut(i, n)),
        (index(), snippet.clone()).prop_map(|(i, s)| Edit::Insert(i, s)),
        index().prop_map(Edit::Truncate),
        index().prop_map(Edit::DoubleLine),
        (index(), index()).prop_map(|(a, b)| Edit::SwapLines(a, b)),
        (
            index(),
            prop_oneof![integer_text(), float_text(), duration_text()]
        )
            .prop_map(|(i, s)| Edit::Replace(i, s)),
        (
            index(),
            snippet,
            prop_oneof![12 => 1usize..100, 1 => 1_000usize..20_000]
        )
            .prop_map(|(i, s, n)| Edit::Repeat(i, s, n)),
    ]
}

fn line_starts(bytes: &[u8]) -> Vec<usize> {
    std::iter::once(0)
        .chain(
            bytes
                .iter()
                .enumerate()
                .filter(|(_, b)| **b == b'\n')
                .map(|(i, _)| i + 1),
        )
        .collect()
}

fn apply(bytes: &mut Vec<u8>, edit: Edit) {
    let len = bytes.len();
    match edit {
        Edit::Cut(at, n) => {
            let i = at.index(len + 1);
            bytes.drain(i..(i + n).min(len));
        }
        Edit::Insert(at, s) => {
            let i = at.index(len + 1);
            bytes.splice(i..i, s);
        }
        Edit::Truncate(at) => bytes.truncate(at.index(len + 1)),
        Edit::DoubleLine(at) => {
            let starts = line_starts(bytes);
            let s = starts[at.index(starts.len())];
            let e = bytes[s..]
                .iter()
                .position(|b| *b == b'\n')
                .map_or(len, |p| s + p + 1);
            let line = bytes[s..e].to_vec();
            bytes.splice(s..s, line);
        }
        Edit::SwapLines(a, b) => {
            let text = String::from_utf8_lossy(bytes).into_owned();
            let mut lines: Vec<&str> = text.split('\n').collect();
            let n = lines.len();
            lines.swap(a.index(n), b.index(n));
            *bytes = lines.join("\n").into_bytes();
        }
        Edit::Replace(at, with) => {
            // The digit run or quoted text at or after the place.
            let i = at.index(len + 1);
            let Some(start) = bytes[i..]
                .iter()
                .position(|b| b.is_ascii_digit() || *b == b'"')
                .map(|p| i + p)
            else {
                return;
            };
            let end = if bytes[start] == b'"' {
                bytes[start + 1..]
                    .iter()
                    .position(|b| *b == b'"')
                    .map_or(len, |p| start + p + 2)
            } else {
                bytes[start..]
                    .iter()
                    .position(|b| !(b.is_ascii_alphanumeric() || *b == b'_' || *b == b'.'))
                    .map_or(len, |p| start + p)
            };
            let with = if bytes[start] == b'"' {
                toml_string(&with)
            } else {
                with
            };
            bytes.splice(start..end, with.into_bytes());
        }
        Edit::Repeat(at, s, n) => {
            let i = at.index(len + 1);
            let many: Vec<u8> = s.iter().copied().cycle().take(s.len() * n).collect();
            bytes.splice(i..i, many);
        }
    }
}

pub fn mutated(bases: impl Strategy<Value = String>) -> impl Strategy<Value = Vec<u8>> {
    (bases, prop::collection::vec(edit(), 1..6)).prop_map(|(base, edits)| {
        let mut bytes = base.into_bytes();
        for e in edits {
            apply(&mut bytes, e);
        }
        bytes
    })
}
