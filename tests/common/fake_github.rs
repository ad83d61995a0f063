//! A fake GitHub Releases API on loopback, speaking GitHub's documented wire format:
//! `GET /repos/{owner}/{repo}/releases/latest` (the release object with `tag_name`, `name`,
//! `body`, `created_at` and `assets[]`), asset downloads from an asset's API `url` with
//! `Accept: application/octet-stream` (answered, as GitHub does, with a 302 to its
//! `browser_download_url`), and the browser URLs `/{owner}/{repo}/releases/download/{tag}/{name}`
//! and `/{owner}/{repo}/releases/latest/download/{name}` that install.sh uses.
//! Anything else, including another repository, is GitHub's JSON 404; so is `releases/latest`
//! of a repository without releases (a server started with an empty tag). Extra files (say,
//! install.sh) can be served at any path, and an asset can be cut short mid-download.

use std::net::SocketAddr;
use std::process::Command;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

pub const OWNER: &str = "test-owner";
pub const REPO: &str = "test-repo";

struct Release {
    tag: String,
    assets: Vec<(String, Vec<u8>)>,
    /// "GET /path" for every request, in order.
    requests: Vec<String>,
    /// Other files, by exact path.
    files: Vec<(String, Vec<u8>)>,
    /// The asset whose download declares its full length but stops halfway.
    truncated: Option<String>,
}

pub struct FakeGitHub {
    pub addr: SocketAddr,
    state: Arc<Mutex<Release>>,
}

impl FakeGitHub {
    /// Serves one release, the latest, with these assets (name, bytes).
    pub fn start(tag: &str, assets: Vec<(String, Vec<u8>)>) -> FakeGitHub {
        let state = Arc::new(Mutex::new(Release {
            tag: tag.into(),
            assets,
            requests: Vec::new(),
            files: Vec::new(),
            truncated: None,
        }));
        let addr = super::serve_on_thread(Router::new().fallback(handle).with_state(state.clone()));
        FakeGitHub { addr, state }
    }

    /// For `[update] api_url`.
    pub fn api_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The `https://github.com/{owner}/{repo}/releases` equivalent, for install.sh.
    pub fn releases_url(&self) -> String {
        format!("http://{}/{OWNER}/{REPO}/releases", self.addr)
    }

    pub fn requests(&self) -> Vec<String> {
        self.state.lock().unwrap().requests.clone()
    }

    /// Serves `bytes` at `path` (e.g. "/install.sh").
    pub fn serve_file(&self, path: &str, bytes: Vec<u8>) {
        self.state.lock().unwrap().files.push((path.into(), bytes));
    }

    /// From now on the download of asset `name` sends a `Content-Length` of its full size,
    /// then half the bytes, then drops the connection.
    pub fn truncate(&self, name: &str) {
        self.state.lock().unwrap().truncated = Some(name.into());
    }
}

async fn handle(State(state): State<Arc<Mutex<Release>>>, uri: Uri, headers: HeaderMap) -> Response {
    let mut st = state.lock().unwrap();
    st.requests.push(format!("GET {}", uri.path()));
    let base = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1").to_string();
    let api = format!("/repos/{OWNER}/{REPO}/releases/");
    let web = format!("/{OWNER}/{REPO}/releases/");
    let path = uri.path();
    if let Some((_, bytes)) = st.files.iter().find(|(p, _)| p == path) {
        return Body::from(bytes.clone()).into_response();
    }
    if let Some(rest) = path.strip_prefix(&api) {
        if rest == "latest" && !st.tag.is_empty() {
            return axum::Json(release_json(&st, &base)).into_response();
        }
        if let Some(id) = rest.strip_prefix("assets/").and_then(|id| id.parse::<usize>().ok())
            && let Some((name, _)) = id.checked_sub(1).and_then(|i| st.assets.get(i))
        {
            let wants_bytes = headers.get(header::ACCEPT).is_some_and(|a| a == "application/octet-stream");
            if !wants_bytes {
                return axum::Json(asset_json(&st, &base, id - 1)).into_response();
            }
            let location = format!("http://{base}{web}download/{}/{name}", st.tag);
            return (StatusCode::FOUND, [(header::LOCATION, location)]).into_response();
        }
    }
    if let Some(rest) = path.strip_prefix(&web) {
        let name = match rest.split('/').collect::<Vec<_>>()[..] {
            ["download", tag, name] if tag == st.tag => Some(name),
            ["latest", "download", name] => Some(name),
            _ => None,
        };
        if let Some(bytes) = name.and_then(|n| st.assets.iter().find(|(a, _)| a == n)).map(|(_, b)| b.clone()) {
            if name == st.truncated.as_deref() {
                let half = bytes[..bytes.len() / 2].to_vec();
                // A pause after the half, so it goes out before the connection is dropped.
                let cut = async {
                    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                    Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "cut short"))
                };
                let stream = futures_util::StreamExt::chain(
                    futures_util::stream::iter([Ok(half)]),
                    futures_util::stream::once(cut),
                );
                let headers = [
                    (header::CONTENT_TYPE, "application/octet-stream".to_string()),
                    (header::CONTENT_LENGTH, bytes.len().to_string()),
                ];
                return (headers, Body::from_stream(stream)).into_response();
            }
            return ([(header::CONTENT_TYPE, "application/octet-stream")], Body::from(bytes)).into_response();
        }
    }
    let not_found =
        json!({"message": "Not Found", "documentation_url": "https://docs.github.com/rest", "status": "404"});
    (StatusCode::NOT_FOUND, axum::Json(not_found)).into_response()
}

fn release_json(st: &Release, base: &str) -> Value {
    json!({
        "url": format!("http://{base}/repos/{OWNER}/{REPO}/releases/1"),
        "html_url": format!("http://{base}/{OWNER}/{REPO}/releases/tag/{}", st.tag),
        "id": 1,
        "tag_name": st.tag,
        "target_commitish": "main",
        "name": format!("Skynet {}", st.tag),
        "body": "What changed in this release.",
        "draft": false,
        "prerelease": false,
        "created_at": "2026-01-02T03:04:05Z",
        "published_at": "2026-01-02T03:04:05Z",
        "assets": (0..st.assets.len()).map(|i| asset_json(st, base, i)).collect::<Vec<_>>(),
    })
}

fn asset_json(st: &Release, base: &str, index: usize) -> Value {
    let (name, bytes) = &st.assets[index];
    json!({
        "url": format!("http://{base}/repos/{OWNER}/{REPO}/releases/assets/{}", index + 1),
        "browser_download_url": format!("http://{base}/{OWNER}/{REPO}/releases/download/{}/{name}", st.tag),
        "id": index + 1,
        "name": name,
        "label": "",
        "state": "uploaded",
        "content_type": if name.ends_with(".tar.gz") { "application/gzip" } else { "text/plain" },
        "size": bytes.len(),
        // GitHub publishes the digest of what it serves, so a tampered upload still matches it.
        "digest": format!("sha256:{}", sha256_hex(bytes)),
        "download_count": 0,
        "created_at": "2026-01-02T03:04:05Z",
        "updated_at": "2026-01-02T03:04:05Z",
    })
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The triple in this platform's release asset names (Linux releases are musl builds).
pub fn release_target() -> String {
    let os = if cfg!(target_os = "macos") { "apple-darwin" } else { "unknown-linux-musl" };
    format!("{}-{os}", std::env::consts::ARCH)
}

pub fn asset_name() -> String {
    format!("skynet-gateway-{}.tar.gz", release_target())
}

/// A `.tar.gz` holding one executable `skynet-gateway` with these bytes.
pub fn tarball(binary: &[u8]) -> Vec<u8> {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("skynet-gateway");
    std::fs::write(&bin, binary).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = dir.path().join("out.tar.gz");
    let ok =
        Command::new("tar").arg("-czf").arg(&out).arg("-C").arg(dir.path()).arg("skynet-gateway").status().unwrap();
    assert!(ok.success());
    std::fs::read(out).unwrap()
}

/// A `sha256sum`-format file for these (name, bytes).
pub fn sums(files: &[(&str, &[u8])]) -> Vec<u8> {
    files.iter().map(|(name, bytes)| format!("{}  {name}\n", sha256_hex(bytes))).collect::<String>().into_bytes()
}

/// A stand-in for another release: a script that answers `--version` like the real binary.
pub fn fake_binary(version: &str) -> Vec<u8> {
    format!("#!/bin/sh\nif [ \"$1\" = --version ]; then echo \"skynet-gateway {version}\"; exit 0; fi\necho \"fake skynet-gateway {version}: $*\"\n")
        .into_bytes()
}
