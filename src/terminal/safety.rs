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
        let user_home = std::env::var_os("HOME").map(PathBuf::from).filter(|h| h.is_absolute());
        let mut secrets: Vec<PathBuf> = SYSTEM_SECRETS.iter().map(PathBuf::from).collect();
        for f in ["skynet.toml", "skynet.db", "skynet.db-wal", "skynet.db-shm"] {
            secrets.push(skynet_home.join(f));
        }
        for h in user_home.iter().chain([&workspace.to_path_buf()]) {
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
        s.commands.iter().try_for_each(|c| self.command(c))
    }

    fn command(&mut self, c: &Command) -> Check {
        let mut stdin_from_file = false;
        for r in &c.redirects {
            match r.kind {
                RedirKind::Write => self.writable(&[], &r.target, "`>` writes to")?,
                RedirKind::Read => {
                    self.not_secret(&[], &r.target)?;
                    stdin_from_file |= r.target.text != "/dev/null";
                }
                RedirKind::Input => stdin_from_file = true,
                RedirKind::NoFile => {}
            }
        }
        for a in &c.assigns {
            if let Some(eq) = a.text.find('=') {
                self.not_secret(&[], &a.tail(eq + 1))?;
            }
        }
        if c.words.is_empty() { Ok(()) } else { self.argv(&c.words, c.piped || stdin_from_file, false) }
    }

    /// One program with its arguments. `stdin` is a pipe or file; `xargs` is set when more
    /// arguments will be appended at run time.
    fn argv(&mut self, words: &[Word], stdin: bool, xargs: bool) -> Check {
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
            "rm" | "rmdir" | "unlink" | "shred" | "mv" => {
                for op in scan(args, &[], false).operands {
                    self.mutable(words, op, false)?;
                }
            }
            "ln" | "touch" | "mkdir" | "truncate" | "tee" | "mkfifo" | "mknod" => {
                let values: &[&str] = match name {
                    "ln" => &["-t", "--target-directory", "-S", "--suffix"],
                    "touch" => &["-d", "-r", "-t", "--date", "--reference"],
                    "truncate" => &["-s", "-r", "--size", "--reference"],
                    "mkdir" | "mkfifo" | "mknod" => &["-m", "--mode", "--context"],
                    _ => &[],
                };
                let a = scan(args, values, false);
                let targets = if name == "ln" { a.values(&["-t", "--target-directory"]) } else { Vec::new() };
                for op in a.operands.iter().copied().chain(targets) {
                    self.mutable(words, op, true)?;
                }
            }
            "cp" | "install" | "rsync" => {
                let a = scan(args, &["-t", "--target-directory", "-m", "-o", "-g", "-S", "-e"], false);
                let dest = a.values(&["-t", "--target-directory"]);
                let dest = if dest.is_empty() { a.operands.last().copied().into_iter().collect() } else { dest };
                for d in dest.into_iter().filter(|d| !d.text.contains(':') || d.text.starts_with('/')) {
                    self.mutable(words, d, true)?;
                }
            }
            "chmod" | "chown" | "chgrp" => {
                let a = scan(args, &["--reference"], false);
                let skip = usize::from(!a.has(&["--reference"]));
                for op in a.operands.into_iter().skip(skip) {
                    self.mutable(words, op, true)?;
                }
            }
            "dd" => self.dd(words)?,
            "sed" => {
                let a = scan(args, &["-e", "-f", "--expression", "--file", "-l", "--line-length"], false);
                if a.opts.iter().any(|(n, _)| n == "-i" || n.starts_with("--in-place")) {
                    let skip = usize::from(!a.has(&["-e", "-f", "--expression", "--file"]));
                    for op in a.operands.into_iter().skip(skip) {
                        self.mutable(words, op, true)?;
                    }
                }
            }
            "curl" | "wget" | "tar" | "unzip" => {
                let (outputs, others): (&[&str], &[&str]) = match name {
                    "curl" => (
                        &[
                            "-o",
                            "--output",
                            "--output-dir",
                            "-D",
                            "--dump-header",
                            "-c",
                            "--cookie-jar",
                            "--trace",
                            "--trace-ascii",
                            "--stderr",
                        ],
                        &[
                            "-H",
                            "-d",
                            "-u",
                            "-A",
                            "-e",
                            "-X",
                            "-T",
                            "-K",
                            "-b",
                            "-F",
                            "-U",
                            "-x",
                            "-m",
                            "-w",
                            "-r",
                            "-E",
                            "--header",
                            "--data",
                            "--user",
                            "--request",
                            "--upload-file",
                            "--config",
                            "--cookie",
                            "--form",
                            "--proxy",
                            "--max-time",
                            "--write-out",
                        ],
                    ),
                    "wget" => (
                        &[
                            "-O",
                            "--output-document",
                            "-P",
                            "--directory-prefix",
                            "-o",
                            "--output-file",
                            "-a",
                            "--append-output",
                        ],
                        &[
                            "-U",
                            "-e",
                            "-t",
                            "-T",
                            "-i",
                            "--user-agent",
                            "--header",
                            "--execute",
                            "--tries",
                            "--timeout",
                            "--input-file",
                        ],
                    ),
                    "tar" => (
                        &["-C", "--directory"],
                        &["-f", "-T", "-X", "-b", "-I", "--file", "--files-from", "--exclude-from"],
                    ),
                    _ => (&["-d"], &[]),
                };
                let values: Vec<&str> = outputs.iter().chain(others).copied().collect();
                let a = scan(args, &values, false);
                for v in a.values(outputs) {
                    self.writable(words, v, "writes to")?;
                }
            }
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
                        self.argv(&inner, false, false)?;
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
                self.shell(words, args, stdin)?;
            }
            _ if INTERPRETERS.contains(&family(name)) => {
                let a = scan(args, &["-c", "-e", "-E", "-m", "-r", "-p", "-W", "-X", "-I", "-M"], true);
                let inline = a.has(&["-c", "-e", "-E", "-m", "-r", "-p", "--eval", "--print"]);
                let from_stdin = a.operands.first().is_none_or(|o| o.text == "-");
                if stdin && !inline && from_stdin {
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

    /// Programs that run another program: that one is checked like any other.
    fn wrapper(&mut self, words: &[Word], name: &str, args: &[Word], stdin: bool, xargs: bool) -> Check {
        let (values, skip): (&[&str], usize) = match name {
            "env" => (&["-u", "--unset", "-C", "--chdir", "-S", "--split-string"], 0),
            "nohup" | "setsid" | "builtin" | "chronic" | "unbuffer" | "catchsegv" | "busybox" => (&[], 0),
            "nice" => (&["-n", "--adjustment"], 0),
            "ionice" => (&["-c", "-n", "--class", "--classdata"], 0),
            "stdbuf" => (&["-i", "-o", "-e", "--input", "--output", "--error"], 0),
            "timeout" => (&["-s", "-k", "--signal", "--kill-after"], 1),
            "time" => (&["-f", "-o", "--format", "--output"], 0),
            "exec" => (&["-a"], 0),
            "command" => (&[], 0),
            "taskset" | "chrt" => (&[], 1),
            "strace" | "ltrace" => {
                (&["-o", "-e", "-p", "-s", "-u", "-E", "-I", "-b", "-P", "-X", "-a", "-n", "-S", "-A", "-D", "-L"], 0)
            }
            "xargs" => (
                &[
                    "-I",
                    "-E",
                    "-e",
                    "-d",
                    "-n",
                    "-L",
                    "-l",
                    "-P",
                    "-s",
                    "-a",
                    "--replace",
                    "--eof",
                    "--delimiter",
                    "--max-args",
                    "--max-lines",
                    "--max-procs",
                    "--max-chars",
                    "--arg-file",
                    "--process-slot-var",
                ],
                0,
            ),
            _ => return Ok(()),
        };
        let a = scan(args, values, true);
        if (name == "command" && a.has(&["-v", "-V"])) || (name == "taskset" && a.has(&["-p", "--pid"])) {
            return Ok(());
        }
        if name == "env" {
            if a.has(&["-C", "--chdir"]) {
                self.cwds.push(None);
            }
            for s in a.values(&["-S", "--split-string"]) {
                let rest = a.operands.iter().map(|w| w.text.as_str()).collect::<Vec<_>>().join(" ");
                self.code_string(words, &Word::literal(&format!("{} {rest}", s.text)))?;
            }
        }
        let mut inner: Vec<Word> = a.operands.into_iter().skip(skip).cloned().collect();
        if name == "env" {
            while inner.first().is_some_and(|w| w.text.contains('=')) {
                inner.remove(0);
            }
        }
        if inner.is_empty() { Ok(()) } else { self.argv(&inner, stdin, xargs || name == "xargs") }
    }

    fn shell(&mut self, words: &[Word], args: &[Word], stdin: bool) -> Check {
        let (mut command, mut read_stdin, mut i) = (false, false, 0);
        while let Some(a) = args.get(i) {
            let t = a.text.as_str();
            if t == "--" {
                i += 1;
                break;
            }
            if t.starts_with("--") {
                i += if ["--rcfile", "--init-file"].contains(&t) { 2 } else { 1 };
                continue;
            }
            if t.len() < 2 || !(t.starts_with('-') || t.starts_with('+')) {
                break;
            }
            command |= t.contains('c');
            read_stdin |= t.contains('s');
            i += if t.ends_with('o') || t.ends_with('O') { 2 } else { 1 };
        }
        let operands = args.get(i..).unwrap_or_default();
        if command {
            return match operands.first() {
                Some(code) => self.code_string(words, code),
                None => Ok(()),
            };
        }
        match operands.first() {
            Some(script) if !read_stdin => self.script_file(words, script),
            _ if stdin => Err(format!(
                "`{}`: piping into a shell runs code the checker cannot see (like `curl ... | sh`); save the script in the workspace, read it, then run it with `sh FILE`",
                show(words)
            )),
            _ => Ok(()),
        }
    }

    /// A string that will run as shell code (`sh -c`, `trap`, `alias`, `script -c`).
    fn code_string(&mut self, words: &[Word], code: &Word) -> Check {
        if code.dynamic {
            return Err(format!(
                "`{}` runs `{}` as shell code, but its value is only known when the line runs; write the code out",
                show(words),
                code.raw
            ));
        }
        self.line(&code.text)
    }

    /// `sh FILE`, `. FILE`: the script is read and checked like the line itself.
    fn script_file(&mut self, words: &[Word], script: &Word) -> Check {
        let cmd = show(words);
        let places = self.places(script);
        for (place, path) in places {
            match place {
                Place::Inside => {}
                Place::Unknown(why) => return Err(format!("`{cmd}` runs a script the checker cannot read: {why}")),
                Place::Root | Place::Outside(_) => {
                    return Err(format!(
                        "`{cmd}` runs the script {}, which is outside the workspace, so the checker cannot vouch for it",
                        path.display()
                    ));
                }
            }
            let text = match std::fs::metadata(&path) {
                Ok(m) if m.is_file() && m.len() <= 256 * 1024 => std::fs::read(&path).map_err(|e| e.to_string()),
                Ok(m) if m.is_file() => Err("it is larger than 256 KiB".to_string()),
                Ok(_) => Err("it is not a file".to_string()),
                Err(_) => Err(
                    "it does not exist yet; the checker reads a script before it runs, so write it first (file_write), then run it"
                        .to_string(),
                ),
            };
            let text = text.map_err(|why| format!("`{cmd}` runs the script {}: {why}", path.display()))?;
            self.line(&String::from_utf8_lossy(&text))
                .map_err(|why| format!("the script {} is refused: {why}", path.display()))?;
        }
        Ok(())
    }

    /// `./build.sh`: a shell script in the workspace is checked too.
    fn program_file(&mut self, words: &[Word], program: &Word) -> Check {
        for (place, path) in self.places(program) {
            if !matches!(place, Place::Inside) {
                continue;
            }
            let mut head = [0u8; 128];
            let n = std::fs::File::open(&path).and_then(|mut f| std::io::Read::read(&mut f, &mut head)).unwrap_or(0);
            let head = &head[..n];
            let first_line =
                String::from_utf8_lossy(head.split(|&b| b == b'\n').next().unwrap_or_default()).into_owned();
            let shell_script = match first_line.strip_prefix("#!") {
                Some(interp) => SHELLS.iter().any(|s| interp.split(['/', ' ']).any(|p| p == *s)),
                None => n > 0 && !head.starts_with(b"\x7fELF") && !head.contains(&0),
            };
            if shell_script {
                self.script_file(words, program)?;
            }
        }
        Ok(())
    }

    fn dd(&mut self, words: &[Word]) -> Check {
        for a in &words[1..] {
            if a.text.starts_with("of=") {
                self.writable(words, &a.tail(3), "writes to")?;
            } else if let Some(input) = a.text.strip_prefix("if=") {
                let harmless = ["/dev/zero", "/dev/null", "/dev/random", "/dev/urandom"];
                if input.starts_with("/dev/") && !harmless.contains(&input) {
                    return Err(format!("`{}` reads a raw device, which the assistant may not do", show(words)));
                }
            }
        }
        Ok(())
    }

    fn find(&mut self, words: &[Word]) -> Check {
        let args = &words[1..];
        let mut i = 0;
        while args.get(i).is_some_and(|a| ["-H", "-L", "-P"].contains(&a.text.as_str())) {
            i += 1;
        }
        let mut roots: Vec<Word> = Vec::new();
        while let Some(a) = args.get(i).filter(|a| !a.text.starts_with('-') && a.text != "(" && a.text != "!") {
            roots.push(a.clone());
            i += 1;
        }
        if roots.is_empty() {
            roots.push(Word::literal("."));
        }
        while let Some(a) = args.get(i) {
            i += 1;
            match a.text.as_str() {
                "-delete" => {
                    for r in &roots {
                        self.mutable(words, r, true)?;
                    }
                }
                "-fprint" | "-fprint0" | "-fls" | "-fprintf" => {
                    if let Some(f) = args.get(i) {
                        self.writable(words, f, "writes to")?;
                    }
                }
                "-exec" | "-execdir" | "-ok" | "-okdir" => {
                    let start = i;
                    while args.get(i).is_some_and(|w| w.text != ";" && w.text != "+") {
                        i += 1;
                    }
                    let inner = &args[start..i];
                    i += 1;
                    if inner.is_empty() {
                        continue;
                    }
                    for r in &roots {
                        let with_root: Vec<Word> = inner
                            .iter()
                            .map(|w| if w.text.contains("{}") { substitute(w, r) } else { w.clone() })
                            .collect();
                        self.argv(&with_root, false, false)?;
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn kill(&mut self, words: &[Word]) -> Check {
        let cmd = show(words);
        let name = base_name(&words[0].text);
        let gateway = i64::from(std::process::id());
        if name != "kill" {
            return match words[1..]
                .iter()
                .find(|w| w.dynamic || ["skynet", "init", "systemd"].iter().any(|n| w.text.contains(n)))
            {
                Some(w) => Err(format!("`{cmd}` could stop `{}`, the gateway or the system", w.raw)),
                None => Ok(()),
            };
        }
        let (mut targets, mut skip, mut rest_are_pids) = (Vec::new(), false, false);
        for (i, a) in words[1..].iter().enumerate() {
            let t = a.text.as_str();
            if skip {
                skip = false;
            } else if rest_are_pids {
                targets.push(a);
            } else if t == "--" {
                rest_are_pids = true;
            } else if t == "-s" || t == "-n" {
                skip = true;
            } else if t.starts_with("-l") || t.starts_with("-L") {
                return Ok(());
            } else if !(i == 0 && t.starts_with('-')) {
                targets.push(a);
            }
        }
        for t in targets {
            if t.dynamic {
                return Err(format!(
                    "`{cmd}` kills a process chosen when the line runs (`$PPID` is the gateway itself); name the process id"
                ));
            }
            if let Ok(pid) = t.text.parse::<i64>()
                && (pid == 1 || pid == -1 || pid.abs() == gateway)
            {
                return Err(format!("`{cmd}` would kill init, every process or the gateway itself"));
            }
        }
        Ok(())
    }

    fn cd(&mut self, name: &str, args: &[Word]) {
        let target = args.iter().find(|a| !a.text.starts_with('-') || a.text == "-");
        let mut next = Vec::new();
        for cwd in &self.cwds {
            next.push(match (name, target) {
                ("cd", None) => Some(self.checker.home.clone()),
                ("cd", Some(t)) if !t.dynamic && t.text != "-" && !t.glob => {
                    let t = if t.tilde { tilde(&self.checker.home, &t.text) } else { Some(PathBuf::from(&t.text)) };
                    match (t, cwd) {
                        (Some(t), _) if t.is_absolute() => Some(resolve(&t)),
                        (Some(t), Some(c)) => Some(resolve(&c.join(t))),
                        _ => None,
                    }
                }
                _ => None,
            });
        }
        for n in next {
            if !self.cwds.contains(&n) {
                self.cwds.push(n);
            }
        }
        if self.cwds.len() > 16 {
            self.cwds = vec![None];
        }
    }

    /// Every place `w` may name, with the path it resolved to.
    fn places(&self, w: &Word) -> Vec<(Place, PathBuf)> {
        if w.dynamic {
            let why = format!("`{}` is only known when the line runs", w.raw);
            return vec![(Place::Unknown(why), PathBuf::new())];
        }
        let mut out = Vec::new();
        for cwd in &self.cwds {
            let (base, rel) = if w.tilde {
                let Some(home) = tilde(&self.checker.home, "~") else { continue };
                match w.text.split_once('/') {
                    Some(("~", rest)) => (Some(home), rest.to_string()),
                    None if w.text == "~" => (Some(home), String::new()),
                    _ => {
                        out.push((Place::Outside(PathBuf::from(&w.text)), PathBuf::from(&w.text)));
                        continue;
                    }
                }
            } else {
                (cwd.clone(), w.text.clone())
            };
            let base = match base {
                Some(b) => b,
                None if rel.starts_with('/') => PathBuf::from("/"),
                None => {
                    let why = "it follows a `cd` to a directory the checker cannot know".to_string();
                    out.push((Place::Unknown(why), PathBuf::new()));
                    continue;
                }
            };
            let paths = if w.glob {
                let pattern = if w.tilde { w.pattern.split_once('/').map_or("", |(_, r)| r) } else { &w.pattern };
                match expand_glob(&base, pattern) {
                    Ok(p) => p,
                    Err(why) => {
                        out.push((Place::Unknown(why), PathBuf::new()));
                        continue;
                    }
                }
            } else {
                vec![base.join(&rel)]
            };
            for p in paths {
                let real = resolve(&p);
                let place = if real == self.ws {
                    Place::Root
                } else if real.starts_with(&self.ws) {
                    Place::Inside
                } else {
                    Place::Outside(real.clone())
                };
                out.push((place, real));
            }
        }
        out
    }

    /// A path the command deletes or changes: inside the workspace only.
    fn mutable(&self, words: &[Word], w: &Word, root_ok: bool) -> Check {
        let cmd = show(words);
        for (place, _) in self.places(w) {
            match place {
                Place::Inside => {}
                Place::Root if root_ok => {}
                Place::Root => return Err(format!("`{cmd}` would delete the whole workspace")),
                Place::Outside(p) => {
                    return Err(format!(
                        "`{cmd}` changes {}, which is outside the workspace; the assistant works inside its workspace only",
                        p.display()
                    ));
                }
                Place::Unknown(why) => {
                    return Err(format!(
                        "`{cmd}` changes a path the checker cannot pin down: {why}; name it literally"
                    ));
                }
            }
        }
        Ok(())
    }

    /// A file the command writes: inside the workspace, or a harmless device.
    fn writable(&self, words: &[Word], w: &Word, how: &str) -> Check {
        let harmless = ["/dev/null", "/dev/stdout", "/dev/stderr", "/dev/tty"];
        if !w.dynamic && (harmless.contains(&w.text.as_str()) || w.text.starts_with("/dev/fd/")) {
            return Ok(());
        }
        let cmd = if words.is_empty() { format!("{how} {}", w.raw) } else { show(words) };
        for (place, _) in self.places(w) {
            match place {
                Place::Inside | Place::Root => {}
                Place::Outside(p) => {
                    return Err(format!(
                        "`{cmd}` {how} {}, which is outside the workspace; write inside the workspace instead",
                        p.display()
                    ));
                }
                Place::Unknown(why) => return Err(format!("`{cmd}` {how} a file the checker cannot pin down: {why}")),
            }
        }
        Ok(())
    }

    /// Refuses a word that names (or may name) a secret.
    fn not_secret(&self, words: &[Word], w: &Word) -> Check {
        let cmd = if words.is_empty() { w.raw.clone() } else { show(words) };
        let refuse = |p: &Path| {
            Err(format!(
                "`{cmd}` touches {}, a secret (keys, passwords or Skynet's own settings and database), which the assistant may not read",
                p.display()
            ))
        };
        let mut candidates = vec![w.clone()];
        if let Some(eq) = w.text.find('=') {
            candidates.push(w.tail(eq + 1));
        }
        if w.text.starts_with('@') {
            candidates.push(w.tail(1));
        }
        for c in &candidates {
            let t = &c.text;
            if t.contains("/proc/") && (t.contains("environ") || t.ends_with("/mem")) {
                return refuse(Path::new(t));
            }
            if c.dynamic {
                let prefix: String = t.chars().take_while(|&ch| ch != EXP && !"*?[".contains(ch)).collect();
                let looks_like = |base: &Path| {
                    let p = base.join(&prefix).to_string_lossy().into_owned();
                    self.checker.secrets.iter().find(|s| p.len() > 1 && s.to_string_lossy().starts_with(&p)).cloned()
                };
                if prefix.starts_with('/')
                    && let Some(s) = looks_like(Path::new("/"))
                {
                    return refuse(&s);
                }
                continue;
            }
            let mut reached: Vec<PathBuf> = self.places(c).into_iter().map(|(_, p)| p).collect();
            if c.tilde
                && let Some(home) = &self.checker.user_home
                && let Some(p) = tilde(home, t)
            {
                reached.push(resolve(&p));
            }
            for p in reached.iter().filter(|p| !p.as_os_str().is_empty()) {
                if let Some(s) = self.checker.secrets.iter().find(|s| p.starts_with(s)) {
                    return refuse(s);
                }
                if p.starts_with("/proc") && p.file_name().is_some_and(|n| n == "environ" || n == "mem") {
                    return refuse(p);
                }
            }
        }
        Ok(())
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
