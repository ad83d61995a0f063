//! Words: quoting, `$` expansions, command substitutions (parsed in place, so the
//! commands inside are listed), backticks, bash's `$'...'` and here-document bodies.

use super::{End, Lexer, Script, Word};

impl Lexer {
    pub(super) fn word(&mut self, out: &mut Script) -> Result<Word, String> {
        let start = self.pos;
        let mut w = Word::default();
        while let Some(c) = self.peek() {
            match c {
                ' ' | '\t' | '\r' | '\n' | ';' | '&' | '|' | '(' | ')' => break,
                '<' | '>' if self.peek_at(1) == Some('(') => {
                    self.pos += 2;
                    self.nested(|l| l.list(out, End::Paren, true))?;
                    w.expansion();
                }
                '<' | '>' => break,
                '\\' => {
                    self.pos += 1;
                    match self.bump() {
                        Some('\n') => {}
                        Some(c) => w.quoted_lit(c),
                        None => w.quoted_lit('\\'),
                    }
                }
                '\'' => {
                    self.pos += 1;
                    w.quoted = true;
                    loop {
                        match self.bump() {
                            Some('\'') => break,
                            Some(c) => w.quoted_lit(c),
                            None => return Err("a single quote is never closed".into()),
                        }
                    }
                }
                '"' => {
                    self.pos += 1;
                    self.dquote(&mut w, out)?;
                }
                '$' => {
                    self.pos += 1;
                    self.dollar(&mut w, out, false)?;
                }
                '`' => {
                    self.pos += 1;
                    self.backtick(&mut w, out, false)?;
                }
                '*' | '?' | '[' => {
                    self.pos += 1;
                    w.glob = true;
                    w.text.push(c);
                    w.pattern.push(c);
                }
                '~' if self.pos == start => {
                    self.pos += 1;
                    w.tilde = true;
                    w.lit(c);
                }
                _ => {
                    self.pos += 1;
                    w.lit(c);
                }
            }
        }
        w.raw = self.chars[start..self.pos].iter().collect();
        Ok(w)
    }

    pub(super) fn dquote(&mut self, w: &mut Word, out: &mut Script) -> Result<(), String> {
        w.quoted = true;
        loop {
            match self.bump() {
                None => return Err("a double quote is never closed".into()),
                Some('"') => return Ok(()),
                Some('\\') => match self.bump() {
                    Some('\n') => {}
                    Some(c @ ('$' | '`' | '"' | '\\')) => w.quoted_lit(c),
                    Some(c) => {
                        w.quoted_lit('\\');
                        w.quoted_lit(c);
                    }
                    None => return Err("a double quote is never closed".into()),
                },
                Some('$') => self.dollar(w, out, true)?,
                Some('`') => self.backtick(w, out, true)?,
                Some(c) => w.quoted_lit(c),
            }
        }
    }

    /// After a `$`.
    pub(super) fn dollar(&mut self, w: &mut Word, out: &mut Script, in_dquote: bool) -> Result<(), String> {
        match self.peek() {
            Some('(') if self.peek_at(1) == Some('(') => {
                self.pos += 2;
                self.arithmetic(out)?;
                w.expansion();
            }
            Some('(') => {
                self.pos += 1;
                self.nested(|l| l.list(out, End::Paren, true))?;
                w.expansion();
            }
            Some('{') => {
                self.pos += 1;
                self.parameter(out)?;
                w.expansion();
            }
            Some('\'') if !in_dquote => {
                self.pos += 1;
                self.ansi_c(w)?;
            }
            Some('"') if !in_dquote => {
                self.pos += 1;
                self.dquote(w, out)?;
            }
            Some(c) if c.is_ascii_alphabetic() || c == '_' => {
                while self.peek().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                    self.pos += 1;
                }
                w.expansion();
            }
            Some(c) if c.is_ascii_digit() || "@*#?$!-".contains(c) => {
                self.pos += 1;
                w.expansion();
            }
            _ if in_dquote => w.quoted_lit('$'),
            _ => w.lit('$'),
        }
        Ok(())
    }

    /// The rest of `$((...))`, listing any substitutions inside it.
    pub(super) fn arithmetic(&mut self, out: &mut Script) -> Result<(), String> {
        let mut depth = 0;
        let mut scratch = Word::default();
        loop {
            match self.bump() {
                None => return Err("a `$((` is never closed".into()),
                Some('(') => depth += 1,
                Some(')') if depth == 0 => {
                    self.pos += usize::from(self.peek() == Some(')'));
                    return Ok(());
                }
                Some(')') => depth -= 1,
                Some('$') => self.dollar(&mut scratch, out, true)?,
                Some('`') => self.backtick(&mut scratch, out, true)?,
                Some('"') => self.dquote(&mut scratch, out)?,
                Some(_) => {}
            }
        }
    }

    /// The rest of `${...}`, listing substitutions in defaults like `${x:-$(cmd)}`.
    pub(super) fn parameter(&mut self, out: &mut Script) -> Result<(), String> {
        let mut scratch = Word::default();
        let mut depth = 0;
        loop {
            match self.bump() {
                None => return Err("a `${` is never closed".into()),
                Some('}') if depth == 0 => return Ok(()),
                Some('}') => depth -= 1,
                Some('{') => depth += 1,
                Some('\\') => {
                    self.bump();
                }
                Some('\'') => while self.bump().is_some_and(|c| c != '\'') {},
                Some('"') => self.dquote(&mut scratch, out)?,
                Some('$') => self.dollar(&mut scratch, out, true)?,
                Some('`') => self.backtick(&mut scratch, out, true)?,
                Some(_) => {}
            }
        }
    }

    pub(super) fn backtick(&mut self, w: &mut Word, out: &mut Script, in_dquote: bool) -> Result<(), String> {
        let mut inner = String::new();
        loop {
            match self.bump() {
                None => return Err("a backquote is never closed".into()),
                Some('`') => break,
                Some('\\') => match self.bump() {
                    Some(c @ ('`' | '\\' | '$')) => inner.push(c),
                    Some('"') if in_dquote => inner.push('"'),
                    Some(c) => {
                        inner.push('\\');
                        inner.push(c);
                    }
                    None => return Err("a backquote is never closed".into()),
                },
                Some(c) => inner.push(c),
            }
        }
        let depth = self.depth;
        self.nested(|_| {
            let mut sub = Lexer { chars: inner.chars().collect(), pos: 0, depth: depth + 1, heredocs: Vec::new() };
            sub.list(out, End::Eof, true)
        })?;
        w.expansion();
        Ok(())
    }

    /// bash's `$'...'`, decoded (dash has no such quoting and would run a harmless literal).
    pub(super) fn ansi_c(&mut self, w: &mut Word) -> Result<(), String> {
        w.quoted = true;
        loop {
            let c = self.bump().ok_or("a `$'` quote is never closed")?;
            match c {
                '\'' => return Ok(()),
                '\\' => {
                    let e = self.bump().ok_or("a `$'` quote is never closed")?;
                    let simple = match e {
                        'n' => Some('\n'),
                        't' => Some('\t'),
                        'r' => Some('\r'),
                        'a' => Some('\u{7}'),
                        'b' => Some('\u{8}'),
                        'e' | 'E' => Some('\u{1b}'),
                        'f' => Some('\u{c}'),
                        'v' => Some('\u{b}'),
                        '\\' | '\'' | '"' | '?' => Some(e),
                        _ => None,
                    };
                    if let Some(s) = simple {
                        w.quoted_lit(s);
                        continue;
                    }
                    let (radix, max) = match e {
                        'x' => (16, 2),
                        'u' => (16, 4),
                        'U' => (16, 8),
                        '0'..='7' => {
                            self.pos -= 1;
                            (8, 3)
                        }
                        _ => {
                            w.quoted_lit('\\');
                            w.quoted_lit(e);
                            continue;
                        }
                    };
                    let mut digits = String::new();
                    while digits.len() < max && self.peek().is_some_and(|d| d.is_digit(radix)) {
                        digits.extend(self.bump());
                    }
                    match u32::from_str_radix(&digits, radix).ok().and_then(char::from_u32) {
                        Some(ch) => w.quoted_lit(ch),
                        None => w.expansion(),
                    }
                }
                c => w.quoted_lit(c),
            }
        }
    }

    /// Bodies of here-documents begun on the line just ended; unquoted ones expand
    /// `$(...)` and backticks, so those are listed.
    pub(super) fn read_heredocs(&mut self, out: &mut Script) -> Result<(), String> {
        for doc in std::mem::take(&mut self.heredocs) {
            let mut body = String::new();
            while self.peek().is_some() {
                let mut line = String::new();
                while let Some(c) = self.bump() {
                    if c == '\n' {
                        break;
                    }
                    line.push(c);
                }
                let check = if doc.strip_tabs { line.trim_start_matches('\t') } else { &line };
                if check == doc.delimiter {
                    break;
                }
                body.push_str(&line);
                body.push('\n');
            }
            if let Some(slot) = out.inputs.get_mut(doc.index) {
                slot.clone_from(&body);
            }
            if doc.expand {
                let depth = self.depth;
                self.nested(|_| {
                    let mut sub =
                        Lexer { chars: body.chars().collect(), pos: 0, depth: depth + 1, heredocs: Vec::new() };
                    let mut scratch = Word::default();
                    while let Some(c) = sub.bump() {
                        match c {
                            '\\' => {
                                sub.bump();
                            }
                            '$' => sub.dollar(&mut scratch, out, true)?,
                            '`' => sub.backtick(&mut scratch, out, true)?,
                            _ => {}
                        }
                    }
                    Ok(())
                })?;
            }
        }
        Ok(())
    }
}
