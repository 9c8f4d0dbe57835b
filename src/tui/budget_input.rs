//! What the operator types in the budget prompt: new limits such as
//! `$1.50`, `20000 tok`, `$30 2M tok` or `usd=1.5 tokens=20k`.

/// New limits, at least one of them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NewLimits {
    pub usd: Option<f64>,
    pub tokens: Option<u64>,
}

const FORMS: &str = "type $1.50 for dollars, 20000 tok (or 20k tok) for tokens, or both";

/// Reads the prompt's text; the error says what to type instead.
pub fn parse(text: &str) -> Result<NewLimits, String> {
    let mut out = NewLimits {
        usd: None,
        tokens: None,
    };
    let words: Vec<&str> = text
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|w| !w.is_empty())
        .collect();
    if words.is_empty() {
        return Err(FORMS.to_string());
    }
    let mut i = 0;
    while i < words.len() {
        let w = words[i];
        let next_is = |names: &[&str]| words.get(i + 1).is_some_and(|n| names.contains(n));
        let (usd, tokens, used) = if let Some(v) = w.strip_prefix("usd=") {
            (Some(dollars(v)?), None, 1)
        } else if let Some(v) = w.strip_prefix("tokens=") {
            (None, Some(count(v)?), 1)
        } else if let Some(v) = w.strip_prefix('$') {
            (Some(dollars(v)?), None, 1)
        } else if let Some(v) = w.strip_suffix("tokens").or_else(|| w.strip_suffix("tok")) {
            (None, Some(count(v)?), 1)
        } else if next_is(&["tok", "tokens"]) {
            (None, Some(count(w)?), 2)
        } else if next_is(&["usd", "$"]) {
            (Some(dollars(w)?), None, 2)
        } else {
            return Err(format!("\"{w}\" is neither: {FORMS}"));
        };
        if usd.is_some() {
            if out.usd.is_some() {
                return Err("dollars given twice; give one figure".to_string());
            }
            out.usd = usd;
        }
        if tokens.is_some() {
            if out.tokens.is_some() {
                return Err("tokens given twice; give one figure".to_string());
            }
            out.tokens = tokens;
        }
        i += used;
    }
    Ok(out)
}

fn dollars(s: &str) -> Result<f64, String> {
    match s.replace('_', "").parse::<f64>() {
        Ok(n) if n.is_finite() && n > 0.0 => Ok(n),
        _ => Err(format!("\"{s}\" is not an amount above $0: {FORMS}")),
    }
}

fn count(s: &str) -> Result<u64, String> {
    let s = s.replace('_', "");
    let (digits, times) = match s.strip_suffix(['k', 'K']) {
        Some(d) => (d.to_string(), 1_000.0),
        None => match s.strip_suffix('M') {
            Some(d) => (d.to_string(), 1_000_000.0),
            None => (s.clone(), 1.0),
        },
    };
    match digits.parse::<f64>() {
        Ok(n) if n.is_finite() && n * times >= 1.0 && (n * times).fract() == 0.0 => {
            Ok((n * times) as u64)
        }
        _ => Err(format!(
            "\"{s}\" is not a whole number of tokens above 0: {FORMS}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> (Option<f64>, Option<u64>) {
        let l = parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        (l.usd, l.tokens)
    }

    #[test]
    fn dollars_tokens_or_both() {
        assert_eq!(ok("$1.50"), (Some(1.5), None));
        assert_eq!(ok("20000 tok"), (None, Some(20_000)));
        assert_eq!(ok("20k tok"), (None, Some(20_000)));
        assert_eq!(ok("2Mtokens"), (None, Some(2_000_000)));
        assert_eq!(ok("$30, 1.5M tok"), (Some(30.0), Some(1_500_000)));
        assert_eq!(ok("usd=0.5 tokens=1_000"), (Some(0.5), Some(1000)));
        assert_eq!(ok("2 usd"), (Some(2.0), None));
    }

    #[test]
    fn what_is_unclear_is_said() {
        for (text, says) in [
            ("", "type $1.50"),
            ("5000", "\"5000\" is neither"),
            ("$0", "not an amount above $0"),
            ("$abc", "not an amount"),
            ("1.5 tok", "not a whole number of tokens"),
            ("$1 $2", "dollars given twice"),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.contains(says), "{text}: {e}");
        }
    }
}
