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

mod words;

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
    /// For `Input`: the text it feeds, an index into [`Script::inputs`] (`None`: only
    /// known at run time).
    pub input: Option<usize>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Command {
    /// Leading `NAME=value` words.
    pub assigns: Vec<Word>,
    pub words: Vec<Word>,
    pub redirects: Vec<Redirect>,
    /// Its standard input may be a pipe: it comes after a `|` in its list, or sits in a
    /// group or substitution that may read one.
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
    /// Here-document bodies and here-strings, as written.
    pub inputs: Vec<String>,
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
    /// Where its body goes in [`Script::inputs`].
    index: usize,
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
        // After a `|`, every later command of the list may read that pipe
        // (`curl ... | while true; do sh; done`), so `piped` stays set.
        let mut piped = piped_in;
        let mut cmd = Command { piped, ..Command::default() };
        let flush = |out: &mut Script, cmd: &mut Command, piped: bool| {
            let done = std::mem::replace(cmd, Command { piped, ..Command::default() });
            if !done.words.is_empty() || !done.assigns.is_empty() || !done.redirects.is_empty() {
                out.commands.push(done);
            }
        };
        loop {
            match self.token(out)? {
                Tok::Eof => {
                    flush(out, &mut cmd, piped);
                    return match end {
                        End::Eof => Ok(()),
                        End::Paren => Err("a `(` is never closed".into()),
                        End::Brace => Err("a `{` is never closed".into()),
                    };
                }
                Tok::Op(Op::RParen) if end == End::Paren => {
                    flush(out, &mut cmd, piped);
                    return Ok(());
                }
                Tok::Op(Op::RParen) => return Err("unexpected `)`".into()),
                Tok::Op(Op::Sep) => flush(out, &mut cmd, piped),
                Tok::Op(Op::Pipe) => {
                    piped = true;
                    flush(out, &mut cmd, piped);
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
                                flush(out, &mut cmd, piped);
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
                return Ok(Tok::Redir(Redirect { kind: RedirKind::Write, target: self.target(out)?, input: None }));
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
                        let target = self.target(out)?;
                        let input = (!target.dynamic).then(|| {
                            out.inputs.push(format!("{}\n", target.text));
                            out.inputs.len() - 1
                        });
                        return Ok(Tok::Redir(Redirect { kind: RedirKind::Input, target, input }));
                    }
                    let strip_tabs = self.peek() == Some('-');
                    self.pos += usize::from(strip_tabs);
                    let target = self.target(out)?;
                    out.inputs.push(String::new());
                    let index = out.inputs.len() - 1;
                    let (delimiter, expand) = (target.text.clone(), !target.quoted);
                    self.heredocs.push(Heredoc { delimiter, expand, strip_tabs, index });
                    return Ok(Tok::Redir(Redirect { kind: RedirKind::Input, target, input: Some(index) }));
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
        Ok(Tok::Redir(Redirect { kind, target, input: None }))
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
