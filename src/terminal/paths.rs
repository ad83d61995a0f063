//! Where a path really leads: symbolic links followed (also for paths that do not exist
//! yet), and `sh` glob patterns expanded the way the shell will, so the checker and the
//! file tools judge the place a command will touch rather than the name it was given.

use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

/// The absolute path `path` leads to, like `realpath -m`: every symbolic link followed,
/// `..` applied after that, components that do not exist kept as written.
pub fn resolve(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    let mut pending: Vec<OsString> = Vec::new();
    push_components(&mut pending, path);
    let mut hops = 0;
    while let Some(c) = pending.pop() {
        if c == ".." {
            out.pop();
            continue;
        }
        let next = out.join(&c);
        match std::fs::symlink_metadata(&next) {
            Ok(m) if m.file_type().is_symlink() && hops < 40 => {
                hops += 1;
                match std::fs::read_link(&next) {
                    Ok(target) => {
                        if target.is_absolute() {
                            out = PathBuf::from("/");
                        }
                        push_components(&mut pending, &target);
                    }
                    Err(_) => out = next,
                }
            }
            _ => out = next,
        }
    }
    out
}

/// Pushes the components of `path` so that popping yields them in order.
fn push_components(stack: &mut Vec<OsString>, path: &Path) {
    for c in path.components().rev() {
        match c {
            Component::Normal(n) => stack.push(n.to_os_string()),
            Component::ParentDir => stack.push("..".into()),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
}

/// Expands a glob `pattern` (relative to `base` unless absolute) against the file
/// system, as `sh` would: `*`, `?`, `[...]`, `\` escapes; hidden names only for
/// patterns that start with `.`. No match leaves the pattern as a literal path, as in
/// `sh`. A component that could match `..` (like `.*` in dash) is an error: it would
/// reach the parent directory.
pub fn expand_glob(base: &Path, pattern: &str) -> Result<Vec<PathBuf>, String> {
    let (mut found, rest) = match pattern.strip_prefix('/') {
        Some(rest) => (vec![PathBuf::from("/")], rest),
        None => (vec![base.to_path_buf()], pattern),
    };
    for part in rest.split('/').filter(|p| !p.is_empty()) {
        if !has_magic(part) {
            let lit = unescape(part);
            found.iter_mut().for_each(|p| p.push(&lit));
            continue;
        }
        // A leading `.` is only matched explicitly, never by `*` or `?`.
        let dots = !part.starts_with(['*', '?']);
        if dots && matches(part, "..") {
            return Err(format!("the pattern `{part}` also matches `..`, the parent directory"));
        }
        let mut next = Vec::new();
        for dir in &found {
            let Ok(entries) = std::fs::read_dir(dir) else { continue };
            let mut names: Vec<String> =
                entries.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect();
            names.sort();
            for n in names {
                if (!n.starts_with('.') || dots) && matches(part, &n) {
                    next.push(dir.join(n));
                }
            }
        }
        if next.is_empty() {
            let literal = rest.split('/').filter(|p| !p.is_empty()).map(unescape).collect::<Vec<_>>().join("/");
            let root = if pattern.starts_with('/') { PathBuf::from("/") } else { base.to_path_buf() };
            return Ok(vec![root.join(literal)]);
        }
        found = next;
    }
    Ok(found)
}

fn has_magic(part: &str) -> bool {
    let mut escaped = false;
    for c in part.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '*' | '?' | '[' => return true,
            _ => {}
        }
    }
    false
}

fn unescape(part: &str) -> String {
    let mut out = String::new();
    let mut chars = part.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            out.extend(chars.next());
        } else {
            out.push(c);
        }
    }
    out
}

/// Whether the glob `pattern` matches all of `name`.
pub fn matches(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    match_at(&p, &n)
}

fn match_at(p: &[char], n: &[char]) -> bool {
    match p.first() {
        None => n.is_empty(),
        Some('*') => (0..=n.len()).any(|k| match_at(&p[1..], &n[k..])),
        Some('?') => !n.is_empty() && match_at(&p[1..], &n[1..]),
        Some('[') => match (class(p), n.first()) {
            (Some((hit, len)), Some(&c)) => hit(c) && match_at(&p[len..], &n[1..]),
            (None, Some(&c)) => c == '[' && match_at(&p[1..], &n[1..]),
            (_, None) => false,
        },
        Some('\\') if p.len() > 1 => n.first() == Some(&p[1]) && match_at(&p[2..], &n[1..]),
        Some(&c) => n.first() == Some(&c) && match_at(&p[1..], &n[1..]),
    }
}

type ClassMatch = Box<dyn Fn(char) -> bool>;

/// A `[...]` class at the start of `p`: its test and its length in the pattern.
fn class(p: &[char]) -> Option<(ClassMatch, usize)> {
    let mut i = 1;
    let negate = matches!(p.get(i), Some('!' | '^'));
    i += usize::from(negate);
    let mut ranges = Vec::new();
    let mut first = true;
    while let Some(&c) = p.get(i) {
        if c == ']' && !first {
            let test = move |ch: char| ranges.iter().any(|&(lo, hi)| lo <= ch && ch <= hi) != negate;
            return Some((Box::new(test), i + 1));
        }
        first = false;
        if p.get(i + 1) == Some(&'-') && p.get(i + 2).is_some_and(|&e| e != ']') {
            ranges.push((c, p[i + 2]));
            i += 3;
        } else {
            ranges.push((c, c));
            i += 1;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_follows_links_even_for_missing_tails() {
        let dir = tempfile::tempdir().unwrap();
        let root = resolve(dir.path());
        std::fs::create_dir(root.join("real")).unwrap();
        std::os::unix::fs::symlink(root.join("real"), root.join("link")).unwrap();
        std::os::unix::fs::symlink("/etc", root.join("out")).unwrap();
        assert_eq!(resolve(&root.join("link/new/file")), root.join("real/new/file"));
        assert_eq!(resolve(&root.join("out/passwd")), resolve(Path::new("/etc/passwd")));
        assert_eq!(resolve(&root.join("real/../../x")), root.parent().unwrap().join("x"));
        assert_eq!(resolve(&root.join("link/..")), root);
    }

    #[test]
    fn glob_patterns_match_like_sh() {
        assert!(matches("*.rs", "main.rs") && !matches("*.rs", "main.rc"));
        assert!(matches("[a-c]?", "bz") && !matches("[!a-c]?", "bz"));
        assert!(matches(r"\*", "*") && !matches(r"\*", "a"));
        assert!(matches(".*", "..") && matches(".?", "..") && !matches(".*rc", ".."));
        let dir = tempfile::tempdir().unwrap();
        for f in ["a.txt", "b.txt", ".hidden"] {
            std::fs::write(dir.path().join(f), "").unwrap();
        }
        let names = |v: Vec<PathBuf>| {
            v.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect::<Vec<_>>()
        };
        assert_eq!(names(expand_glob(dir.path(), "*").unwrap()), ["a.txt", "b.txt"]);
        assert_eq!(names(expand_glob(dir.path(), "*.md").unwrap()), ["*.md"]);
        assert!(expand_glob(dir.path(), ".*").unwrap_err().contains(".."));
    }
}
