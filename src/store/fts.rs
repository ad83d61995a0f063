//! Turns free text (a person's words, a model's query) into an FTS5 query that can never be
//! a syntax error: every word becomes a quoted FTS5 string, so `NEAR`, `AND` and `OR` are
//! only ever searched for, and `*`, `:`, `^`, quotes and parentheses never reach the query
//! parser at all.

/// How the words of a query combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Join {
    /// Any word may match; bm25 ranks documents with more (and rarer) words first.
    Any,
    /// Every word must match.
    All,
}

/// More words than this add cost and no precision; the rest are ignored.
const MAX_TERMS: usize = 32;

/// The FTS5 query for `text`, or `None` when it holds no searchable word (`*`, `(((`, an
/// emoji).
///
/// Words are the runs of letters and digits, as FTS5's own tokenizer sees them (so
/// `NEAR(river` is the words `NEAR` and `river`); everything else only separates them and
/// never reaches the query parser. Each word is quoted (a `"` would be doubled, though a
/// word never holds one). Repeats, in any case, count once.
pub fn query(text: &str, join: Join) -> Option<String> {
    let terms = terms(text);
    (!terms.is_empty()).then(|| self::join(&terms, join))
}

/// The quoted words of `text` (see `query`), at most `MAX_TERMS`.
pub fn terms(text: &str) -> Vec<String> {
    let mut terms: Vec<String> = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    for word in text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()) {
        let folded = word.to_lowercase();
        if seen.contains(&folded) {
            continue;
        }
        seen.push(folded);
        terms.push(format!("\"{}\"", word.replace('"', "\"\"")));
        if terms.len() == MAX_TERMS {
            break;
        }
    }
    terms
}

/// Quoted terms joined into one query.
pub fn join(terms: &[String], join: Join) -> String {
    terms.join(match join {
        Join::Any => " OR ",
        Join::All => " AND ",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_quoted_and_syntax_is_neutralised() {
        assert_eq!(query("dog name", Join::Any).unwrap(), r#""dog" OR "name""#);
        assert_eq!(query("NEAR(a b", Join::All).unwrap(), r#""NEAR" AND "a" AND "b""#);
        assert_eq!(query(r#"say "hi"#, Join::Any).unwrap(), r#""say" OR "hi""#);
        assert_eq!(query("col:value", Join::Any).unwrap(), r#""col" OR "value""#);
        assert_eq!(query("a a A", Join::Any).unwrap(), r#""a""#);
        assert_eq!(query("Zürich 東京", Join::Any).unwrap(), r#""Zürich" OR "東京""#);
    }

    #[test]
    fn text_without_words_is_no_query() {
        for text in ["", "   ", "*", "(((", "😀 🎉", "-- ))"] {
            assert_eq!(query(text, Join::Any), None, "{text:?}");
        }
    }

    #[test]
    fn very_long_queries_are_capped() {
        let text = (0..100).map(|i| format!("w{i}")).collect::<Vec<_>>().join(" ");
        assert_eq!(query(&text, Join::Any).unwrap().matches(" OR ").count(), MAX_TERMS - 1);
    }
}
