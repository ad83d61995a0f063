//! The WebSocket protocol against the real binary: handshake, negotiation, device
//! identities, auth failures, and bad frames that must not take anything down.

mod common;

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::*;
use ed25519_dalek::{Signer, SigningKey};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

#[tokio::test]
async fn challenge_comes_first_and_hello_ok_lists_only_implemented_methods() {
    let g = Gateway::start(&[]);
    let mut c = Client::open(&g).await;
    assert_eq!(c.challenge["event"], "connect.challenge");
    assert!(c.challenge["payload"]["nonce"].as_str().unwrap().len() >= 32);
    assert!(c.challenge["payload"]["ts"].as_i64().unwrap() > 0);
    assert!(c.challenge.get("seq").is_none(), "the challenge carries no seq");

    let res = c.call("connect", connect_params(TOKEN, 3, 3, &["operator.read"])).await;
    let hello = &res["payload"];
    assert_eq!(hello["type"], "hello-ok");
    assert_eq!(hello["protocol"], 3);
    assert_eq!(
        hello["features"]["methods"],
        json!([
            "health",
            "status",
            "system-presence",
            "chat.send",
            "chat.history",
            "chat.abort",
            "agent",
            "agent.wait",
            "sessions.list",
            "sessions.reset",
            "sessions.delete",
            "models.list",
            "models.set",
            "users.whoami",
            "users.linkCode",
            "users.link",
            "users.list"
        ])
    );
    assert_eq!(hello["auth"]["scopes"], json!(["operator.read"]));
    assert_eq!(hello["policy"]["maxPayload"], 26214400);
    assert_eq!(hello["policy"]["tickIntervalMs"], 30000);
    assert_eq!(hello["server"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(hello["snapshot"]["health"]["ok"], true);
    let presence = hello["snapshot"]["presence"].as_array().unwrap();
    assert_eq!(presence[0]["mode"], "gateway");

    // Every advertised method exists: none answers "unknown method".
    for m in hello["features"]["methods"].as_array().unwrap() {
        let r = c.call(m.as_str().unwrap(), json!({})).await;
        let msg = r["error"]["message"].as_str().unwrap_or_default();
        assert!(!msg.starts_with("unknown method"), "{m}: {r}");
    }
}

#[tokio::test]
async fn version_negotiation_picks_3_or_4_and_refuses_out_of_range() {
    let g = Gateway::start(&[]);
    for (min, max, want) in [(1, 9, 4), (3, 3, 3), (1, 3, 3), (4, 4, 4), (3, 4, 4)] {
        let (_, hello) = Client::connected(&g, connect_params(TOKEN, min, max, &[])).await;
        assert_eq!(hello["protocol"], want, "range {min}..{max}");
    }
    let mut c = Client::open(&g).await;
    let res = c.call("connect", connect_params(TOKEN, 99, 99, &[])).await;
    assert_eq!(res["error"]["message"], "protocol mismatch");
    assert_eq!(res["error"]["details"]["expectedProtocol"], 3);
    assert_eq!(c.closed().await.0, Some(1002));
}

#[tokio::test]
async fn health_status_and_presence_over_the_socket() {
    let g = Gateway::start(&[]);
    let (mut a, _) = Client::backend(&g, 3).await;
    let (mut admin, _) = Client::connected(&g, connect_params(TOKEN, 3, 3, &["operator.read", "operator.admin"])).await;

    let h = a.call("health", json!({})).await["payload"].clone();
    assert_eq!((h["ok"].as_bool(), h["store"]["ok"].as_bool()), (Some(true), Some(true)));
    assert_eq!(h["store"]["schemaVersion"], 3);

    let s = a.call("status", json!({})).await["payload"].clone();
    assert_eq!(s["runtimeVersion"], env!("CARGO_PKG_VERSION"));
    assert_eq!(s["gateway"]["protocols"], json!([3, 4]));
    assert_eq!(s["store"]["path"], "[redacted]", "paths need admin");
    let s = admin.call("status", json!({})).await["payload"].clone();
    assert_eq!(s["store"]["path"], g.home.join("skynet.db").display().to_string());

    let p = a.call("system-presence", json!({})).await["payload"].clone();
    let modes: Vec<_> = p.as_array().unwrap().iter().map(|e| e["mode"].as_str().unwrap().to_string()).collect();
    assert_eq!(modes.iter().filter(|m| *m == "backend").count(), 2, "{p}");
    assert_eq!(modes[0], "gateway");
}

#[tokio::test]
async fn presence_events_carry_seq_and_state_version() {
    let g = Gateway::start(&[]);
    let (mut a, _) = Client::backend(&g, 3).await;
    let first = a.next_event("presence").await; // a's own arrival
    let (b, _) = Client::backend(&g, 3).await;
    let second = a.next_event("presence").await;
    assert!(second["seq"].as_u64().unwrap() > first["seq"].as_u64().unwrap());
    assert!(second["stateVersion"]["presence"].as_u64().unwrap() > first["stateVersion"]["presence"].as_u64().unwrap());
    assert_eq!(second["payload"]["presence"].as_array().unwrap().len(), 3);
    drop(b);
    let third = a.next_event("presence").await;
    assert_eq!(third["payload"]["presence"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn tick_events_keep_the_connection_alive_with_increasing_seq() {
    let g = Gateway::start(&[("SKYNET_GATEWAY__TICK_INTERVAL_MS", "1000")]);
    let (mut c, hello) = Client::backend(&g, 3).await;
    assert_eq!(hello["policy"]["tickIntervalMs"], 1000);
    let t1 = c.next_event("tick").await;
    let t2 = c.next_event("tick").await;
    assert!(t2["seq"].as_u64().unwrap() > t1["seq"].as_u64().unwrap());
    assert!(t2["payload"]["ts"].as_i64().unwrap() >= t1["payload"]["ts"].as_i64().unwrap());
}

#[tokio::test]
async fn wrong_token_is_refused_and_logged_without_the_token() {
    let g = Gateway::start(&[]);
    let mut c = Client::open(&g).await;
    let res = c.call("connect", connect_params("not-the-right-token", 3, 3, &[])).await;
    assert_eq!(res["ok"], false);
    assert_eq!(res["error"]["code"], "INVALID_REQUEST");
    assert_eq!(res["error"]["details"]["code"], "AUTH_TOKEN_MISMATCH");
    assert!(res["error"]["message"].as_str().unwrap().starts_with("unauthorized: gateway token mismatch"));
    assert_eq!(c.closed().await.0, Some(1008));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let log = g.stderr();
    assert!(log.contains("connect refused") && log.contains("token mismatch"), "{log}");
    assert!(!log.contains("not-the-right-token") && !log.contains(TOKEN), "tokens must never be logged");
}

#[tokio::test]
async fn repeated_failures_from_one_address_are_slowed_down() {
    let g = Gateway::start(&[]);
    let mut delays = Vec::new();
    for _ in 0..5 {
        let mut c = Client::open(&g).await;
        let res = c.call("connect", connect_params("wrong-token-xxxxxxxx", 3, 3, &[])).await;
        delays.push(res["error"]["retryAfterMs"].as_u64().unwrap_or(0));
    }
    assert_eq!(delays[..2], [0, 0], "the first failures are not delayed: {delays:?}");
    assert!(delays[2] > 0 && delays[4] > delays[3] && delays[3] > delays[2], "{delays:?}");
    // The next attempt, even with the right token, waits out the announced delay.
    let started = Instant::now();
    let (_, hello) = Client::backend(&g, 3).await;
    assert_eq!(hello["type"], "hello-ok");
    assert!(started.elapsed() >= Duration::from_millis(delays[4]), "{:?} < {}", started.elapsed(), delays[4]);
    // Success clears the record.
    let started = Instant::now();
    Client::backend(&g, 3).await;
    assert!(started.elapsed() < Duration::from_millis(delays[4]));
}

fn signed_connect(key: &SigningKey, token: &str, nonce: &str, scopes: &[&str], version: &str) -> Value {
    let pk = key.verifying_key().to_bytes();
    let id = hex(&Sha256::digest(pk));
    let signed_at = now_ms();
    let mut payload = format!("{version}|{id}|cli|cli|operator|{}|{signed_at}|{token}|{nonce}", scopes.join(","));
    if version == "v3" {
        payload.push_str("|linux|desktop");
    }
    let sig = key.sign(payload.as_bytes()).to_bytes();
    json!({
        "minProtocol": 3, "maxProtocol": 4,
        "client": {"id": "cli", "version": "1.0.0", "platform": "Linux", "mode": "cli", "deviceFamily": "Desktop"},
        "role": "operator",
        "scopes": scopes,
        "auth": {"token": token},
        "device": {"id": id, "publicKey": URL_SAFE_NO_PAD.encode(pk), "signature": URL_SAFE_NO_PAD.encode(sig),
                   "signedAt": signed_at, "nonce": nonce},
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn signed_device_is_paired_and_may_reconnect_with_its_device_token() {
    let g = Gateway::start(&[]);
    let key = SigningKey::from_bytes(&[42; 32]);
    let mut c = Client::open(&g).await;
    let nonce = c.challenge["payload"]["nonce"].as_str().unwrap().to_string();
    let res = c.call("connect", signed_connect(&key, TOKEN, &nonce, &["operator.read"], "v3")).await;
    assert_eq!(res["ok"], true, "{res}");
    assert_eq!(res["payload"]["auth"]["scopes"], json!(["operator.read"]));
    let device_token = res["payload"]["auth"]["deviceToken"].as_str().unwrap().to_string();
    assert!(c.call("status", json!({})).await["ok"] == true, "a paired cli device has its scopes");

    // The legacy v2 signature with the device token in place of the gateway token.
    let mut c = Client::open(&g).await;
    let nonce = c.challenge["payload"]["nonce"].as_str().unwrap().to_string();
    let res = c.call("connect", signed_connect(&key, &device_token, &nonce, &["operator.read"], "v2")).await;
    assert_eq!(res["ok"], true, "{res}");
    assert!(res["payload"]["auth"].get("deviceToken").is_none());

    // More scopes than were paired need the gateway token again.
    let mut c = Client::open(&g).await;
    let nonce = c.challenge["payload"]["nonce"].as_str().unwrap().to_string();
    let res = c.call("connect", signed_connect(&key, &device_token, &nonce, &["operator.admin"], "v3")).await;
    assert_eq!(res["error"]["details"]["code"], "PAIRING_REQUIRED", "{res}");
    assert_eq!(c.closed().await.0, Some(1008));
}

#[tokio::test]
async fn bad_device_signatures_and_replayed_nonces_are_refused() {
    let g = Gateway::start(&[]);
    let key = SigningKey::from_bytes(&[9; 32]);
    // Signed for another nonce (a replay of an old handshake).
    let mut c = Client::open(&g).await;
    let res = c.call("connect", signed_connect(&key, TOKEN, "some-old-nonce", &[], "v3")).await;
    assert_eq!(res["error"]["details"]["code"], "DEVICE_AUTH_INVALID", "{res}");
    assert_eq!(c.closed().await.0, Some(1008));
    // A tampered signature.
    let mut c = Client::open(&g).await;
    let nonce = c.challenge["payload"]["nonce"].as_str().unwrap().to_string();
    let mut params = signed_connect(&key, TOKEN, &nonce, &[], "v3");
    params["scopes"] = json!(["operator.admin"]); // not what was signed
    let res = c.call("connect", params).await;
    assert_eq!(res["error"]["message"], "device identity rejected: signature does not verify");
    assert_eq!(c.closed().await.0, Some(1008));
}

#[tokio::test]
async fn no_token_and_no_device_is_not_paired() {
    let g = Gateway::start(&[]);
    let mut c = Client::open(&g).await;
    let mut params = connect_params(TOKEN, 3, 3, &[]);
    params.as_object_mut().unwrap().remove("auth");
    let res = c.call("connect", params).await;
    assert_eq!(res["error"]["code"], "NOT_PAIRED");
    assert_eq!(res["error"]["details"]["code"], "DEVICE_IDENTITY_REQUIRED");
    assert_eq!(c.closed().await.0, Some(1008));
}

#[tokio::test]
async fn missing_scope_is_reported_per_protocol_version() {
    let g = Gateway::start(&[]);
    for (version, code) in [(3, "INVALID_REQUEST"), (4, "FORBIDDEN")] {
        let mut params = connect_params(TOKEN, version, version, &["operator.read"]);
        params["client"] = json!({"id": "cli", "version": "1", "platform": "linux", "mode": "cli"});
        let (mut c, hello) = Client::connected(&g, params).await;
        assert_eq!(hello["auth"]["scopes"], json!([]), "a cli without a device gets no scopes");
        assert_eq!(c.call("health", json!({})).await["ok"], true, "health needs no scope");
        let res = c.call("status", json!({})).await;
        assert_eq!(res["error"]["code"], code);
        assert_eq!(res["error"]["message"], "missing scope: operator.read");
    }
}

#[tokio::test]
async fn requests_before_connect_are_refused_with_1008() {
    let g = Gateway::start(&[]);
    let mut c = Client::open(&g).await;
    let res = c.call("health", json!({})).await;
    assert_eq!(res["error"]["message"], "invalid handshake: first request must be connect");
    assert_eq!(c.closed().await.0, Some(1008));

    let mut c = Client::open(&g).await;
    c.send_text("this is not json").await;
    assert_eq!(c.closed().await.0, Some(1000), "non-JSON before connect closes normally");

    let mut c = Client::open(&g).await;
    let mut params = connect_params(TOKEN, 3, 3, &[]);
    params["client"]["id"] = json!("made-up-client");
    let res = c.call("connect", params).await;
    assert!(res["error"]["message"].as_str().unwrap().starts_with("invalid connect params: at /client/id"), "{res}");
    assert_eq!(c.closed().await.0, Some(1008));

    let mut c = Client::open(&g).await;
    let res = c.call("connect", json!({"minProtocol": 3})).await;
    assert!(res["error"]["message"].as_str().unwrap().starts_with("invalid connect params"), "{res}");
    assert_eq!(c.closed().await.0, Some(1008));
}

#[tokio::test]
async fn bad_frames_after_connect_get_errors_and_the_connection_stays_up() {
    let g = Gateway::start(&[]);
    let (mut c, _) = Client::backend(&g, 3).await;

    c.send_text("{\"type\":\"req\", broken").await;
    let res = c.next_res().await;
    assert!(res["error"]["message"].as_str().unwrap().starts_with("malformed JSON frame"), "{res}");

    c.ws.send(tokio_tungstenite::tungstenite::Message::Binary(vec![1, 2, 3].into())).await.unwrap();
    let res = c.next_res().await;
    assert!(res["error"]["message"].as_str().unwrap().contains("binary frames are not supported"), "{res}");

    let res = c.call("does.not.exist", json!({})).await;
    assert_eq!(
        (res["error"]["code"].as_str(), res["error"]["message"].as_str()),
        (Some("INVALID_REQUEST"), Some("unknown method: does.not.exist"))
    );

    let res = c.call("status", json!({"verbose": true})).await;
    assert!(res["error"]["message"].as_str().unwrap().starts_with("invalid status params"), "{res}");

    c.send_json(&json!({"type": "req", "method": "health"})).await;
    let res = c.next_res().await;
    assert!(res["error"]["message"].as_str().unwrap().contains("missing field `id`"), "{res}");

    c.send_json(&json!({"type": "req", "id": "again", "method": "connect", "params": {}})).await;
    assert!(c.next_res().await["error"]["message"].as_str().unwrap().starts_with("already connected"));

    assert_eq!(c.call("health", json!({})).await["ok"], true, "still serving after all that");
}

use futures_util::SinkExt;

fn big_health_request(bytes: usize) -> String {
    json!({"type": "req", "id": "big", "method": "health", "params": {"pad": "x".repeat(bytes)}}).to_string()
}

#[tokio::test]
async fn a_10_mb_frame_within_the_limit_is_answered_and_above_it_closes_only_that_client() {
    let g = Gateway::start(&[]);
    let (mut c, _) = Client::backend(&g, 3).await;
    c.send_text(big_health_request(10 << 20)).await;
    let res = c.next_res().await;
    assert_eq!(res["id"], "big");
    assert!(res["error"]["message"].as_str().unwrap().starts_with("invalid health params"), "{res}");
    assert_eq!(c.call("health", json!({})).await["ok"], true);

    let g = Gateway::start(&[("SKYNET_GATEWAY__MAX_PAYLOAD", "1048576")]);
    let (mut bystander, _) = Client::backend(&g, 3).await;
    let (mut c, hello) = Client::backend(&g, 3).await;
    assert_eq!(hello["policy"]["maxPayload"], 1048576);
    let _ = c.ws.send(tokio_tungstenite::tungstenite::Message::Text(big_health_request(10 << 20).into())).await;
    let (code, reason) = c.closed().await;
    assert!(code == Some(1009) || code.is_none(), "{code:?} {reason}");
    assert_eq!(bystander.call("health", json!({})).await["ok"], true);

    let mut pre = Client::open(&g).await;
    pre.send_text(big_health_request(100 << 10)).await;
    assert_eq!(pre.closed().await.0, Some(1009), "64 KiB cap before the handshake");
    assert_eq!(g.get("/health").0, 200);
}

#[tokio::test]
async fn cross_origin_browser_upgrades_are_refused_unless_allowed() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let g = Gateway::start(&[("SKYNET_GATEWAY__ALLOWED_ORIGINS", "https://chat.example.com")]);
    let attempt = |origin: &str| {
        let mut req = g.ws_url().into_client_request().unwrap();
        req.headers_mut().insert("origin", origin.parse().unwrap());
        tokio_tungstenite::connect_async(req)
    };
    match attempt("http://evil.example").await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 403),
        other => panic!("cross-origin upgrade must be refused, got {:?}", other.map(|_| ())),
    }
    assert!(attempt("https://chat.example.com").await.is_ok(), "listed origin");
    assert!(attempt(&format!("http://{}", g.addr)).await.is_ok(), "the gateway's own origin");
}
