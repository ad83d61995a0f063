//! Running a tool's child process safely: its own process group that dies with the call,
//! and output read to the end but kept only up to a cap. Shared by script plugins and the
//! `shell` tool, so both stop the same way on timeout or abort.

use std::process::ExitStatus;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

/// Output beyond this is cut, so one chatty program cannot flood the model's context.
pub const MAX_OUTPUT: usize = 64 * 1024;

/// Environment passed through to tool programs; everything else (API keys, tokens) is withheld.
pub const PASS_ENV: [&str; 6] = ["PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR"];

/// Reads everything, keeping the first `cap + 1` bytes: the program never blocks on a
/// full pipe, and the caller can tell the output was cut (see [`capped_text`]).
pub async fn read_capped(r: &mut (impl AsyncRead + Unpin), cap: usize) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut buf = [0u8; 8192];
    while let Ok(n) = r.read(&mut buf).await {
        if n == 0 {
            break;
        }
        let room = (cap + 1).saturating_sub(kept.len());
        kept.extend_from_slice(&buf[..n.min(room)]);
    }
    kept
}

/// The bytes as text, cut at `cap` with a note when there were more.
pub fn capped_text(bytes: &[u8], cap: usize) -> String {
    let mut s = String::from_utf8_lossy(&bytes[..bytes.len().min(cap)]).into_owned();
    if bytes.len() > cap {
        s.push_str(&format!("\n[output cut at {} KiB]", cap / 1024));
    }
    s
}

/// Reads `out` into `kept` (up to `cap + 1` bytes) while waiting for `child`; after a
/// timeout `kept` still holds the output so far. Once the child has exited, whatever its
/// background jobs still write is collected for a short grace period only: a `cmd &`
/// that keeps the pipe open must not hold the call until its timeout.
pub async fn output_and_exit(
    child: &mut tokio::process::Child,
    out: &mut (impl AsyncRead + Unpin),
    kept: &mut Vec<u8>,
    cap: usize,
) -> std::io::Result<ExitStatus> {
    let mut buf = [0u8; 8192];
    let keep = |kept: &mut Vec<u8>, n: usize, buf: &[u8]| {
        let room = (cap + 1).saturating_sub(kept.len());
        kept.extend_from_slice(&buf[..n.min(room)]);
    };
    let status = loop {
        tokio::select! {
            n = out.read(&mut buf) => match n {
                Ok(0) | Err(_) => break child.wait().await?,
                Ok(n) => keep(kept, n, &buf),
            },
            status = child.wait() => break status?,
        }
    };
    let drain = async {
        while let Ok(n) = out.read(&mut buf).await {
            if n == 0 {
                break;
            }
            keep(kept, n, &buf);
        }
    };
    let _ = tokio::time::timeout(Duration::from_millis(200), drain).await;
    Ok(status)
}

/// Kills a child's whole process group when dropped (the call ended, timed out or was
/// aborted), so a program's own children never outlive it.
pub struct GroupKiller(pub u32);

impl Drop for GroupKiller {
    fn drop(&mut self) {
        if let Ok(pgid) = i32::try_from(self.0) {
            // SAFETY: kill(2) with a negative pid signals that process group; no memory is touched.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
    }
}
