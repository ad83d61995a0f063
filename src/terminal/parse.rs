//! A small POSIX `sh` parser for the safety checker: it turns a command line into every
//! simple command it would run, wherever that command hides.
//!
//! Why not a crate: `shlex` and `shell-words` (both well kept) split a line into words but
//! know nothing of `;`, `&&`, `|`, `$(...)`, backticks, subshells, redirections or
//! here-documents; to them `ls;rm -rf /` is the words `ls;rm`, `-rf`, `/`, which is
//! exactly the first-word-only blindness this checker exists to avoid. `conch-parser`
//! parses the full grammar but has had no release since 2018. The part of the grammar a
//! checker needs is small, so it is written here, and anything it does not understand
//! (`case`, unbalanced quotes) is an error, which the checker turns into a refusal.
//!
//! What comes out: each simple command with its words after quote removal (so `'r''m'`
//! and `\rm` are `rm`), its redirections, and whether its input is a pipe. Commands inside
//! `$(...)`, backticks, `<(...)`, `( ... )`, `{ ...; }`, function bodies and unquoted
//! here-documents are listed too. A word whose value depends on an expansion (`$x`,
//! `$(...)`, `{a,b}`) is marked `dynamic`; its expansions appear as [`EXP`] in `text`.

/// Stands in a word's text for an expansion whose value is only known at run time.
pub const EXP: char = '\u{0}';
const MAX_DEPTH: usize = 24;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Word {
    /// The value with quotes removed; expansions as [`EXP`].
    pub text: String,
    /// For globbing: unquoted `*?[` kept, quoted ones escaped with `\`.
    pub pattern: String,
    /// As written, for messages.
    pub raw: String,
    pub dynamic: bool,
    /// Has an unquoted `*`, `?` or `[`.
    pub glob: bool,
    /// Starts with an unquoted `~`.
    pub tilde: bool,
    /// Some part was quoted or escaped (so it is never a reserved word).
    pub quoted: bool,
    brace_depth: u32,
    brace_sep: bool,
}

impl Word {
    /// A word that stands for exactly `text` (no quoting, no expansion).
    pub fn literal(text: &str) -> Word {
        let mut w = Word { raw: text.to_string(), ..Word::default() };
        text.chars().for_each(|c| w.quoted_lit(c));
        w.quoted = false;
        w
    }

    /// The part of the word from byte `at` of its text on (e.g. the value of `of=PATH`),
    /// keeping what is known about expansions and globs.
    pub fn tail(&self, at: usize) -> Word {
        let text = self.text.get(at..).unwrap_or_default();
        let glob = self.glob && text.contains(['*', '?', '[']);
        let mut w = Word::literal(text);
        w.dynamic = text.contains(EXP);
        w.glob = glob;
        w.tilde = text.starts_with('~');
        if glob {
            w.pattern = text.to_string();
        }
        w
    }

    fn lit(&mut self, c: char) {
        self.text.push(c);
        self.pattern.push(c);
        match c {
            '{' => self.brace_depth += 1,
            ',' if self.brace_depth > 0 => self.brace_sep = true,
            '.' if self.brace_depth > 0 && self.text.ends_with("..") => self.brace_sep = true,
            '}' if self.brace_depth > 0 => {
                self.brace_depth -= 1;
                // `{a,b}` and `{1..9}` are brace expansions in bash.
                self.dynamic |= self.brace_sep;
            }
            _ => {}
        }
    }

    fn quoted_lit(&mut self, c: char) {
        self.quoted = true;
        self.text.push(c);
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            self.pattern.push('\\');
        }
        self.pattern.push(c);
    }

    fn expansion(&mut self) {
        self.dynamic = true;
        self.text.push(EXP);
        self.pattern.push('*');
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RedirKind {
    /// `<`: reads the file.
    Read,
    /// `>`, `>>`, `>|`, `<>`, `&>`, `>&file`: writes the file.
    Write,
    /// Here-documents and here-strings: text on standard input.
    Input,
    /// `2>&1`, `<&3`: no file involved.
    NoFile,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Redirect {
    pub kind: RedirKind,
    pub target: Word,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Command {
    /// Leading `NAME=value` words.
    pub assigns: Vec<Word>,
    pub words: Vec<Word>,
    pub redirects: Vec<Redirect>,
    /// Its standard input is a pipe (it follows `|`, or sits in a group that does).
    pub piped: bool,
}

/// A function defined on the line: its name and the commands of its body.
#[derive(Debug, Clone, PartialEq)]
pub struct Function {
    pub name: String,
    pub body: std::ops::Range<usize>,
}

#[derive(Debug, Default)]
pub struct Script {
    pub commands: Vec<Command>,
    pub functions: Vec<Function>,
}

fn parse_nested(line: &str, depth: usize) -> Result<Script, String> {
    let mut out = Script::default();
    Lexer { chars: line.chars().collect(), pos: 0, depth, heredocs: Vec::new() }.list(&mut out, End::Eof, false)?;
    Ok(out)
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum End {
    Eof,
    Paren,
    Brace,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Sep,
    Pipe,
    LParen,
    RParen,
}

enum Tok {
    Word(Word),
    Op(Op),
    Redir(Redirect),
    Eof,
}

struct Heredoc {
    delimiter: String,
    expand: bool,
    strip_tabs: bool,
}

struct Lexer {
    chars: Vec<char>,
    pos: usize,
    depth: usize,
    heredocs: Vec<Heredoc>,
}

impl Lexer {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn peek_at(&self, k: usize) -> Option<char> {
        self.chars.get(self.pos + k).copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek();
        self.pos += usize::from(c.is_some());
        c
    }

    fn nested<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T, String>) -> Result<T, String> {
        if self.depth >= MAX_DEPTH {
            return Err("the command nests too deeply to be checked".into());
        }
        self.depth += 1;
        let r = f(self);
        self.depth -= 1;
        r
    }

    /// Commands up to `end`.
    fn list(&mut self, out: &mut Script, end: End, piped_in: bool) -> Result<(), String> {
        let fresh = || Command { piped: piped_in, ..Command::default() };
        let mut cmd = fresh();
        let flush = |out: &mut Script, cmd: &mut Command| {
            let done = std::mem::replace(cmd, fresh());
            if !done.words.is_empty() || !done.assigns.is_empty() || !done.redirects.is_empty() {
                out.commands.push(done);
            }
        };
        loop {
            match self.token(out)? {
                Tok::Eof => {
                    flush(out, &mut cmd);
                    return match end {
                        End::Eof => Ok(()),
                        End::Paren => Err("a `(` is never closed".into()),
                        End::Brace => Err("a `{` is never closed".into()),
                    };
                }
                Tok::Op(Op::RParen) if end == End::Paren => {
                    flush(out, &mut cmd);
                    return Ok(());
                }
                Tok::Op(Op::RParen) => return Err("unexpected `)`".into()),
                Tok::Op(Op::Sep) => flush(out, &mut cmd),
                Tok::Op(Op::Pipe) => {
                    flush(out, &mut cmd);
                    cmd.piped = true;
                }
                Tok::Op(Op::LParen) => {
                    let bare = cmd.assigns.is_empty() && cmd.redirects.is_empty();
                    if bare && cmd.words.len() == 1 {
                        if !matches!(self.token(out)?, Tok::Op(Op::RParen)) {
                            return Err("expected `)` after `name(`".into());
                        }
                        let name = cmd.words.remove(0).text;
                        self.function_body(out, name, cmd.piped)?;
                    } else if bare && cmd.words.is_empty() {
                        let piped = cmd.piped;
                        self.nested(|l| l.list(out, End::Paren, piped))?;
                    } else {
                        return Err("unexpected `(`".into());
                    }
                }
                Tok::Redir(r) => cmd.redirects.push(r),
                Tok::Word(w) => {
                    if cmd.words.is_empty() && !w.quoted {
                        match w.text.as_str() {
                            "{" => {
                                let piped = cmd.piped;
                                self.nested(|l| l.list(out, End::Brace, piped))?;
                                continue;
                            }
                            "}" if end == End::Brace => {
                                flush(out, &mut cmd);
                                return Ok(());
                            }
                            "}" => return Err("unexpected `}`".into()),
                            "!" | "if" | "then" | "elif" | "else" | "fi" | "do" | "done" | "while" | "until" => {
                                continue;
                            }
                            "case" | "esac" => {
                                return Err("`case` is not supported by the safety checker; use `if`".into());
                            }
                            "for" | "select" => {
                                self.skip_to_separator(out)?;
                                continue;
                            }
                            "function" => {
                                let Tok::Word(name) = self.token(out)? else {
                                    return Err("`function` needs a name".into());
                                };
                                if self.peek() == Some('(') && self.peek_at(1) == Some(')') {
                                    self.pos += 2;
                                }
                                self.function_body(out, name.text, cmd.piped)?;
                                continue;
                            }
                            _ => {}
                        }
                    }
                    if cmd.words.is_empty() && is_assignment(&w.raw) {
                        cmd.assigns.push(w);
                    } else {
                        cmd.words.push(w);
                    }
                }
            }
        }
    }

    fn function_body(&mut self, out: &mut Script, name: String, piped: bool) -> Result<(), String> {
        let start = out.commands.len();
        loop {
            match self.token(out)? {
                Tok::Op(Op::Sep) => continue,
                Tok::Word(w) if w.text == "{" && !w.quoted => self.nested(|l| l.list(out, End::Brace, piped))?,
                Tok::Op(Op::LParen) => self.nested(|l| l.list(out, End::Paren, piped))?,
                _ => return Err(format!("the body of function {name} must be `{{ ...; }}` or `( ... )`")),
            }
            break;
        }
        out.functions.push(Function { name, body: start..out.commands.len() });
        Ok(())
    }

    /// `for NAME in WORDS`: not a command; its words' substitutions were already listed.
    fn skip_to_separator(&mut self, out: &mut Script) -> Result<(), String> {
        loop {
            match self.token(out)? {
                Tok::Eof | Tok::Op(Op::Sep) => return Ok(()),
                Tok::Word(_) | Tok::Redir(_) => {}
                Tok::Op(_) => return Err("unexpected operator in a `for` line".into()),
            }
        }
    }

    fn token(&mut self, out: &mut Script) -> Result<Tok, String> {
        loop {
            match self.peek() {
                Some(' ' | '\t' | '\r') => self.pos += 1,
                Some('\\') if self.peek_at(1) == Some('\n') => self.pos += 2,
                Some('#') => {
                    while self.peek().is_some_and(|c| c != '\n') {
                        self.pos += 1;
                    }
                }
                _ => break,
            }
        }
        let Some(c) = self.peek() else { return Ok(Tok::Eof) };
        let two = |l: &Self, n: char| l.peek_at(1) == Some(n);
        let op = match c {
            '\n' => {
                self.pos += 1;
                self.read_heredocs(out)?;
                Op::Sep
            }
            ';' => {
                self.pos += if two(self, ';') || two(self, '&') { 2 } else { 1 };
                Op::Sep
            }
            '&' if two(self, '>') => {
                self.pos += 2;
                if self.peek() == Some('>') {
                    self.pos += 1;
                }
                return Ok(Tok::Redir(Redirect { kind: RedirKind::Write, target: self.target(out)? }));
            }
            '&' => {
                self.pos += if two(self, '&') { 2 } else { 1 };
                Op::Sep
            }
            '|' if two(self, '|') => {
                self.pos += 2;
                Op::Sep
            }
            '|' => {
                self.pos += if two(self, '&') { 2 } else { 1 };
                Op::Pipe
            }
            '(' => {
                self.pos += 1;
                Op::LParen
            }
            ')' => {
                self.pos += 1;
                Op::RParen
            }
            '<' | '>' if !two(self, '(') => return self.redirect(out),
            '0'..='9' => {
                let mut k = 0;
                while self.peek_at(k).is_some_and(|c| c.is_ascii_digit()) {
                    k += 1;
                }
                if matches!(self.peek_at(k), Some('<' | '>')) && self.peek_at(k + 1) != Some('(') {
                    self.pos += k;
                    return self.redirect(out);
                }
                return Ok(Tok::Word(self.word(out)?));
            }
            _ => return Ok(Tok::Word(self.word(out)?)),
        };
        Ok(Tok::Op(op))
    }

    fn redirect(&mut self, out: &mut Script) -> Result<Tok, String> {
        let first = self.bump();
        let mut kind = RedirKind::Write;
        let mut dup = false;
        if first == Some('<') {
            kind = RedirKind::Read;
            match self.peek() {
                Some('<') => {
                    self.pos += 1;
                    if self.peek() == Some('<') {
                        self.pos += 1;
                        return Ok(Tok::Redir(Redirect { kind: RedirKind::Input, target: self.target(out)? }));
                    }
                    let strip_tabs = self.peek() == Some('-');
                    self.pos += usize::from(strip_tabs);
                    let target = self.target(out)?;
                    self.heredocs.push(Heredoc { delimiter: target.text.clone(), expand: !target.quoted, strip_tabs });
                    return Ok(Tok::Redir(Redirect { kind: RedirKind::Input, target }));
                }
                Some('&') => {
                    self.pos += 1;
                    dup = true;
                }
                Some('>') => {
                    self.pos += 1;
                    kind = RedirKind::Write;
                }
                _ => {}
            }
        } else if let Some(c @ ('>' | '|' | '&')) = self.peek() {
            self.pos += 1;
            dup = c == '&';
        }
        let target = self.target(out)?;
        if dup && (target.text == "-" || (!target.text.is_empty() && target.text.chars().all(|c| c.is_ascii_digit()))) {
            kind = RedirKind::NoFile;
        }
        Ok(Tok::Redir(Redirect { kind, target }))
    }

    fn target(&mut self, out: &mut Script) -> Result<Word, String> {
        while matches!(self.peek(), Some(' ' | '\t')) {
            self.pos += 1;
        }
        match self.peek() {
            None | Some('\n' | ';' | '&' | '|' | '(' | ')' | '<' | '>') => Err("a redirection has no target".into()),
            _ => self.word(out),
        }
    }

    fn word(&mut self, out: &mut Script) -> Result<Word, String> {
        let start = self.pos;
        let mut w = Word::default();
        while let Some(c) = self.peek() {
            match c {
                ' ' | '\t' | '\r' | '\n' | ';' | '&' | '|' | '(' | ')' => break,
                '<' | '>' if self.peek_at(1) == Some('(') => {
                    self.pos += 2;
                    self.nested(|l| l.list(out, End::Paren, false))?;
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

    fn dquote(&mut self, w: &mut Word, out: &mut Script) -> Result<(), String> {
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
    fn dollar(&mut self, w: &mut Word, out: &mut Script, in_dquote: bool) -> Result<(), String> {
        match self.peek() {
            Some('(') if self.peek_at(1) == Some('(') => {
                self.pos += 2;
                self.arithmetic(out)?;
                w.expansion();
            }
            Some('(') => {
                self.pos += 1;
                self.nested(|l| l.list(out, End::Paren, false))?;
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
    fn arithmetic(&mut self, out: &mut Script) -> Result<(), String> {
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
    fn parameter(&mut self, out: &mut Script) -> Result<(), String> {
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

    fn backtick(&mut self, w: &mut Word, out: &mut Script, in_dquote: bool) -> Result<(), String> {
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
            sub.list(out, End::Eof, false)
        })?;
        w.expansion();
        Ok(())
    }

    /// bash's `$'...'`, decoded (dash has no such quoting and would run a harmless literal).
    fn ansi_c(&mut self, w: &mut Word) -> Result<(), String> {
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
    fn read_heredocs(&mut self, out: &mut Script) -> Result<(), String> {
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

/// `NAME=value` (or bash's `NAME+=value`) before the command name.
fn is_assignment(raw: &str) -> bool {
    let Some((name, _)) = raw.split_once('=') else { return false };
    let name = name.strip_suffix('+').unwrap_or(name);
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Parses a command line nested `depth` levels deep (in `sh -c`, `eval`, a script);
/// the error says what could not be understood.
pub fn parse_inner(line: &str, depth: usize) -> Result<Script, String> {
    if depth >= MAX_DEPTH {
        return Err("the command nests too deeply to be checked".into());
    }
    parse_nested(line, depth)
}
