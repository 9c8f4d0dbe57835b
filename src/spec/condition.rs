//! Conditions on a task's input, as routes write them:
//!
//! ```text
//! input.risk == 'high'
//! input.pages > 20 and not input.draft
//! (input.payer == "Aetna" or input.payer == "Cigna") and input.urgent
//! ```
//!
//! A path (`input.a.b`) alone is true when the field is present and neither
//! null nor false. `==` and `!=` compare any JSON values (numbers by value);
//! `<`, `<=`, `>`, `>=` compare two numbers or two strings and are false for
//! anything else, as is every comparison with a missing field but `!=`.
//!
//! Parentheses and `not`s nest at most [`MAX_DEPTH`] deep; the parser counts
//! them as it goes and stops at the first one past the limit, so no
//! condition (however long) can exhaust the stack. Chains of `and` and `or`
//! are flat lists, as long as one likes.

use std::cmp::Ordering;

use serde_json::Value;

/// How deep parentheses and `not`s may nest in one condition.
pub const MAX_DEPTH: usize = 64;

/// A parsed condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// Two or more alternatives; true when any holds.
    Or(Vec<Condition>),
    /// Two or more terms; true when all hold.
    And(Vec<Condition>),
    Not(Box<Condition>),
    Compare(Operand, Op, Operand),
    Truthy(Operand),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    /// Field names under `input`.
    Path(Vec<String>),
    Literal(Value),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// A problem in a condition: where (a byte offset into it) and what.
#[derive(Debug, Clone, PartialEq)]
pub struct ConditionError {
    pub offset: usize,
    pub message: String,
}

impl Condition {
    pub fn parse(text: &str) -> Result<Condition, ConditionError> {
        let tokens = lex(text)?;
        let mut p = Parser {
            tokens,
            pos: 0,
            end: text.len(),
            depth: 0,
        };
        let c = p.or()?;
        if let Some(t) = p.peek() {
            return Err(p.error_at(t.offset, format!("unexpected {}", t.kind.show())));
        }
        Ok(c)
    }

    /// Whether the condition holds for a task's input.
    pub fn eval(&self, input: &Value) -> bool {
        match self {
            Condition::Or(all) => all.iter().any(|c| c.eval(input)),
            Condition::And(all) => all.iter().all(|c| c.eval(input)),
            Condition::Not(c) => !c.eval(input),
            Condition::Truthy(o) => !matches!(
                o.value(input),
                None | Some(Value::Null | Value::Bool(false))
            ),
            Condition::Compare(a, op, b) => compare(a.value(input), *op, b.value(input)),
        }
    }
}

impl Operand {
    fn value<'a>(&'a self, input: &'a Value) -> Option<&'a Value> {
        match self {
            Operand::Literal(v) => Some(v),
            Operand::Path(fields) => fields.iter().try_fold(input, |v, f| v.get(f)),
        }
    }
}

fn compare(a: Option<&Value>, op: Op, b: Option<&Value>) -> bool {
    let (Some(a), Some(b)) = (a, b) else {
        return op == Op::Ne;
    };
    let equal = match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) if a.is_number() && b.is_number() => x == y,
        _ => a == b,
    };
    let order = match (a, b) {
        (Value::Number(_), Value::Number(_)) => a
            .as_f64()
            .zip(b.as_f64())
            .and_then(|(x, y)| x.partial_cmp(&y)),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        _ => None,
    };
    match op {
        Op::Eq => equal,
        Op::Ne => !equal,
        Op::Lt => order == Some(Ordering::Less),
        Op::Le => matches!(order, Some(Ordering::Less | Ordering::Equal)),
        Op::Gt => order == Some(Ordering::Greater),
        Op::Ge => matches!(order, Some(Ordering::Greater | Ordering::Equal)),
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Path(Vec<String>),
    Literal(Value),
    Op(Op),
    And,
    Or,
    Not,
    Open,
    Close,
}

impl Kind {
    fn show(&self) -> String {
        match self {
            Kind::Path(p) => format!("`input.{}`", p.join(".")),
            Kind::Literal(v) => format!("`{v}`"),
            Kind::Op(op) => format!("`{}`", op_text(*op)),
            Kind::And => "`and`".into(),
            Kind::Or => "`or`".into(),
            Kind::Not => "`not`".into(),
            Kind::Open => "`(`".into(),
            Kind::Close => "`)`".into(),
        }
    }
}

fn op_text(op: Op) -> &'static str {
    match op {
        Op::Eq => "==",
        Op::Ne => "!=",
        Op::Lt => "<",
        Op::Le => "<=",
        Op::Gt => ">",
        Op::Ge => ">=",
    }
}

#[derive(Debug, Clone)]
struct Token {
    kind: Kind,
    offset: usize,
}

fn err(offset: usize, message: impl Into<String>) -> ConditionError {
    ConditionError {
        offset,
        message: message.into(),
    }
}

fn lex(text: &str) -> Result<Vec<Token>, ConditionError> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        let kind = match c {
            b' ' | b'\t' => {
                i += 1;
                continue;
            }
            b'(' => {
                i += 1;
                Kind::Open
            }
            b')' => {
                i += 1;
                Kind::Close
            }
            b'=' | b'!' | b'<' | b'>' => {
                let two = bytes.get(i + 1) == Some(&b'=');
                i += if two { 2 } else { 1 };
                Kind::Op(match (c, two) {
                    (b'=', true) => Op::Eq,
                    (b'!', true) => Op::Ne,
                    (b'<', true) => Op::Le,
                    (b'>', true) => Op::Ge,
                    (b'<', false) => Op::Lt,
                    (b'>', false) => Op::Gt,
                    (b'=', false) => return Err(err(start, "`=` is not a comparison; write `==`")),
                    _ => {
                        return Err(err(
                            start,
                            "`!` alone is not an operator; write `!=`, or `not` to negate",
                        ));
                    }
                })
            }
            b'\'' | b'"' => {
                let close = text[i + 1..]
                    .find(c as char)
                    .ok_or_else(|| err(start, "the string is not closed"))?;
                let s = &text[i + 1..i + 1 + close];
                i += close + 2;
                Kind::Literal(Value::String(s.to_string()))
            }
            b'0'..=b'9' | b'-' | b'.' => {
                while i < bytes.len()
                    && matches!(
                        bytes[i],
                        b'0'..=b'9' | b'-' | b'.' | b'e' | b'E' | b'+' | b'_'
                    )
                {
                    i += 1;
                }
                let word = text[start..i].replace('_', "");
                let n: f64 = word
                    .parse()
                    .map_err(|_| err(start, format!("`{}` is not a number", &text[start..i])))?;
                let v = if n.fract() == 0.0 && n.abs() < 9e15 && !word.contains(['.', 'e', 'E']) {
                    Value::from(n as i64)
                } else {
                    serde_json::Number::from_f64(n)
                        .map(Value::Number)
                        .ok_or_else(|| err(start, "the number is out of range"))?
                };
                Kind::Literal(v)
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric() || matches!(bytes[i], b'_' | b'-' | b'.'))
                {
                    i += 1;
                }
                let word = &text[start..i];
                match word {
                    "and" => Kind::And,
                    "or" => Kind::Or,
                    "not" => Kind::Not,
                    "true" => Kind::Literal(Value::Bool(true)),
                    "false" => Kind::Literal(Value::Bool(false)),
                    "null" => Kind::Literal(Value::Null),
                    _ => {
                        let mut parts = word.split('.');
                        if parts.next() != Some("input") {
                            return Err(err(
                                start,
                                format!("unknown name `{word}`: fields are written input.NAME"),
                            ));
                        }
                        let fields: Vec<String> = parts.map(str::to_string).collect();
                        if fields.is_empty() || fields.iter().any(String::is_empty) {
                            return Err(err(
                                start,
                                format!("`{word}` names no field: write input.NAME"),
                            ));
                        }
                        Kind::Path(fields)
                    }
                }
            }
            _ => {
                let ch = text[i..].chars().next().unwrap_or('?');
                return Err(err(start, format!("unexpected `{ch}`")));
            }
        };
        out.push(Token {
            kind,
            offset: start,
        });
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    end: usize,
    /// Parentheses and `not`s open around the token being read.
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next_if(&mut self, want: &Kind) -> bool {
        if self.peek().is_some_and(|t| &t.kind == want) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn error_at(&self, offset: usize, message: String) -> ConditionError {
        err(offset, message)
    }

    fn or(&mut self) -> Result<Condition, ConditionError> {
        let mut terms = vec![self.and()?];
        while self.next_if(&Kind::Or) {
            terms.push(self.and()?);
        }
        Ok(match terms.len() {
            1 => terms.remove(0),
            _ => Condition::Or(terms),
        })
    }

    fn and(&mut self) -> Result<Condition, ConditionError> {
        let mut terms = vec![self.not()?];
        while self.next_if(&Kind::And) {
            terms.push(self.not()?);
        }
        Ok(match terms.len() {
            1 => terms.remove(0),
            _ => Condition::And(terms),
        })
    }

    /// One level deeper, for the `(` or `not` at `offset`; an error there
    /// past [`MAX_DEPTH`].
    fn enter(&mut self, offset: usize) -> Result<(), ConditionError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error_at(
                offset,
                format!(
                    "the condition nests deeper than {MAX_DEPTH} levels of parentheses and `not` here; write it flatter"
                ),
            ));
        }
        Ok(())
    }

    /// `not`s in a row are counted in a loop, not by recursion.
    fn not(&mut self) -> Result<Condition, ConditionError> {
        let mut nots = 0;
        while let Some(offset) = self
            .peek()
            .filter(|t| t.kind == Kind::Not)
            .map(|t| t.offset)
        {
            self.pos += 1;
            self.enter(offset)?;
            nots += 1;
        }
        let mut c = self.comparison()?;
        for _ in 0..nots {
            c = Condition::Not(Box::new(c));
        }
        self.depth -= nots;
        Ok(c)
    }

    fn comparison(&mut self) -> Result<Condition, ConditionError> {
        if let Some(offset) = self
            .peek()
            .filter(|t| t.kind == Kind::Open)
            .map(|t| t.offset)
        {
            self.pos += 1;
            self.enter(offset)?;
            let inner = self.or()?;
            if !self.next_if(&Kind::Close) {
                let at = self.peek().map_or(self.end, |t| t.offset);
                return Err(self.error_at(at, "expected `)`".into()));
            }
            self.depth -= 1;
            return Ok(inner);
        }
        let left = self.operand()?;
        if let Some(Token {
            kind: Kind::Op(op), ..
        }) = self.peek().cloned()
        {
            self.pos += 1;
            let right = self.operand()?;
            return Ok(Condition::Compare(left, op, right));
        }
        Ok(Condition::Truthy(left))
    }

    fn operand(&mut self) -> Result<Operand, ConditionError> {
        match self.peek().cloned() {
            Some(Token {
                kind: Kind::Path(p),
                ..
            }) => {
                self.pos += 1;
                Ok(Operand::Path(p))
            }
            Some(Token {
                kind: Kind::Literal(v),
                ..
            }) => {
                self.pos += 1;
                Ok(Operand::Literal(v))
            }
            Some(t) => Err(self.error_at(
                t.offset,
                format!("expected a field or a value, found {}", t.kind.show()),
            )),
            None => Err(self.error_at(self.end, "the condition ends too soon".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn holds(cond: &str, input: Value) -> bool {
        Condition::parse(cond).unwrap().eval(&input)
    }

    #[test]
    fn comparisons_of_strings_numbers_and_paths() {
        let input = json!({"risk": "high", "pages": 30, "ratio": 0.5, "meta": {"lang": "de"}, "draft": false});
        assert!(holds("input.risk == 'high'", input.clone()));
        assert!(holds("input.risk != \"low\"", input.clone()));
        assert!(holds("input.pages > 20", input.clone()));
        assert!(holds("input.pages >= 30.0", input.clone()));
        assert!(!holds("input.pages < 30", input.clone()));
        assert!(holds("input.ratio <= 0.5", input.clone()));
        assert!(holds("input.meta.lang == 'de'", input.clone()));
        assert!(!holds("input.draft", input.clone()));
        assert!(holds("input.risk", input.clone()));
        assert!(!holds("input.missing", input.clone()));
        assert!(!holds("input.missing == 'x'", input.clone()));
        assert!(holds("input.missing != 'x'", input.clone()));
        assert!(!holds("input.risk > 5", input));
    }

    #[test]
    fn and_binds_tighter_than_or_and_not_and_parentheses_work() {
        let input = json!({"a": 1, "b": 2});
        assert!(holds(
            "input.a == 1 or input.b == 9 and input.a == 9",
            input.clone()
        ));
        assert!(!holds(
            "(input.a == 1 or input.b == 9) and input.a == 9",
            input.clone()
        ));
        assert!(holds("not input.c and input.b == 2", input.clone()));
        assert!(holds("not (input.a == 2)", input));
    }

    #[test]
    fn nesting_past_the_limit_is_an_error_at_the_first_level_too_deep() {
        let ok = format!("{}input.a{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
        assert!(holds(&ok, json!({"a": 1})));
        let ok = format!("{}input.a", "not ".repeat(MAX_DEPTH));
        assert!(holds(&ok, json!({"a": 1})), "an even number of nots");
        let mixed = format!(
            "{}input.a{}",
            "not (".repeat(MAX_DEPTH / 2),
            ")".repeat(MAX_DEPTH / 2)
        );
        assert!(Condition::parse(&mixed).is_ok());

        let deep = format!("{}input.a{}", "(".repeat(10_000), ")".repeat(10_000));
        let e = Condition::parse(&deep).unwrap_err();
        assert_eq!(e.offset, MAX_DEPTH, "the 65th parenthesis");
        assert!(e.message.contains("deeper than 64 levels"), "{}", e.message);
        let nots = format!("{}input.a", "not ".repeat(100_000));
        let e = Condition::parse(&nots).unwrap_err();
        assert_eq!(e.offset, 4 * MAX_DEPTH, "the 65th not");
        let mixed = format!(
            "{}input.a{}",
            "not (".repeat(MAX_DEPTH),
            ")".repeat(MAX_DEPTH)
        );
        assert_eq!(
            Condition::parse(&mixed).unwrap_err().offset,
            5 * (MAX_DEPTH / 2),
            "the 33rd not"
        );
        // Siblings do not add up: depth is per path.
        let siblings =
            vec![format!("{}input.a{}", "(".repeat(60), ")".repeat(60)); 100].join(" and ");
        assert!(Condition::parse(&siblings).is_ok());
    }

    #[test]
    fn long_flat_chains_parse_evaluate_and_drop_without_recursion() {
        let chain = vec!["input.a == 1"; 200_000].join(" and ");
        let c = Condition::parse(&chain).unwrap();
        assert!(c.eval(&json!({"a": 1})));
        assert!(!c.eval(&json!({"a": 2})));
        let either = vec!["input.a == 1"; 200_000].join(" or ");
        assert!(Condition::parse(&either).unwrap().eval(&json!({"a": 1})));
        let copy = c.clone();
        assert_eq!(copy, c);
        drop(copy);
    }

    #[test]
    fn problems_say_where() {
        let e = Condition::parse("input.risk = 'high'").unwrap_err();
        assert_eq!(e.offset, 11);
        assert!(e.message.contains("write `==`"));
        let e = Condition::parse("risk == 'high'").unwrap_err();
        assert_eq!(e.offset, 0);
        assert!(e.message.contains("input.NAME"), "{}", e.message);
        let e = Condition::parse("input.risk == 'high").unwrap_err();
        assert_eq!(e.offset, 14);
        let e = Condition::parse("input.a ==").unwrap_err();
        assert_eq!(e.offset, 10);
        let e = Condition::parse("(input.a").unwrap_err();
        assert!(e.message.contains("`)`"));
        let e = Condition::parse("input.a input.b").unwrap_err();
        assert_eq!(e.offset, 8);
        assert!(Condition::parse("").is_err());
    }
}
