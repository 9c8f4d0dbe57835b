//! One filter language for the dashboard's `/`, its `:` command line and the
//! CLI's `--where`:
//!
//! - `field:value` — `state`, `phase`, `agent`, `model` or `id` equals the
//!   value; `id:DEV-1*` with a trailing `*` is a prefix.
//! - `cost>0.10`, `tokens>5000`, `attempts>=3`, `waited>5m` — comparisons
//!   with `>`, `>=`, `<`, `<=` or `=`; `waited` takes a duration (`90s`,
//!   `5m`, `2h`, `1d`) and is how long a task has waited for a person.
//! - `/regex/` — matches the id, the reasons it waits for, or why it ended.
//! - a bare word — the id, state or current phase contains it (any case).
//! - `!` before any term negates it; terms joined by spaces mean all of them.
//!
//! Parsing never recurses, so no input can exhaust the stack; an error says
//! what is wrong and at which character.

use std::fmt;

/// Fields compared by value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    State,
    Phase,
    Agent,
    Model,
    Id,
}

impl Field {
    pub const ALL: [(Field, &'static str); 5] = [
        (Field::State, "state"),
        (Field::Phase, "phase"),
        (Field::Agent, "agent"),
        (Field::Model, "model"),
        (Field::Id, "id"),
    ];

    pub fn name(self) -> &'static str {
        Field::ALL
            .iter()
            .find(|(f, _)| *f == self)
            .map_or("?", |(_, n)| n)
    }
}

/// Fields compared as numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Number {
    /// Dollars known.
    Cost,
    Tokens,
    Attempts,
    /// Seconds since the oldest hold opened.
    Waited,
}

impl Number {
    pub const ALL: [(Number, &'static str); 4] = [
        (Number::Cost, "cost"),
        (Number::Tokens, "tokens"),
        (Number::Attempts, "attempts"),
        (Number::Waited, "waited"),
    ];

    pub fn name(self) -> &'static str {
        Number::ALL
            .iter()
            .find(|(f, _)| *f == self)
            .map_or("?", |(_, n)| n)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Gt,
    Ge,
    Lt,
    Le,
    Eq,
}

impl Op {
    pub fn sql(self) -> &'static str {
        match self {
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Eq => "=",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Test {
    Is {
        field: Field,
        value: String,
    },
    /// `id:PREFIX*`.
    IdPrefix(String),
    Compare {
        number: Number,
        op: Op,
        value: f64,
    },
    Regex(String),
    Text(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Term {
    pub negated: bool,
    pub test: Test,
}

/// Terms that must all hold.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    pub terms: Vec<Term>,
}

/// What is wrong with a filter, and at which character (from 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterError {
    pub at: usize,
    pub message: String,
}

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at character {}: {}", self.at + 1, self.message)
    }
}

impl std::error::Error for FilterError {}

impl Filter {
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// Parses a filter; an empty or blank text is the filter that keeps all.
    pub fn parse(text: &str) -> Result<Filter, FilterError> {
        let chars: Vec<char> = text.chars().collect();
        let mut terms = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            if chars[i].is_whitespace() {
                i += 1;
                continue;
            }
            let start = i;
            let mut negated = false;
            while i < chars.len() && chars[i] == '!' {
                negated = !negated;
                i += 1;
            }
            if i >= chars.len() || chars[i].is_whitespace() {
                return Err(FilterError {
                    at: start,
                    message: "`!` must come before a term, e.g. !state:failed".into(),
                });
            }
            let (test, next) = if chars[i] == '/' {
                regex_term(&chars, i)?
            } else {
                let end = (i..chars.len())
                    .find(|&j| chars[j].is_whitespace())
                    .unwrap_or(chars.len());
                (word_term(&chars, i, end)?, end)
            };
            terms.push(Term { negated, test });
            i = next;
        }
        Ok(Filter { terms })
    }
}

/// `/regex/`, ending at the next unescaped `/`.
fn regex_term(chars: &[char], start: usize) -> Result<(Test, usize), FilterError> {
    let mut j = start + 1;
    let mut pattern = String::new();
    while j < chars.len() {
        match chars[j] {
            '\\' if j + 1 < chars.len() && chars[j + 1] == '/' => {
                pattern.push('/');
                j += 2;
            }
            '/' => {
                if pattern.is_empty() {
                    return Err(FilterError {
                        at: start,
                        message: "an empty /regex/".into(),
                    });
                }
                if let Err(e) = regex::RegexBuilder::new(&pattern)
                    .size_limit(1 << 20)
                    .build()
                {
                    return Err(FilterError {
                        at: start + 1,
                        message: format!("not a regular expression: {e}"),
                    });
                }
                return Ok((Test::Regex(pattern), j + 1));
            }
            c => {
                pattern.push(c);
                j += 1;
            }
        }
    }
    Err(FilterError {
        at: start,
        message: "a /regex/ without its closing /".into(),
    })
}

fn word_term(chars: &[char], start: usize, end: usize) -> Result<Test, FilterError> {
    let word: String = chars[start..end].iter().collect();
    // A comparison: name, operator, number.
    if let Some(op_at) = chars[start..end]
        .iter()
        .position(|c| matches!(c, '>' | '<' | '='))
        .map(|p| start + p)
    {
        let name: String = chars[start..op_at].iter().collect();
        let Some((number, _)) = Number::ALL.iter().find(|(_, n)| *n == name) else {
            let known: Vec<&str> = Number::ALL.iter().map(|(_, n)| *n).collect();
            return Err(FilterError {
                at: start,
                message: format!(
                    "{name:?} cannot be compared; compare one of {}",
                    known.join(", ")
                ),
            });
        };
        let (op, len) = match (chars[op_at], chars.get(op_at + 1)) {
            ('>', Some('=')) => (Op::Ge, 2),
            ('<', Some('=')) => (Op::Le, 2),
            ('>', _) => (Op::Gt, 1),
            ('<', _) => (Op::Lt, 1),
            _ => (Op::Eq, 1),
        };
        let value_at = op_at + len;
        let value: String = chars[value_at..end].iter().collect();
        let parsed = if *number == Number::Waited {
            seconds(&value)
        } else {
            value.parse::<f64>().ok().filter(|v| v.is_finite())
        };
        let Some(value) = parsed else {
            let what = if *number == Number::Waited {
                "a duration such as 90s, 5m, 2h or 1d"
            } else {
                "a number"
            };
            return Err(FilterError {
                at: value_at,
                message: format!("{name} is compared with {what}, not {value:?}"),
            });
        };
        return Ok(Test::Compare {
            number: *number,
            op,
            value,
        });
    }
    if let Some(colon) = word.find(':') {
        let name = &word[..colon];
        let value = &word[colon + 1..];
        let Some((field, _)) = Field::ALL.iter().find(|(_, n)| *n == name) else {
            let known: Vec<&str> = Field::ALL.iter().map(|(_, n)| *n).collect();
            return Err(FilterError {
                at: start,
                message: format!("unknown field {name:?}; fields: {}", known.join(", ")),
            });
        };
        let value_at = start + name.chars().count() + 1;
        if value.is_empty() {
            return Err(FilterError {
                at: value_at,
                message: format!("{name}: needs a value, e.g. {name}:…"),
            });
        }
        if *field == Field::State && crate::engine::TaskState::parse(value).is_none() {
            let known: Vec<&str> = crate::engine::TaskState::ALL
                .iter()
                .map(|s| s.as_str())
                .collect();
            return Err(FilterError {
                at: value_at,
                message: format!("no state {value:?}; states: {}", known.join(", ")),
            });
        }
        if *field == Field::Id
            && let Some(prefix) = value.strip_suffix('*')
        {
            return Ok(Test::IdPrefix(prefix.to_string()));
        }
        return Ok(Test::Is {
            field: *field,
            value: value.to_string(),
        });
    }
    Ok(Test::Text(word))
}

/// `90s`, `5m`, `2h`, `1d`, or plain seconds.
fn seconds(text: &str) -> Option<f64> {
    let (num, unit) = match text.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => (&text[..i], &text[i..]),
        None => (text, "s"),
    };
    let n: f64 = num
        .parse()
        .ok()
        .filter(|v: &f64| v.is_finite() && *v >= 0.0)?;
    let scale = match unit {
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        "d" => 86400.0,
        _ => return None,
    };
    Some(n * scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Term {
        let f = Filter::parse(text).unwrap();
        assert_eq!(f.terms.len(), 1, "{text}");
        f.terms.into_iter().next().unwrap()
    }

    #[test]
    fn every_kind_of_term() {
        assert_eq!(
            one("phase:qa").test,
            Test::Is {
                field: Field::Phase,
                value: "qa".into()
            }
        );
        assert_eq!(one("id:DEV-1*").test, Test::IdPrefix("DEV-1".into()));
        assert_eq!(
            one("cost>0.10").test,
            Test::Compare {
                number: Number::Cost,
                op: Op::Gt,
                value: 0.10
            }
        );
        assert_eq!(
            one("attempts>=3").test,
            Test::Compare {
                number: Number::Attempts,
                op: Op::Ge,
                value: 3.0
            }
        );
        assert_eq!(
            one("waited>5m").test,
            Test::Compare {
                number: Number::Waited,
                op: Op::Gt,
                value: 300.0
            }
        );
        assert_eq!(one("/DEV-1\\/2/").test, Test::Regex("DEV-1/2".into()));
        assert_eq!(one("draft").test, Test::Text("draft".into()));
        let neg = one("!state:failed");
        assert!(neg.negated);
        assert!(!one("!!state:failed").negated);
        let f = Filter::parse("  phase:qa   state:awaiting_review  /x y/ ").unwrap();
        assert_eq!(f.terms.len(), 3);
        assert_eq!(f.terms[2].test, Test::Regex("x y".into()));
        assert!(Filter::parse("").unwrap().is_empty());
    }

    #[test]
    fn errors_point_at_the_character() {
        let cases = [
            ("phase:qa colour:red", 9, "unknown field"),
            ("state:done", 6, "no state"),
            ("cost>cheap", 5, "a number"),
            ("waited>5mins", 7, "duration"),
            ("height>3", 0, "cannot be compared"),
            ("/unclosed", 0, "closing"),
            ("/(/", 1, "not a regular expression"),
            ("phase:", 6, "needs a value"),
            ("a !", 2, "`!`"),
        ];
        for (text, at, what) in cases {
            let e = Filter::parse(text).unwrap_err();
            assert_eq!(e.at, at, "{text}: {e}");
            assert!(e.message.contains(what), "{text}: {e}");
        }
    }

    /// Generated input: whatever the text, parsing ends with a filter or an
    /// error inside the text, never a panic, and deep nesting costs nothing.
    #[test]
    fn generated_input_never_panics() {
        let alphabet: Vec<char> = "ab:!/<>=.*\\ 0123456789stateidphasewaitedcostm()[]{}\"'é😀\t"
            .chars()
            .collect();
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let cases = std::env::var("BATON_FUZZ_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(20_000u64);
        let (mut ok, mut err) = (0, 0);
        for _ in 0..cases {
            let len = (next() % 40) as usize;
            let text: String = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            match Filter::parse(&text) {
                Ok(_) => ok += 1,
                Err(e) => {
                    err += 1;
                    assert!(e.at <= text.chars().count(), "{text:?}: {e}");
                }
            }
        }
        assert_eq!(ok + err, cases);
        let deep = "!".repeat(100_000) + "state:failed";
        assert!(Filter::parse(&deep).is_ok());
        let wide = "x ".repeat(50_000);
        assert_eq!(Filter::parse(&wide).unwrap().terms.len(), 50_000);
    }
}
