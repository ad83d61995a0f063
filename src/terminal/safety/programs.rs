//! Programs that need more than a look at their paths: wrappers that run another
//! program, shells and scripts, `find`, `dd`, `kill`, and `cd`, which moves the line.

use std::path::PathBuf;

use super::*;

impl State<'_> {
    /// Programs that run another program: that one is checked like any other.
    pub(super) fn wrapper(&mut self, words: &[Word], name: &str, args: &[Word], stdin: &Stdin, xargs: bool) -> Check {
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
        let mut inner: Vec<Word> = a.operands.iter().skip(skip).map(|w| (*w).clone()).collect();
        if name == "xargs"
            && let Some(token) = xargs_replace(&a, args)
        {
            // `xargs -I{} sh -c '{}'`: a word holding the token gets its value from the input.
            for w in inner.iter_mut().filter(|w| w.text.contains(&token)) {
                w.text = w.text.replace(&token, &EXP.to_string());
                w.dynamic = true;
            }
        }
        if name == "env" {
            while inner.first().is_some_and(|w| w.text.contains('=')) {
                inner.remove(0);
            }
        }
        if inner.is_empty() { Ok(()) } else { self.argv(&inner, stdin, xargs || name == "xargs") }
    }

    /// `xargs` is set when the input will add arguments (so `xargs sh -c` runs code from it).
    pub(super) fn shell(&mut self, words: &[Word], args: &[Word], stdin: &Stdin, xargs: bool) -> Check {
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
        let from_xargs = || {
            Err(format!("`{}` runs code that xargs takes from its input, which the checker cannot see", show(words)))
        };
        if command {
            return match operands.first() {
                Some(code) => self.code_string(words, code),
                None if xargs => from_xargs(),
                None => Ok(()),
            };
        }
        match (operands.first(), stdin) {
            (Some(script), _) if !read_stdin => self.script_file(words, script),
            (None, _) if xargs && !read_stdin => from_xargs(),
            (_, Stdin::Empty) => Ok(()),
            (_, Stdin::Text(script)) => self.line(script),
            (_, Stdin::Unknown) => Err(format!(
                "`{}`: piping into a shell runs code the checker cannot see (like `curl ... | sh`); save the script in the workspace, read it, then run it with `sh FILE`",
                show(words)
            )),
        }
    }

    /// A string that will run as shell code (`sh -c`, `trap`, `alias`, `script -c`).
    pub(super) fn code_string(&mut self, words: &[Word], code: &Word) -> Check {
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
    pub(super) fn script_file(&mut self, words: &[Word], script: &Word) -> Check {
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
    pub(super) fn program_file(&mut self, words: &[Word], program: &Word) -> Check {
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

    pub(super) fn dd(&mut self, words: &[Word]) -> Check {
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

    pub(super) fn find(&mut self, words: &[Word]) -> Check {
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
                        self.argv(&with_root, &Stdin::Empty, false)?;
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    pub(super) fn kill(&mut self, words: &[Word]) -> Check {
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

    pub(super) fn cd(&mut self, name: &str, args: &[Word]) {
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
}

/// The token `xargs -I TOKEN` (or `-i[TOKEN]`, `--replace[=TOKEN]`) replaces with input.
fn xargs_replace(a: &Args<'_>, args: &[Word]) -> Option<String> {
    if let Some(v) = a.values(&["-I", "--replace"]).first() {
        return Some(v.text.clone());
    }
    let short = args.iter().find_map(|w| w.text.strip_prefix("-i").filter(|_| !w.text.starts_with("--")));
    let long = a.has(&["--replace"]);
    match short {
        Some(rest) if !rest.is_empty() => Some(rest.to_string()),
        Some(_) => Some("{}".into()),
        None if long => Some("{}".into()),
        None => None,
    }
}
