//! Where a word leads (the workspace, its root, outside, or not known until run time),
//! and the three questions asked of it: may it be changed, written, read?

use std::path::{Path, PathBuf};

use super::*;

impl State<'_> {
    /// Every place `w` may name, with the path it resolved to.
    pub(super) fn places(&self, w: &Word) -> Vec<(Place, PathBuf)> {
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
    pub(super) fn mutable(&self, words: &[Word], w: &Word, root_ok: bool) -> Check {
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
    pub(super) fn writable(&self, words: &[Word], w: &Word, how: &str) -> Check {
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
    pub(super) fn not_secret(&self, words: &[Word], w: &Word) -> Check {
        let cmd = if words.is_empty() { w.raw.clone() } else { show(words) };
        let refuse = |p: &Path| {
            Err(format!(
                "`{cmd}` touches {}, a secret (keys, passwords or Skynet's own settings and database), which the assistant may not read",
                p.display()
            ))
        };
        // `--opt=PATH`, curl's `@PATH` and `name=@PATH` name files too.
        let mut candidates = vec![w.clone()];
        if let Some(eq) = w.text.find('=') {
            candidates.push(w.tail(eq + 1));
        }
        for c in candidates.clone() {
            if c.text.starts_with('@') {
                candidates.push(c.tail(1));
            }
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
            for p in self.reached(c) {
                if let Some(s) = self.checker.secrets.iter().find(|s| p.starts_with(s)) {
                    return refuse(s);
                }
                if p.starts_with("/proc") && p.file_name().is_some_and(|n| n == "environ" || n == "mem") {
                    return refuse(&p);
                }
            }
        }
        Ok(())
    }

    /// The paths a file-handling program changes or writes: inside the workspace only.
    pub(super) fn changed_paths(&mut self, name: &str, words: &[Word]) -> Check {
        let args = &words[1..];
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
            _ => {}
        }
        Ok(())
    }

    /// For programs that read whole folders (`grep -r`, `tar`, `cp -r`): a folder that
    /// holds a secret, like the Skynet home above the workspace, is refused too.
    pub(super) fn no_secret_inside(&self, words: &[Word], w: &Word) -> Check {
        for p in self.reached(w) {
            if p == Path::new("/") {
                continue;
            }
            if let Some(s) = self.checker.secrets.iter().find(|s| s.starts_with(&p) && **s != p) {
                return Err(format!(
                    "`{}` reads all of {}, which holds {}, a secret (keys, passwords or Skynet's own settings and database); name the files or folders it needs",
                    show(words),
                    p.display(),
                    s.display()
                ));
            }
        }
        Ok(())
    }

    /// The paths a static word may reach, with `~` also read as the gateway user's real
    /// home (where `~/.ssh` lives), whatever `HOME` the shell gets.
    fn reached(&self, w: &Word) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = self.places(w).into_iter().map(|(_, p)| p).collect();
        if w.tilde
            && let Some(home) = &self.checker.user_home
            && let Some(p) = tilde(home, &w.text)
        {
            out.push(resolve(&p));
        }
        out.retain(|p| !p.as_os_str().is_empty());
        out
    }
}
