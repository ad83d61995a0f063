//! The model's Markdown as Telegram HTML (`parse_mode=HTML`): code fences become
//! `<pre><code>`, and `` `code` ``, `**bold**`, `_italic_`/`*italic*`, `~~strike~~`,
//! `# headings` and `[links](https://…)` their tags; everything else is text with `&`,
//! `<` and `>` escaped, so whatever the model writes (`<b>`, `a < b && c`) arrives as
//! written. Every tag opened in a line is closed in it and fences are closed at the end,
//! so any part split.rs cuts converts on its own.
//!
//! HTML rather than MarkdownV2: MarkdownV2 needs 18 characters escaped outside entities
//! and rejects a whole message for one missed `.` or `!`; HTML needs three.

/// Converts one message part.
pub fn to_html(md: &str) -> String {
    let mut lines: Vec<String> = Vec::new();
    // The open fence: its language and the code lines so far.
    let mut fence: Option<(String, Vec<&str>)> = None;
    for line in md.split('\n') {
        let trimmed = line.trim_start();
        // Any line starting with ``` opens or closes a fence, as split.rs counts them.
        let is_fence = trimmed.starts_with("```");
        match fence.take() {
            Some((lang, code)) if is_fence => lines.push(pre(&lang, &code)),
            Some((lang, mut code)) => {
                code.push(line);
                fence = Some((lang, code));
            }
            None if is_fence => fence = Some((language(&trimmed[3..]), Vec::new())),
            None => lines.push(text_line(line)),
        }
    }
    if let Some((lang, code)) = fence {
        lines.push(pre(&lang, &code));
    }
    lines.join("\n")
}

fn pre(lang: &str, code: &[&str]) -> String {
    let body = escape(&code.join("\n"));
    if lang.is_empty() {
        format!("<pre><code>{body}</code></pre>")
    } else {
        format!("<pre><code class=\"language-{lang}\">{body}</code></pre>")
    }
}

/// The fence's language if it is a plain name (`rust`, `c++`, `objective-c`), else none.
fn language(info: &str) -> String {
    let word = info.split_whitespace().next().unwrap_or("");
    let ok = word.len() <= 32 && word.chars().all(|c| c.is_ascii_alphanumeric() || "+-#._".contains(c));
    if ok { word.to_string() } else { String::new() }
}

fn text_line(line: &str) -> String {
    let mut out = String::with_capacity(line.len() + 16);
    let hashes = line.bytes().take_while(|&b| b == b'#').count();
    match line.get(hashes..) {
        Some(rest) if (1..=6).contains(&hashes) && rest.starts_with(' ') => {
            out.push_str("<b>");
            inline(rest.trim(), false, &mut out);
            out.push_str("</b>");
        }
        _ => inline(line, false, &mut out),
    }
    out
}

/// Escapes text for Telegram HTML (also inside attribute values).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    push_escaped(s, &mut out);
    out
}

fn push_escaped(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
}

/// Converts the inline Markdown of one line. `nested` (inside bold/italic/strike): code
/// spans become plain text, since Telegram lets no entity contain code.
fn inline(s: &str, nested: bool, out: &mut String) {
    let mut i = 0;
    while i < s.len() {
        let rest = &s[i..];
        let c = rest.chars().next().unwrap_or(' ');
        if c == '`' {
            let ticks = run_len(rest, '`');
            if let Some(end) = code_end(s, i + ticks, ticks) {
                let code = &s[i + ticks..end];
                if nested {
                    push_escaped(code, out);
                } else {
                    out.push_str("<code>");
                    push_escaped(code, out);
                    out.push_str("</code>");
                }
                i = end + ticks;
            } else {
                push_escaped(&rest[..ticks], out);
                i += ticks;
            }
            continue;
        }
        if c == '\\' && rest[1..].starts_with(|n: char| n.is_ascii_punctuation()) {
            push_escaped(&rest[1..2], out);
            i += 2;
            continue;
        }
        if c == '['
            && let Some((text, url, len)) = link(rest)
        {
            out.push_str("<a href=\"");
            push_escaped(url, out);
            out.push_str("\">");
            push_escaped(text, out);
            out.push_str("</a>");
            i += len;
            continue;
        }
        let delim = ["**", "__", "~~", "*", "_"].into_iter().find(|d| rest.starts_with(d));
        if let Some(d) = delim
            && let Some(end) = span_end(s, i, d)
        {
            let tag = match d {
                "**" | "__" => "b",
                "~~" => "s",
                _ => "i",
            };
            out.push_str(&format!("<{tag}>"));
            inline(&s[i + d.len()..end], true, out);
            out.push_str(&format!("</{tag}>"));
            i = end + d.len();
            continue;
        }
        // A delimiter that opens nothing is text; doubled ones are skipped whole so
        // `**` never reads as two italics.
        let len = delim.map_or(c.len_utf8(), str::len);
        push_escaped(&rest[..len], out);
        i += len;
    }
}

fn run_len(s: &str, c: char) -> usize {
    s.chars().take_while(|&x| x == c).count()
}

/// Where the code span of `ticks` backticks starting at `from` ends (a run of exactly
/// as many backticks).
fn code_end(s: &str, from: usize, ticks: usize) -> Option<usize> {
    let mut j = from;
    while let Some(k) = s[j..].find('`') {
        let at = j + k;
        let n = run_len(&s[at..], '`');
        if n == ticks && at > from {
            return Some(at);
        }
        j = at + n;
    }
    None
}

fn is_word(c: Option<char>) -> bool {
    c.is_some_and(|c| c.is_alphanumeric())
}

/// The byte index of the delimiter `d` that closes the span opened at `start`, with
/// Markdown's flanking rules: the opener is followed and the closer preceded by a
/// non-space, and underscores inside words (`snake_case`) delimit nothing.
fn span_end(s: &str, start: usize, d: &str) -> Option<usize> {
    let before = s[..start].chars().next_back();
    let after_open = s[start + d.len()..].chars().next();
    if after_open.is_none_or(char::is_whitespace) || (d.starts_with('_') && is_word(before)) {
        return None;
    }
    let mut j = start + d.len();
    while j < s.len() {
        let rest = &s[j..];
        if rest.starts_with('`') {
            let ticks = run_len(rest, '`');
            j = code_end(s, j + ticks, ticks).map_or(j + ticks, |e| e + ticks);
            continue;
        }
        let run = run_len(rest, d.chars().next().unwrap_or('*'));
        if run == d.len() || (run > d.len() && d.len() == 2) {
            let prev = s[..j].chars().next_back();
            let next = s[j + d.len()..].chars().next();
            let closes = j > start + d.len()
                && prev.is_some_and(|p| !p.is_whitespace())
                && !(d.starts_with('_') && is_word(next));
            if closes {
                return Some(j);
            }
        }
        j += run.max(1);
        while !s.is_char_boundary(j) {
            j += 1;
        }
    }
    None
}

/// `[text](url)` at the start of `s` with a web, mail or tg link: (text, url, length).
fn link(s: &str) -> Option<(&str, &str, usize)> {
    let close = s.find("](")?;
    let text = &s[1..close];
    if text.is_empty() || text.contains(['[', ']']) {
        return None;
    }
    let url_start = close + 2;
    let url_len = s[url_start..].find(')')?;
    let url = &s[url_start..url_start + url_len];
    let allowed = ["http://", "https://", "tg://", "mailto:"].iter().any(|p| url.starts_with(p));
    if !allowed || url.contains(char::is_whitespace) {
        return None;
    }
    Some((text, url, url_start + url_len + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_in_model_text_arrives_escaped() {
        assert_eq!(to_html("use <b> & a < b > c"), "use &lt;b&gt; &amp; a &lt; b &gt; c");
    }

    #[test]
    fn fences_become_pre_with_language_and_escaped_code() {
        let md = "Here:\n```rust\nif a < b && c {}\n```\nDone.";
        assert_eq!(
            to_html(md),
            "Here:\n<pre><code class=\"language-rust\">if a &lt; b &amp;&amp; c {}</code></pre>\nDone."
        );
        assert_eq!(to_html("```\nx"), "<pre><code>x</code></pre>", "an unclosed fence is closed");
        assert_eq!(to_html("```evil\"><b>\nx\n```"), "<pre><code>x</code></pre>");
    }

    #[test]
    fn inline_markdown_becomes_tags() {
        assert_eq!(
            to_html("a **bold** and _it_ and *it* and ~~no~~"),
            "a <b>bold</b> and <i>it</i> and <i>it</i> and <s>no</s>"
        );
        assert_eq!(to_html("run `ls <dir>` now"), "run <code>ls &lt;dir&gt;</code> now");
        assert_eq!(to_html("``a ` b``"), "<code>a ` b</code>");
        assert_eq!(to_html("# Title *x*"), "<b>Title <i>x</i></b>");
        assert_eq!(to_html("**bold `code` here**"), "<b>bold code here</b>", "no code inside bold");
        assert_eq!(to_html("*a **b** c*"), "<i>a <b>b</b> c</i>");
    }

    #[test]
    fn links_need_a_safe_scheme_and_quotes_are_escaped() {
        assert_eq!(
            to_html("[docs](https://x.org/a?b=1&c=\"2\")"),
            "<a href=\"https://x.org/a?b=1&amp;c=&quot;2&quot;\">docs</a>"
        );
        assert_eq!(to_html("[x](javascript:alert(1))"), "[x](javascript:alert(1))");
    }

    #[test]
    fn lone_and_intraword_delimiters_stay_text() {
        assert_eq!(to_html("snake_case_name and 2 * 3 * 4"), "snake_case_name and 2 * 3 * 4");
        assert_eq!(to_html("* item\n- item"), "* item\n- item");
        assert_eq!(to_html("**unclosed and `unclosed"), "**unclosed and `unclosed");
        assert_eq!(to_html("\\*not italic\\*"), "*not italic*");
        assert_eq!(to_html("ünï *cödé* ✓"), "ünï <i>cödé</i> ✓");
    }
}
