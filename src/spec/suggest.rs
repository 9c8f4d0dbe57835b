//! "Did you mean …?" for misspelt names.

/// The candidate closest to `wanted`, when it is close enough to be a likely
/// typo: at most a third of the longer name's characters differ.
pub(crate) fn closest<'a>(
    wanted: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (edit_distance(wanted, c), c))
        .filter(|(d, c)| {
            let longest = wanted.chars().count().max(c.chars().count());
            *d > 0 && *d * 3 <= longest.max(3)
        })
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// `"; did you mean \"x\"?"` or nothing, to end a help line.
pub(crate) fn did_you_mean<'a>(
    wanted: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> String {
    closest(wanted, candidates)
        .map(|c| format!("; did you mean \"{c}\"?"))
        .unwrap_or_default()
}

/// Levenshtein distance, counting swapped neighbours as one edit since that
/// is the commonest slip when typing.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // rows[i][j]: distance between a[..i] and b[..j]
    let mut rows = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in rows.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in rows[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (rows[i - 1][j] + 1)
                .min(rows[i][j - 1] + 1)
                .min(rows[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(rows[i - 2][j - 2] + 1);
            }
            rows[i][j] = best;
        }
    }
    rows[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(edit_distance("fast", "fast"), 0);
        assert_eq!(edit_distance("fsat", "fast"), 1);
        assert_eq!(edit_distance("fat", "fast"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn suggests_close_names_only() {
        let names = ["documenter", "fast"];
        assert_eq!(closest("fsat", names), Some("fast"));
        assert_eq!(closest("documentor", names), Some("documenter"));
        assert_eq!(closest("zzzzzz", names), None);
        assert_eq!(closest("fast", names), None);
        assert_eq!(
            did_you_mean("timout", ["timeout", "retry"]),
            "; did you mean \"timeout\"?"
        );
        assert_eq!(did_you_mean("xyz", ["timeout"]), "");
    }
}
