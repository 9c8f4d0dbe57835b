//! Pipeline files: TOML in, a validated `Pipeline` out, or errors that name
//! file:line:col and say how to fix them.

mod agents;
mod builder;
mod cache;
pub mod condition;
mod defaults;
mod duration;
mod error;
pub mod fan_out;
mod graph;
mod http_agent;
pub mod input;
mod limits;
mod load;
mod mask;
pub mod model;
mod output_schema;
mod paths;
mod phases;
mod range;
mod raw;
mod roles;
mod send_back;
mod suggest;
mod switch;

#[cfg(test)]
mod fixture_tests;

pub use builder::{PhaseBuilder, PipelineBuilder};
pub use duration::parse_duration;
pub use error::{Problem, SpecError};
pub use load::{load, parse, parse_kept};
pub use model::Pipeline;
pub use switch::{BY_DISABLE, IN_FILE, NOT_IN_ONLY};

/// 1-based line and column (in characters) of a byte offset in `text`.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    // An offset inside a character counts as that character.
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_from_one() {
        let text = "a = 1\nbé = 2\n";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 6), (2, 1));
        assert_eq!(line_col(text, 9), (2, 3));
        assert_eq!(line_col(text, 999), (3, 1));
        assert_eq!(line_col(text, 8), (2, 2));
    }
}
