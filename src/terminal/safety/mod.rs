//! The safety checker: every shell command line the assistant wants to run comes here
//! first, and is allowed or refused with a reason the model can act on.
//!
//! It judges every command the line would run, not its first word: the parser
//! ([`super::parse`]) finds the commands behind `;`, `&&`, `|`, `$(...)`, backticks,
//! subshells and function bodies, and this module follows `sh -c`, `eval`, `trap`,
//! scripts in the workspace, wrappers (`env`, `xargs`, `timeout`, `nohup`, `nice`, ...)
//! and `find -exec`. Quotes are removed before judging, so `'r''m'`, `\rm` and `/bin/rm`
//! are all `rm`. Paths are judged where they lead (symbolic links followed, globs
//! expanded, `cd` followed), and a path only known at run time (`$x`) is refused wherever
//! it would matter. What it refuses:
//!
//! - deleting, moving, linking, changing modes/owners or writing (`>`, `tee`, `dd of=`,
//!   `curl -o`, `sed -i`, ...) anywhere outside the workspace, or deleting the workspace;
//! - system and privilege commands (`reboot`, `systemctl`, `mkfs*`, `mount`, `sudo`, ...),
//!   killing PID 1, every process (`-1`) or the gateway, raw disk reads;
//! - code the checker cannot see: a pipe into a shell or interpreter (`curl ... | sh`),
//!   a script outside the workspace or not written yet, a computed program name;
//! - reading secrets: `~/.ssh`, `/etc/shadow`, Skynet's own `skynet.toml` and database;
//! - functions that call themselves (fork bombs like `:(){ :|:& };:`).
//!
//! It is a guard rail, not a sandbox: an allowed interpreter (`python3 -c ...`) can do
//! whatever the gateway's user can. [`Checker::with_allowed_programs`] narrows every
//! program position (not just the first word) to a list.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::parse::{Command, EXP, RedirKind, Script, Word, parse_inner};
use super::paths::{expand_glob, resolve};

mod places;
mod programs;

#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Allow,
    Deny(String),
}

#[derive(Debug, Clone)]
pub struct Checker {
    workspace: PathBuf,
    /// What `~` means to the shell.
    home: PathBuf,
    /// The gateway user's real home, for `~/.ssh` and friends.
    user_home: Option<PathBuf>,
    secrets: Vec<PathBuf>,
    allowed: Option<BTreeSet<String>>,
}

/// Secrets under a home directory.
const HOME_SECRETS: [&str; 11] = [
    ".ssh",
    ".gnupg",
    ".aws",
    ".netrc",
    ".git-credentials",
    ".config/gh",
    ".docker/config.json",
    ".kube",
    ".pgpass",
    ".skynet/skynet.toml",
    ".skynet/skynet.db",
];
const SYSTEM_SECRETS: [&str; 6] =
    ["/etc/shadow", "/etc/gshadow", "/etc/sudoers", "/etc/sudoers.d", "/etc/ssh", "/root/.ssh"];
/// Commands that change the machine itself, never the assistant's business.
const SYSTEM: [&str; 36] = [
    "shutdown",
    "reboot",
    "halt",
    "poweroff",
    "init",
    "telinit",
    "systemctl",
    "service",
    "mkswap",
    "swapon",
    "swapoff",
    "fdisk",
    "sfdisk",
    "cfdisk",
    "parted",
    "gdisk",
    "sgdisk",
    "wipefs",
    "mount",
    "umount",
    "insmod",
    "rmmod",
    "modprobe",
    "kexec",
    "passwd",
    "chpasswd",
    "useradd",
    "userdel",
    "usermod",
    "groupadd",
    "groupdel",
    "visudo",
    "iptables",
    "ip6tables",
    "nft",
    "killall5",
];
const PRIVILEGE: [&str; 9] = ["sudo", "su", "doas", "pkexec", "runuser", "chroot", "setpriv", "unshare", "nsenter"];
const SHELLS: [&str; 8] = ["sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "fish"];
const INTERPRETERS: [&str; 9] = ["python", "perl", "ruby", "node", "nodejs", "php", "lua", "tclsh", "deno"];
/// Programs whose path operands they delete or change.
const DELETERS: [&str; 5] = ["rm", "rmdir", "unlink", "shred", "mv"];
const CHANGERS: [&str; 7] = ["ln", "touch", "mkdir", "truncate", "tee", "mkfifo", "mknod"];
const WRAPPERS: [&str; 12] =
    ["env", "nohup", "setsid", "nice", "timeout", "time", "exec", "command", "builtin", "xargs", "stdbuf", "busybox"];
/// Always allowed in allowlist mode: shell builtins that run nothing else.
const SAFE_BUILTINS: [&str; 17] = [
    "cd", "echo", "printf", "true", "false", "test", "[", "pwd", "export", "unset", "set", "shift", ":", "exit",
    "read", "local", "wait",
];

impl Checker {
    /// A checker for commands run in `workspace` with `HOME` set to it; `skynet_home`'s
    /// settings and database are secrets.
    pub fn new(workspace: &Path, skynet_home: &Path) -> Checker {
        // Paths are judged from the root down, so a relative SKYNET_HOME is made absolute.
        let absolute = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
        let (workspace, skynet_home) = (&absolute(workspace), &absolute(skynet_home));
        let user_home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .filter(|h| h.is_absolute())
            .or_else(|| directories::BaseDirs::new().map(|d| d.home_dir().to_path_buf()));
        let mut secrets: Vec<PathBuf> = SYSTEM_SECRETS.iter().map(PathBuf::from).collect();
        for f in ["skynet.toml", "skynet.db", "skynet.db-wal", "skynet.db-shm"] {
            secrets.push(skynet_home.join(f));
        }
        if let Some(h) = &user_home {
            secrets.extend(HOME_SECRETS.iter().map(|s| h.join(s)));
        }
        let secrets = secrets.iter().map(|s| resolve(s)).collect();
        Checker { workspace: workspace.to_path_buf(), home: workspace.to_path_buf(), user_home, secrets, allowed: None }
    }

    /// Allowlist mode: every program the line would run must be one of these (or a
    /// harmless builtin such as `cd` or `echo`), on top of every other rule.
    #[cfg_attr(not(test), expect(dead_code, reason = "wired to a [tools.shell] setting by the config work"))]
    pub fn with_allowed_programs(mut self, programs: impl IntoIterator<Item = String>) -> Checker {
        self.allowed = Some(programs.into_iter().collect());
        self
    }

    pub fn check(&self, line: &str) -> Verdict {
        let ws = resolve(&self.workspace);
        let mut state = State { checker: self, cwds: vec![Some(ws.clone())], ws, depth: 0 };
        match state.line(line) {
            Ok(()) => Verdict::Allow,
            Err(why) => Verdict::Deny(why),
        }
    }
}

/// Where a path operand leads.
/// What a command reads on its standard input.
#[derive(Debug, Clone, PartialEq)]
enum Stdin {
    /// Nothing (`/dev/null`, as the shell tool runs commands).
    Empty,
    /// Text written on the line: a here-document or here-string.
    Text(String),
    /// A pipe or a file: not known until run time.
    Unknown,
}

enum Place {
    Inside,
    /// The workspace itself.
    Root,
    Outside(PathBuf),
    Unknown(String),
}

struct State<'a> {
    checker: &'a Checker,
    /// The workspace, resolved.
    ws: PathBuf,
    /// Every directory the line may be in by now (`None`: one the checker cannot know).
    cwds: Vec<Option<PathBuf>>,
    depth: usize,
}

type Check = Result<(), String>;

fn show(words: &[Word]) -> String {
    let s = words.iter().map(|w| w.raw.as_str()).collect::<Vec<_>>().join(" ");
    if s.chars().count() > 80 { format!("{}…", s.chars().take(80).collect::<String>()) } else { s }
}

/// `/usr/bin/rm` → `rm`, `python3.12` → `python`.
fn base_name(program: &str) -> &str {
    program.rsplit('/').next().unwrap_or(program)
}

fn family(name: &str) -> &str {
    name.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.')
}

/// Options and operands, GNU style (options anywhere, `--` ends them); `values` are the
/// options that take a value (short as `-o`, long as `--output`).
struct Args<'w> {
    opts: Vec<(String, Option<Word>)>,
    operands: Vec<&'w Word>,
}

fn scan<'w>(args: &'w [Word], values: &[&str], stop_at_operand: bool) -> Args<'w> {
    let mut out = Args { opts: Vec::new(), operands: Vec::new() };
    let mut i = 0;
    while i < args.len() {
        let w = &args[i];
        let t = w.text.as_str();
        i += 1;
        if t == "--" {
            out.operands.extend(&args[i..]);
            break;
        }
        if let Some(long) = t.strip_prefix("--") {
            let (name, attached) = long.split_once('=').map_or((long, None), |(n, _)| (n, Some(w.tail(n.len() + 3))));
            let name = format!("--{name}");
            let value = match attached {
                Some(v) => Some(v),
                None if values.contains(&name.as_str()) => args.get(i).inspect(|_| i += 1).cloned(),
                None => None,
            };
            out.opts.push((name, value));
        } else if t.len() > 1 && t.starts_with('-') && !w.dynamic {
            for (k, c) in t.char_indices().skip(1) {
                let name = format!("-{c}");
                if values.contains(&name.as_str()) {
                    let value = if k + c.len_utf8() < t.len() {
                        Some(w.tail(k + c.len_utf8()))
                    } else {
                        args.get(i).inspect(|_| i += 1).cloned()
                    };
                    out.opts.push((name, value));
                    break;
                }
                out.opts.push((name, None));
            }
        } else {
            out.operands.push(w);
            if stop_at_operand {
                out.operands.extend(&args[i..]);
                break;
            }
        }
    }
    out
}

impl Args<'_> {
    fn has(&self, names: &[&str]) -> bool {
        self.opts.iter().any(|(n, _)| names.contains(&n.as_str()))
    }

    fn values(&self, names: &[&str]) -> Vec<&Word> {
        self.opts.iter().filter(|(n, _)| names.contains(&n.as_str())).filter_map(|(_, v)| v.as_ref()).collect()
    }
}

impl State<'_> {
    fn line(&mut self, text: &str) -> Check {
        let script = parse_inner(text, self.depth)
            .map_err(|e| format!("the command cannot be checked ({e}); write it more simply"))?;
        self.depth += 1;
        let r = self.script(&script);
        self.depth -= 1;
        r
    }

    fn script(&mut self, s: &Script) -> Check {
        if let Some(name) = self_calling(s) {
            return Err(format!(
                "the function `{name}` calls itself, which is how fork bombs like `:(){{ :|:& }};:` work"
            ));
        }
        // `{ sh; } < file`, `while ...; done < file` and `exec < file` give the commands
        // inside a standard input this flat list cannot place: assume any of them reads it.
        let shared_stdin = s.commands.iter().any(|c| {
            let bare = c.words.is_empty() || (c.words.len() == 1 && c.words[0].text == "exec");
            bare && c
                .redirects
                .iter()
                .any(|r| r.kind == RedirKind::Input || (r.kind == RedirKind::Read && r.target.text != "/dev/null"))
        });
        s.commands.iter().try_for_each(|c| self.command(c, s, shared_stdin))
    }

    fn command(&mut self, c: &Command, s: &Script, shared_stdin: bool) -> Check {
        let mut stdin = if c.piped || shared_stdin { Stdin::Unknown } else { Stdin::Empty };
        for r in &c.redirects {
            match r.kind {
                RedirKind::Write => self.writable(&[], &r.target, "`>` writes to")?,
                RedirKind::Read => {
                    self.not_secret(&[], &r.target)?;
                    if r.target.text != "/dev/null" {
                        stdin = Stdin::Unknown;
                    }
                }
                RedirKind::Input => {
                    stdin = match r.input.and_then(|i| s.inputs.get(i)) {
                        Some(text) => Stdin::Text(text.clone()),
                        None => Stdin::Unknown,
                    }
                }
                RedirKind::NoFile => {}
            }
        }
        for a in &c.assigns {
            if let Some(eq) = a.text.find('=') {
                self.not_secret(&[], &a.tail(eq + 1))?;
            }
        }
        if c.words.is_empty() { Ok(()) } else { self.argv(&c.words, &stdin, false) }
    }

    /// One program with its arguments; `xargs` is set when more arguments will be
    /// appended at run time.
    fn argv(&mut self, words: &[Word], stdin: &Stdin, xargs: bool) -> Check {
        let program = &words[0];
        let args = &words[1..];
        let cmd = show(words);
        if program.dynamic || program.glob {
            return Err(format!(
                "`{cmd}`: the program name `{}` is only known when the line runs, so it cannot be checked; write the command out",
                program.raw
            ));
        }
        let name = base_name(&program.text);
        if let Some(allowed) = &self.checker.allowed
            && !allowed.contains(name)
            && !SAFE_BUILTINS.contains(&name)
        {
            let list = allowed.iter().cloned().collect::<Vec<_>>().join(", ");
            return Err(format!("`{cmd}`: `{name}` is not one of the allowed programs ({list})"));
        }
        for a in args {
            self.not_secret(words, a)?;
        }
        if reads_folders(name, args) {
            for a in args.iter().filter(|a| !a.text.starts_with('-')) {
                self.no_secret_inside(words, a)?;
            }
        }
        if xargs
            && (DELETERS.contains(&name)
                || CHANGERS.contains(&name)
                || ["chmod", "chown", "chgrp", "cp"].contains(&name))
        {
            return Err(format!(
                "`{cmd}` gets its paths from xargs' input, which the checker cannot see; use `find DIR ... -delete` or name the files"
            ));
        }
        if SYSTEM.contains(&name) || name.starts_with("mkfs") {
            return Err(format!(
                "`{cmd}` changes the machine itself (power, services, disks, users or firewall), which the assistant may not do"
            ));
        }
        if PRIVILEGE.contains(&name) {
            return Err(format!("`{cmd}` changes privileges or the root directory, which the assistant may not do"));
        }
        match name {
            "rm" | "rmdir" | "unlink" | "shred" | "mv" | "ln" | "touch" | "mkdir" | "truncate" | "tee" | "mkfifo"
            | "mknod" | "cp" | "install" | "rsync" | "chmod" | "chown" | "chgrp" | "dd" | "sed" | "curl" | "wget"
            | "tar" | "unzip" => self.changed_paths(name, words)?,
            "find" => self.find(words)?,
            "kill" | "pkill" | "killall" => self.kill(words)?,
            "cd" | "pushd" | "popd" => self.cd(name, args),
            "eval" => {
                if let Some(w) = args.iter().find(|w| w.dynamic) {
                    return Err(format!("`{cmd}` runs `{}`, which is only known when the line runs", w.raw));
                }
                self.line(&args.iter().map(|w| w.text.as_str()).collect::<Vec<_>>().join(" "))?;
            }
            "trap" => {
                if let Some(action) = scan(args, &[], false).operands.first() {
                    self.code_string(words, action)?;
                }
            }
            "alias" => {
                for a in args {
                    if let Some((_, value)) = a.text.split_once('=') {
                        self.code_string(words, &a.tail(a.text.len() - value.len()))?;
                    }
                }
            }
            "source" | "." => {
                if let Some(script) = args.first() {
                    self.script_file(words, script)?;
                }
            }
            "watch" => {
                let a = scan(args, &["-n", "--interval", "-d"], true);
                if a.has(&["-x", "--exec"]) {
                    let inner: Vec<Word> = a.operands.into_iter().cloned().collect();
                    if !inner.is_empty() {
                        self.argv(&inner, &Stdin::Empty, false)?;
                    }
                } else if let Some(w) = a.operands.iter().find(|w| w.dynamic) {
                    return Err(format!("`{cmd}` runs `{}`, which is only known when the line runs", w.raw));
                } else {
                    self.line(&a.operands.iter().map(|w| w.text.as_str()).collect::<Vec<_>>().join(" "))?;
                }
            }
            "script" | "flock" => {
                let a = scan(args, &["-c", "--command", "-w", "--timeout", "-E", "--conflict-exit-code"], true);
                match a.values(&["-c", "--command"]).first() {
                    Some(code) => self.code_string(words, code)?,
                    None if name == "flock" && a.operands.len() > 1 => {
                        let inner: Vec<Word> = a.operands[1..].iter().map(|w| (*w).clone()).collect();
                        self.argv(&inner, stdin, xargs)?;
                    }
                    None => {}
                }
            }
            _ if SHELLS.contains(&family(name))
                || name == "busybox" && args.first().is_some_and(|a| SHELLS.contains(&a.text.as_str())) =>
            {
                let args = if name == "busybox" { &args[1..] } else { args };
                self.shell(words, args, stdin, xargs)?;
            }
            _ if INTERPRETERS.contains(&family(name)) => {
                let a = scan(args, &["-c", "-e", "-E", "-m", "-r", "-p", "-W", "-X", "-I", "-M"], true);
                let inline = a.has(&["-c", "-e", "-E", "-m", "-r", "-p", "--eval", "--print"]);
                let from_stdin = a.operands.first().is_none_or(|o| o.text == "-");
                if *stdin == Stdin::Unknown && !inline && from_stdin {
                    return Err(format!(
                        "`{cmd}` runs code from its input, which the checker cannot see (like `curl ... | sh`); save it to a file in the workspace first"
                    ));
                }
            }
            _ => self.wrapper(words, name, args, stdin, xargs)?,
        }
        if program.text.contains('/') {
            self.program_file(words, program)?;
        }
        Ok(())
    }
}

/// Whether the program reads whole folder trees given as arguments.
fn reads_folders(name: &str, args: &[Word]) -> bool {
    let flag = |short: &[char], long: &[&str]| {
        args.iter().any(|a| match a.text.strip_prefix("--") {
            Some(l) => long.contains(&l),
            None => a.text.starts_with('-') && a.text.chars().skip(1).any(|c| short.contains(&c)),
        })
    };
    match name {
        "rg" | "ag" | "ack" | "tar" | "zip" | "7z" | "rsync" | "scp" | "rgrep" => true,
        "grep" | "egrep" | "fgrep" => flag(&['r', 'R'], &["recursive", "dereference-recursive"]),
        "cp" => flag(&['r', 'R', 'a'], &["recursive", "archive"]),
        "find" => args.iter().any(|a| a.text.starts_with("-exec") || a.text.starts_with("-ok")),
        _ => false,
    }
}

/// `~` or `~/x` against `home`; `None` for `~user`.
fn tilde(home: &Path, text: &str) -> Option<PathBuf> {
    match text.strip_prefix('~')? {
        "" => Some(home.to_path_buf()),
        rest => rest.strip_prefix('/').map(|r| home.join(r)),
    }
}

/// `{}` in a `find -exec` word replaced by a starting point.
fn substitute(w: &Word, root: &Word) -> Word {
    let mut out = Word::literal(&w.text.replace("{}", &root.text));
    out.dynamic = w.dynamic || root.dynamic;
    out.tilde = out.text.starts_with('~') && root.tilde;
    out.glob = root.glob;
    if root.glob {
        out.pattern = w.text.replace("{}", &root.pattern);
    }
    out
}

/// A function defined on the line that calls itself, directly or through others.
fn self_calling(s: &Script) -> Option<String> {
    let mut calls: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for f in &s.functions {
        let body = s.commands.get(f.body.clone()).unwrap_or_default();
        let entry = calls.entry(f.name.as_str()).or_default();
        for c in body {
            // The program, and for wrappers (`nohup f &`) every word.
            let program = c.words.first().map(|w| base_name(&w.text));
            let wrapper = program.is_some_and(|p| WRAPPERS.contains(&p));
            entry.extend(c.words.iter().take(if wrapper { usize::MAX } else { 1 }).map(|w| base_name(&w.text)));
        }
    }
    for start in calls.keys() {
        let mut seen = BTreeSet::new();
        let mut todo: Vec<&str> = calls[start].iter().copied().collect();
        while let Some(f) = todo.pop() {
            if f == *start {
                return Some(start.to_string());
            }
            if seen.insert(f)
                && let Some(next) = calls.get(f)
            {
                todo.extend(next.iter().copied());
            }
        }
    }
    None
}
