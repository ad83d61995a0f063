//! `file_read`, `file_write`, `file_list`: files in the workspace, and nowhere else.
//!
//! A path is confined in two steps. First it is resolved as the kernel would (every
//! symbolic link followed, also for parts that do not exist yet) and refused unless it
//! lands inside the workspace: absolute paths elsewhere, `..` and links that lead out
//! are all refused. Then it is opened one component at a time from the workspace's own
//! directory handle with `O_NOFOLLOW`, so a link swapped in between the check and the
//! open (by a shell command running at the same moment) makes the open fail instead of
//! escaping. Writes go to a temporary file in the same folder that is renamed over the
//! target, so a reader never sees half a file.

use std::ffi::{CStr, CString, OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::future::BoxFuture;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Tool, ToolCtx, ToolOutput};
use crate::agent::types::ToolSpec;
use crate::terminal::paths::resolve;

/// More than this is cut from what `file_read` shows, with a note saying so.
const READ_CAP: usize = 256 * 1024;
const WRITE_CAP: usize = 1024 * 1024;
const LIST_CAP: usize = 1000;

#[derive(Clone, Copy)]
enum Op {
    Read,
    Write,
    List,
}

/// One of the three file tools, working in `workspace`.
pub struct FileTool {
    op: Op,
    workspace: PathBuf,
}

impl FileTool {
    pub fn all(workspace: &Path) -> [FileTool; 3] {
        [Op::Read, Op::Write, Op::List].map(|op| FileTool { op, workspace: workspace.to_path_buf() })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    content: Option<String>,
}

impl Tool for FileTool {
    fn spec(&self) -> ToolSpec {
        let path = json!({"type": "string", "description": "A path relative to the workspace, e.g. notes/todo.md"});
        let (name, description, schema) = match self.op {
            Op::Read => (
                "file_read",
                "Read a text file in the workspace (the first 256 KiB).",
                json!({"type": "object", "properties": {"path": path}, "required": ["path"], "additionalProperties": false}),
            ),
            Op::Write => (
                "file_write",
                "Create or replace a file in the workspace with the given text (at most 1 MiB); missing folders are created.",
                json!({"type": "object", "properties": {"path": path, "content": {"type": "string"}},
                       "required": ["path", "content"], "additionalProperties": false}),
            ),
            Op::List => (
                "file_list",
                "List a folder in the workspace (the workspace itself when no path is given).",
                json!({"type": "object", "properties": {"path": path}, "additionalProperties": false}),
            ),
        };
        ToolSpec { name: name.into(), description: description.into(), input_schema: schema }
    }

    fn group(&self) -> &'static str {
        "files"
    }

    fn call(&self, input: Value, _ctx: ToolCtx) -> BoxFuture<'static, Result<ToolOutput, String>> {
        let (op, workspace) = (self.op, self.workspace.clone());
        Box::pin(async move {
            let input: Input = serde_json::from_value(input).map_err(|e| format!("invalid input: {e}"))?;
            let work = move || match op {
                Op::Read => read(&workspace, input.path.as_deref().ok_or("give the file's `path`")?),
                Op::Write => write(
                    &workspace,
                    input.path.as_deref().ok_or("give the file's `path`")?,
                    input.content.as_deref().ok_or("give the file's `content`")?,
                ),
                Op::List => list(&workspace, input.path.as_deref().unwrap_or(".")),
            };
            let text = tokio::task::spawn_blocking(work).await.map_err(|e| format!("the file tool failed: {e}"))??;
            Ok(text.into())
        })
    }
}

/// A path inside the workspace: the workspace's real path, and the components below it,
/// none of which was a symbolic link when it was resolved.
struct Confined {
    root: PathBuf,
    parts: Vec<OsString>,
    shown: String,
}

fn confine(workspace: &Path, path: &str) -> Result<Confined, String> {
    let shown = path.to_string();
    if path.contains('\0') {
        return Err(format!("`{shown}` is not a valid path"));
    }
    std::fs::create_dir_all(workspace)
        .map_err(|e| format!("cannot create the workspace {}: {e}", workspace.display()))?;
    let root = workspace.canonicalize().map_err(|e| format!("cannot open the workspace: {e}"))?;
    let p = Path::new(path);
    if p.components().any(|c| c == Component::ParentDir) {
        return Err(format!("`{shown}`: `..` is not allowed; paths stay inside the workspace (e.g. notes/todo.md)"));
    }
    let lexical = if p.is_absolute() {
        match p.strip_prefix(&root).or_else(|_| p.strip_prefix(workspace)) {
            Ok(rel) => root.join(rel),
            Err(_) => {
                return Err(format!(
                    "`{shown}` is outside the workspace; give a path relative to the workspace (e.g. notes/todo.md)"
                ));
            }
        }
    } else {
        root.join(p)
    };
    let real = resolve(&lexical);
    let Ok(rel) = real.strip_prefix(&root) else {
        return Err(format!("`{shown}` leads outside the workspace through a symbolic link; refused"));
    };
    let parts = rel.components().map(|c| c.as_os_str().to_os_string()).collect();
    Ok(Confined { root, parts, shown })
}

fn c_name(name: &OsStr) -> io::Result<CString> {
    CString::new(name.as_bytes()).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL in a file name"))
}

/// `openat(2)` relative to `dir`, never following a symbolic link in `name`.
fn open_at(dir: BorrowedFd<'_>, name: &OsStr, flags: libc::c_int, mode: libc::c_uint) -> io::Result<OwnedFd> {
    let name = c_name(name)?;
    let flags = flags | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    // SAFETY: a valid directory descriptor and a NUL-terminated name; no memory is shared.
    let fd = unsafe { libc::openat(dir.as_raw_fd(), name.as_ptr(), flags, mode) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: openat just returned this descriptor, and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

impl Confined {
    /// Opens the folders down to (not including) component `upto`, creating missing ones
    /// when asked.
    fn open_dirs(&self, upto: usize, create: bool) -> Result<OwnedFd, String> {
        let mut dir: OwnedFd = File::options()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
            .open(&self.root)
            .map_err(|e| format!("cannot open the workspace: {e}"))?
            .into();
        for part in &self.parts[..upto] {
            let flags = libc::O_RDONLY | libc::O_DIRECTORY;
            let mut next = open_at(dir.as_fd(), part, flags, 0);
            if create && next.as_ref().is_err_and(|e| e.kind() == io::ErrorKind::NotFound) {
                let name = c_name(part).map_err(|e| e.to_string())?;
                // SAFETY: a valid directory descriptor and a NUL-terminated name.
                if unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), 0o755) } != 0 {
                    return Err(format!("cannot create a folder for `{}`: {}", self.shown, io::Error::last_os_error()));
                }
                next = open_at(dir.as_fd(), part, flags, 0);
            }
            dir = next.map_err(|e| self.open_error(e))?;
        }
        Ok(dir)
    }

    fn open_error(&self, e: io::Error) -> String {
        match e.raw_os_error() {
            Some(libc::ELOOP) => {
                format!("`{}` changed while it was being opened (a symbolic link appeared in it); refused", self.shown)
            }
            Some(libc::ENOTDIR) => format!("a part of `{}` is a file, not a folder", self.shown),
            Some(libc::ENOENT) => format!("`{}` does not exist (file_list shows what is in the workspace)", self.shown),
            _ => format!("cannot open `{}`: {e}", self.shown),
        }
    }

    fn last(&self) -> Result<&OsStr, String> {
        self.parts.last().map(|p| p.as_os_str()).ok_or_else(|| {
            format!("`{}` is the workspace folder itself; name a file in it (file_list shows them)", self.shown)
        })
    }
}

fn read(workspace: &Path, path: &str) -> Result<String, String> {
    let c = confine(workspace, path)?;
    let name = c.last()?;
    let dir = c.open_dirs(c.parts.len() - 1, false)?;
    let fd = open_at(dir.as_fd(), name, libc::O_RDONLY | libc::O_NONBLOCK, 0).map_err(|e| c.open_error(e))?;
    let mut file = File::from(fd);
    let meta = file.metadata().map_err(|e| c.open_error(e))?;
    if meta.is_dir() {
        return Err(format!("`{path}` is a folder; use file_list to see what is in it"));
    }
    if !meta.is_file() {
        return Err(format!("`{path}` is not a regular file"));
    }
    let mut bytes = Vec::new();
    (&mut file).take(READ_CAP as u64).read_to_end(&mut bytes).map_err(|e| c.open_error(e))?;
    if bytes[..bytes.len().min(8192)].contains(&0) {
        return Err(format!("`{path}` is a binary file ({} bytes); file_read shows text only", meta.len()));
    }
    let mut text = String::from_utf8_lossy(&bytes).into_owned();
    if meta.len() > READ_CAP as u64 {
        text.push_str(&format!(
            "\n[the file is {} bytes; only the first 256 KiB are shown — use the shell tool (e.g. sed -n or tail) for the rest]",
            meta.len()
        ));
    }
    Ok(text)
}

fn write(workspace: &Path, path: &str, content: &str) -> Result<String, String> {
    if content.len() > WRITE_CAP {
        return Err(format!("the content is {} bytes; file_write takes at most 1 MiB per file", content.len()));
    }
    let c = confine(workspace, path)?;
    let name = c.last()?;
    let dir = c.open_dirs(c.parts.len() - 1, true)?;
    let mode = match open_at(dir.as_fd(), name, libc::O_RDONLY | libc::O_NONBLOCK, 0) {
        Ok(fd) => {
            let meta = File::from(fd).metadata().map_err(|e| c.open_error(e))?;
            if meta.is_dir() {
                return Err(format!("`{path}` is a folder; name a file"));
            }
            meta.permissions().mode() & 0o7777
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => 0o644,
        Err(e) => return Err(c.open_error(e)),
    };
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let tmp = OsString::from(format!(
        ".{}.tmp-{}-{}",
        name.to_string_lossy(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL;
    let fd = open_at(dir.as_fd(), &tmp, flags, 0o600).map_err(|e| format!("cannot write `{path}`: {e}"))?;
    let done = (|| {
        let mut f = File::from(fd);
        f.write_all(content.as_bytes())?;
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        f.sync_all()?;
        let (from, to) = (c_name(&tmp)?, c_name(name)?);
        // SAFETY: one valid directory descriptor and two NUL-terminated names.
        if unsafe { libc::renameat(dir.as_raw_fd(), from.as_ptr(), dir.as_raw_fd(), to.as_ptr()) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let dir = dir.try_clone()?;
        File::from(dir).sync_all()
    })();
    if let Err(e) = done {
        if let Ok(t) = c_name(&tmp) {
            // SAFETY: a valid directory descriptor and a NUL-terminated name.
            unsafe { libc::unlinkat(dir.as_raw_fd(), t.as_ptr(), 0) };
        }
        return Err(format!("cannot write `{path}`: {e}"));
    }
    Ok(format!("wrote {} bytes to {path}", content.len()))
}

fn list(workspace: &Path, path: &str) -> Result<String, String> {
    let c = confine(workspace, path)?;
    let dir = c.open_dirs(c.parts.len(), false)?;
    let lookup = dir.try_clone().map_err(|e| c.open_error(e))?;
    // SAFETY: fdopendir takes ownership of a valid directory descriptor (released by
    // into_raw_fd; closed here if it fails) and closedir below frees it; each entry is
    // copied before the next readdir.
    let mut entries = unsafe {
        let raw = dir.into_raw_fd();
        let dirp = libc::fdopendir(raw);
        if dirp.is_null() {
            let e = io::Error::last_os_error();
            libc::close(raw);
            return Err(c.open_error(e));
        }
        let mut found = Vec::new();
        loop {
            let ent = libc::readdir(dirp);
            if ent.is_null() {
                break;
            }
            let name = CStr::from_ptr((*ent).d_name.as_ptr()).to_bytes().to_vec();
            if name != b"." && name != b".." {
                found.push((OsString::from(OsStr::from_bytes(&name)), (*ent).d_type));
            }
        }
        libc::closedir(dirp);
        found
    };
    entries.sort();
    let total = entries.len();
    let mut lines = Vec::new();
    for (name, kind) in entries.into_iter().take(LIST_CAP) {
        let shown = name.to_string_lossy();
        let line = match kind {
            libc::DT_DIR => format!("{shown}/"),
            libc::DT_LNK => format!("{shown} (symbolic link)"),
            _ => match open_at(lookup.as_fd(), &name, libc::O_RDONLY | libc::O_NONBLOCK, 0).map(File::from) {
                Ok(f) => match f.metadata() {
                    Ok(m) if m.is_dir() => format!("{shown}/"),
                    Ok(m) => format!("{shown} ({} bytes)", m.len()),
                    Err(_) => shown.into_owned(),
                },
                Err(e) if e.raw_os_error() == Some(libc::ELOOP) => format!("{shown} (symbolic link)"),
                Err(_) => shown.into_owned(),
            },
        };
        lines.push(line);
    }
    if total > LIST_CAP {
        lines.push(format!("[{} more entries not shown]", total - LIST_CAP));
    }
    if lines.is_empty() {
        return Ok(format!("`{path}` is empty"));
    }
    Ok(lines.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Setup {
        _tmp: tempfile::TempDir,
        outside: PathBuf,
        ws: PathBuf,
    }

    fn setup() -> Setup {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("outside");
        let ws = tmp.path().join("home/workspace");
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::create_dir_all(ws.join("docs")).unwrap();
        std::fs::write(outside.join("secret.txt"), "top secret").unwrap();
        std::os::unix::fs::symlink(outside.join("secret.txt"), ws.join("leak")).unwrap();
        std::os::unix::fs::symlink(&outside, ws.join("outdir")).unwrap();
        std::os::unix::fs::symlink("docs", ws.join("docs-link")).unwrap();
        Setup { _tmp: tmp, outside, ws }
    }

    #[test]
    fn files_are_written_atomically_read_and_listed_inside_the_workspace() {
        let s = setup();
        assert_eq!(write(&s.ws, "docs/new/note.md", "hello").unwrap(), "wrote 5 bytes to docs/new/note.md");
        assert_eq!(read(&s.ws, "docs/new/note.md").unwrap(), "hello");
        assert_eq!(read(&s.ws, "docs-link/new/note.md").unwrap(), "hello", "links inside the workspace are fine");
        let abs = s.ws.join("docs/new/note.md");
        assert_eq!(read(&s.ws, abs.to_str().unwrap()).unwrap(), "hello");
        write(&s.ws, "docs/new/note.md", "again").unwrap();
        assert_eq!(std::fs::read_to_string(&abs).unwrap(), "again");
        assert_eq!(list(&s.ws, "docs/new").unwrap(), "note.md (5 bytes)", "no temporary file is left behind");
        let top = list(&s.ws, ".").unwrap();
        assert_eq!(top, "docs/\ndocs-link (symbolic link)\nleak (symbolic link)\noutdir (symbolic link)");
    }

    #[test]
    fn escapes_are_refused_and_nothing_outside_is_touched() {
        let s = setup();
        for (path, why) in [
            ("leak", "through a symbolic link"),
            ("outdir/secret.txt", "through a symbolic link"),
            ("../outside/secret.txt", "`..` is not allowed"),
            ("docs/../../outside/secret.txt", "`..` is not allowed"),
            ("/etc/passwd", "outside the workspace"),
            (s.outside.join("secret.txt").to_str().unwrap(), "outside the workspace"),
        ] {
            let err = read(&s.ws, path).unwrap_err();
            assert!(err.contains(why), "{path}: {err}");
            let err = write(&s.ws, path, "pwned").unwrap_err();
            assert!(err.contains(why), "{path}: {err}");
        }
        assert!(write(&s.ws, "outdir/new.txt", "x").unwrap_err().contains("symbolic link"));
        assert!(list(&s.ws, "outdir").unwrap_err().contains("symbolic link"));
        assert_eq!(std::fs::read_to_string(s.outside.join("secret.txt")).unwrap(), "top secret");
        assert!(!s.outside.join("new.txt").exists());
    }

    #[test]
    fn a_link_swapped_in_after_the_check_is_not_followed() {
        let s = setup();
        let c = confine(&s.ws, "docs/file.txt").unwrap();
        std::fs::remove_dir(s.ws.join("docs")).unwrap();
        std::os::unix::fs::symlink(&s.outside, s.ws.join("docs")).unwrap();
        let err = c.open_dirs(1, false).unwrap_err();
        assert!(err.contains("changed while it was being opened") || err.contains("not a folder"), "{err}");
    }

    #[test]
    fn limits_and_mistakes_get_clear_answers() {
        let s = setup();
        let big = "x".repeat(WRITE_CAP + 1);
        assert!(write(&s.ws, "big.txt", &big).unwrap_err().contains("at most 1 MiB"));
        std::fs::write(s.ws.join("large.txt"), "y".repeat(READ_CAP + 10)).unwrap();
        let text = read(&s.ws, "large.txt").unwrap();
        assert!(text.ends_with("use the shell tool (e.g. sed -n or tail) for the rest]"), "{}", &text[READ_CAP..]);
        assert!(text.contains(&format!("the file is {} bytes", READ_CAP + 10)));
        std::fs::write(s.ws.join("bin"), [0u8, 1, 2]).unwrap();
        assert!(read(&s.ws, "bin").unwrap_err().contains("binary file"));
        assert!(read(&s.ws, "docs").unwrap_err().contains("is a folder"));
        assert!(read(&s.ws, "missing.txt").unwrap_err().contains("does not exist"));
        assert!(read(&s.ws, ".").unwrap_err().contains("the workspace folder itself"));
        assert!(write(&s.ws, "docs", "x").unwrap_err().contains("is a folder"));
    }
}
