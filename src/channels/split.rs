//! Splitting a long answer into messages a chat platform accepts (Telegram 4,096
//! characters, Discord 2,000): at paragraph, then line, then sentence, then word
//! boundaries, and never inside a code fence without closing it and opening it again in
//! the next part, so every part renders on its own.

/// Splits `text` into parts of at most `max` characters (`max` >= 32).
pub fn split(text: &str, max: usize) -> Vec<String> {
    let max = max.max(32);
    let mut parts = Vec::new();
    let mut rest = text.trim_end().to_string();
    // The fence opened in an earlier part and still open, e.g. "```rust".
    let mut open_fence: Option<String> = None;
    while !rest.is_empty() {
        let prefix = open_fence.as_ref().map(|f| format!("{f}\n")).unwrap_or_default();
        // Room for the reopened fence and a closing one.
        let closing = "\n```".len();
        let room = max.saturating_sub(prefix.chars().count() + closing).max(16);
        if prefix.chars().count() + rest.chars().count() <= max {
            parts.push(format!("{prefix}{rest}"));
            break;
        }
        let cut = cut_point(&rest, room);
        let (head, tail) = rest.split_at(cut);
        let mut part = format!("{prefix}{}", head.trim_end());
        let fence = fence_state(&part, None);
        if let Some(f) = &fence {
            part.push_str("\n```");
            open_fence = Some(f.clone());
        } else {
            open_fence = None;
        }
        parts.push(part);
        rest = tail.trim_start_matches([' ']).trim_start_matches('\n').to_string();
    }
    parts
}

/// The byte index to cut at: the last good boundary within `room` characters.
fn cut_point(text: &str, room: usize) -> usize {
    let limit = text.char_indices().nth(room).map_or(text.len(), |(i, _)| i);
    let window = &text[..limit];
    for sep in ["\n\n", "\n", ". ", "! ", "? ", " "] {
        if let Some(i) = window.rfind(sep)
            && i > limit / 3
        {
            return i + sep.len();
        }
    }
    limit
}

/// After `text`, the fence line that is still open (None when all are closed).
fn fence_state(text: &str, mut open: Option<String>) -> Option<String> {
    for line in text.lines() {
        let t = line.trim_start();
        if t.starts_with("```") {
            open = match open {
                Some(_) => None,
                None => Some(t.trim_end().to_string()),
            };
        }
    }
    open
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_one_part_and_long_text_splits_at_paragraphs() {
        assert_eq!(split("hello", 100), ["hello"]);
        let text = format!("{}\n\n{}", "a".repeat(60), "b".repeat(60));
        assert_eq!(split(&text, 100), ["a".repeat(60), "b".repeat(60)]);
    }

    #[test]
    fn every_part_fits_and_nothing_is_lost() {
        let text = "Lorem ipsum dolor sit amet. ".repeat(400);
        let parts = split(&text, 2000);
        assert!(parts.len() >= 6);
        assert!(parts.iter().all(|p| p.chars().count() <= 2000));
        let joined: String = parts.join(" ");
        assert_eq!(joined.split_whitespace().count(), text.split_whitespace().count());
    }

    #[test]
    fn code_fences_are_closed_and_reopened_across_parts() {
        let code: String = (0..200).map(|i| format!("let x{i} = {i};\n")).collect();
        let text = format!("Here:\n```rust\n{code}```\nDone.");
        let parts = split(&text, 500);
        assert!(parts.len() > 3);
        for p in &parts {
            assert!(p.chars().count() <= 500, "{}", p.len());
            assert_eq!(p.matches("```").count() % 2, 0, "balanced fences in {p:?}");
        }
        assert!(parts[1].starts_with("```rust\n"), "{}", parts[1]);
        assert!(parts.last().unwrap().ends_with("Done."));
    }

    #[test]
    fn a_word_longer_than_a_part_is_cut_hard() {
        let parts = split(&"x".repeat(100), 40);
        assert!(parts.iter().all(|p| p.chars().count() <= 40));
        assert_eq!(parts.concat(), "x".repeat(100));
    }

    #[test]
    fn multibyte_text_is_cut_on_character_boundaries() {
        let text = "héllo wörld ✓ ".repeat(300);
        for p in split(&text, 100) {
            assert!(p.chars().count() <= 100);
        }
    }
}
