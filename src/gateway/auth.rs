//! The `connect` handshake's security: parameter schema, token check (constant time),
//! Ed25519 device identities, scopes, and slowing down repeated failures per address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::{DecodePaddingMode, general_purpose};
use ed25519_dalek::{Signature, VerifyingKey};
use serde::Deserialize;
use serde_json::{Value, json};
use subtle::ConstantTimeEq;

use super::protocol::{ErrorCode, RpcError};
use crate::home::sha256_hex;

pub const SCOPE_READ: &str = "operator.read";
pub const SCOPE_WRITE: &str = "operator.write";
pub const SCOPE_ADMIN: &str = "operator.admin";
const KNOWN_SCOPES: [&str; 6] =
    [SCOPE_READ, SCOPE_WRITE, SCOPE_ADMIN, "operator.approvals", "operator.pairing", "operator.talk.secrets"];
const CLIENT_IDS: [&str; 13] = [
    "webchat-ui",
    "openclaw-control-ui",
    "openclaw-tui",
    "webchat",
    "cli",
    "gateway-client",
    "openclaw-macos",
    "openclaw-ios",
    "openclaw-android",
    "node-host",
    "test",
    "fingerprint",
    "openclaw-probe",
];
const CLIENT_MODES: [&str; 7] = ["webchat", "cli", "ui", "backend", "node", "probe", "test"];
/// How far a device signature's timestamp may be from our clock.
const SIGNATURE_SKEW_MS: i64 = 120_000;

/// `connect` params (closed schema, see the protocol brief).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConnectParams {
    pub min_protocol: u32,
    pub max_protocol: u32,
    pub client: ClientInfo,
    #[serde(default)]
    pub role: Option<String>,
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    #[serde(default)]
    #[allow(dead_code, reason = "part of the closed connect schema; not used by Skynet")]
    pub caps: Option<Value>,
    #[serde(default)]
    #[allow(dead_code, reason = "part of the closed connect schema; not used by Skynet")]
    pub commands: Option<Value>,
    #[serde(default)]
    #[allow(dead_code, reason = "part of the closed connect schema; not used by Skynet")]
    pub permissions: Option<Value>,
    #[serde(default)]
    #[allow(dead_code, reason = "part of the closed connect schema; not used by Skynet")]
    pub path_env: Option<Value>,
    #[serde(default)]
    pub auth: Option<AuthParams>,
    #[serde(default)]
    #[allow(dead_code, reason = "part of the closed connect schema; not used by Skynet")]
    pub locale: Option<String>,
    #[serde(default)]
    #[allow(dead_code, reason = "part of the closed connect schema; not used by Skynet")]
    pub user_agent: Option<String>,
    #[serde(default)]
    pub device: Option<DeviceBlock>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ClientInfo {
    pub id: String,
    pub version: String,
    pub platform: String,
    pub mode: String,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub device_family: Option<String>,
    #[serde(default)]
    pub model_identifier: Option<String>,
    #[serde(default)]
    pub instance_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AuthParams {
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    #[allow(dead_code, reason = "part of the closed connect schema; not used by Skynet")]
    pub bootstrap_token: Option<String>,
    #[serde(default)]
    pub device_token: Option<String>,
    #[serde(default)]
    #[allow(dead_code, reason = "part of the closed connect schema; not used by Skynet")]
    pub password: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DeviceBlock {
    pub id: String,
    pub public_key: String,
    pub signature: String,
    pub signed_at: i64,
    pub nonce: String,
}

impl ConnectParams {
    /// Checks the enums the JSON schema constrains; returns the message for the error.
    pub fn validate(&self) -> Result<(), String> {
        let one_of = |field: &str, value: &str, allowed: &[&str]| -> Result<(), String> {
            if allowed.contains(&value) {
                Ok(())
            } else {
                Err(format!("at {field}: must be equal to one of the allowed values ({})", allowed.join(", ")))
            }
        };
        one_of("/client/id", &self.client.id, &CLIENT_IDS)?;
        one_of("/client/mode", &self.client.mode, &CLIENT_MODES)?;
        one_of("/role", self.role(), &["operator", "node"])
    }

    pub fn role(&self) -> &str {
        self.role.as_deref().unwrap_or("operator")
    }

    /// The scopes asked for, limited to ones that exist, without duplicates.
    pub fn requested_scopes(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for s in self.scopes.iter().flatten() {
            if KNOWN_SCOPES.contains(&s.as_str()) && !out.contains(s) {
                out.push(s.clone());
            }
        }
        out
    }

    /// Trusted local backends may skip the device identity (as in OpenClaw).
    pub fn is_backend(&self) -> bool {
        self.client.id == "gateway-client" || self.client.mode == "backend"
    }
}

/// Whether `granted` allows a method that needs `needed`; admin implies every scope.
pub fn has_scope(granted: &[String], needed: &str) -> bool {
    granted.iter().any(|g| g == needed || g == SCOPE_ADMIN)
}

pub fn tokens_match(given: &str, expected: &str) -> bool {
    given.as_bytes().ct_eq(expected.as_bytes()).into()
}

/// Why a handshake was refused; each maps to the protocol's error.
#[derive(Debug)]
pub enum AuthFailure {
    TokenMismatch,
    TokenMissing,
    DeviceIdentityRequired,
    DeviceInvalid(&'static str),
    ScopeUpgrade,
    /// The device store could not be read; nothing the client did wrong.
    Unavailable,
}

impl AuthFailure {
    pub fn counts_as_failed_attempt(&self) -> bool {
        matches!(self, AuthFailure::TokenMismatch | AuthFailure::DeviceInvalid(_))
    }

    pub fn to_error(&self) -> RpcError {
        match self {
            AuthFailure::TokenMismatch => RpcError::invalid(
                "unauthorized: gateway token mismatch (use the auth_token from the [gateway] section of skynet.toml)",
            )
            .with_details(json!({
                "code": "AUTH_TOKEN_MISMATCH",
                "authReason": "token_mismatch",
                "canRetryWithDeviceToken": false,
                "recommendedNextStep": "update_auth_credentials",
            })),
            AuthFailure::TokenMissing => RpcError::invalid(
                "unauthorized: gateway token missing (pass the auth_token from skynet.toml in connect.auth.token)",
            )
            .with_details(json!({"code": "AUTH_TOKEN_MISSING", "authReason": "token_missing"})),
            AuthFailure::DeviceIdentityRequired => RpcError::new(ErrorCode::NotPaired, "device identity required")
                .with_details(json!({"code": "DEVICE_IDENTITY_REQUIRED"})),
            AuthFailure::DeviceInvalid(why) => RpcError::invalid(format!("device identity rejected: {why}"))
                .with_details(json!({"code": "DEVICE_AUTH_INVALID", "reason": why})),
            AuthFailure::ScopeUpgrade => RpcError::invalid(
                "pairing required: device is asking for more scopes than currently approved; connect once with the gateway token to approve them",
            )
            .with_details(json!({"code": "PAIRING_REQUIRED"})),
            AuthFailure::Unavailable => {
                let mut e = RpcError::unavailable("the gateway cannot check credentials right now; try again shortly");
                e.retryable = Some(true);
                e.retry_after_ms = Some(1000);
                e
            }
        }
    }
}

/// A device block whose signature checked out.
#[derive(Debug, Clone)]
pub struct VerifiedDevice {
    pub id: String,
    pub public_key: String,
}

fn b64url() -> GeneralPurpose {
    GeneralPurpose::new(
        &base64::alphabet::URL_SAFE,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    )
}

/// Verifies the Ed25519 device block against the challenge nonce. The client signs
/// `v3|id|client.id|mode|role|scopes|signedAt|token|nonce|platform|family` (or the legacy
/// `v2` string without the last two fields); both are accepted.
pub fn verify_device(p: &ConnectParams, nonce: &str, now_ms: i64) -> Result<VerifiedDevice, AuthFailure> {
    let d = p.device.as_ref().ok_or(AuthFailure::DeviceIdentityRequired)?;
    if !tokens_match(&d.nonce, nonce) {
        return Err(AuthFailure::DeviceInvalid("nonce does not match the connect.challenge nonce"));
    }
    if (now_ms - d.signed_at).abs() > SIGNATURE_SKEW_MS {
        return Err(AuthFailure::DeviceInvalid("signedAt is more than 120 s away from the gateway clock"));
    }
    let engine = b64url();
    let pk: [u8; 32] = engine
        .decode(&d.public_key)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or(AuthFailure::DeviceInvalid("publicKey is not a base64url Ed25519 key"))?;
    if sha256_hex(&pk) != d.id.to_ascii_lowercase() {
        return Err(AuthFailure::DeviceInvalid("device id is not the SHA-256 of its public key"));
    }
    let sig: [u8; 64] = engine
        .decode(&d.signature)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or(AuthFailure::DeviceInvalid("signature is not a base64url Ed25519 signature"))?;
    let key =
        VerifyingKey::from_bytes(&pk).map_err(|_| AuthFailure::DeviceInvalid("publicKey is not a valid point"))?;
    let sig = Signature::from_bytes(&sig);

    let auth = p.auth.as_ref();
    let mut tokens: Vec<&str> = [auth.and_then(|a| a.token.as_deref()), auth.and_then(|a| a.device_token.as_deref())]
        .into_iter()
        .flatten()
        .collect();
    tokens.push("");
    let scopes = p.scopes.as_deref().unwrap_or_default().join(",");
    let c = &p.client;
    let base = |v: &str, token: &str| {
        format!("{v}|{}|{}|{}|{}|{scopes}|{}|{token}|{}", d.id, c.id, c.mode, p.role(), d.signed_at, d.nonce)
    };
    for token in tokens {
        let v3 = format!(
            "{}|{}|{}",
            base("v3", token),
            c.platform.to_lowercase(),
            c.device_family.as_deref().unwrap_or_default().to_lowercase()
        );
        for msg in [v3, base("v2", token)] {
            if key.verify_strict(msg.as_bytes(), &sig).is_ok() {
                return Ok(VerifiedDevice {
                    id: d.id.to_ascii_lowercase(),
                    public_key: general_purpose::URL_SAFE_NO_PAD.encode(pk),
                });
            }
        }
    }
    Err(AuthFailure::DeviceInvalid("signature does not verify"))
}

/// Slows down repeated authentication failures from one address: after a few failures
/// every further attempt waits, doubling up to a cap. Successes clear the record.
pub struct FailureLimiter {
    entries: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

const FREE_FAILURES: u32 = 3;
const FAILURE_MEMORY: Duration = Duration::from_secs(600);
const MAX_DELAY: Duration = Duration::from_secs(30);
const MAX_TRACKED: usize = 10_000;

impl FailureLimiter {
    pub fn new() -> Self {
        FailureLimiter { entries: Mutex::new(HashMap::new()) }
    }

    fn delay_after(failures: u32) -> Duration {
        if failures < FREE_FAILURES {
            return Duration::ZERO;
        }
        let step = Duration::from_millis(250) * 2u32.saturating_pow((failures - FREE_FAILURES).min(16));
        step.min(MAX_DELAY)
    }

    /// How long the next attempt from `ip` must wait.
    pub fn delay_for(&self, ip: IpAddr) -> Duration {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        match entries.get(&ip) {
            Some((n, last)) if last.elapsed() < FAILURE_MEMORY => Self::delay_after(*n),
            _ => Duration::ZERO,
        }
    }

    /// Records a failure; returns the failure count and the delay the next attempt gets.
    pub fn record_failure(&self, ip: IpAddr) -> (u32, Duration) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= MAX_TRACKED {
            entries.retain(|_, (_, last)| last.elapsed() < FAILURE_MEMORY);
        }
        let e = entries.entry(ip).or_insert((0, Instant::now()));
        if e.1.elapsed() >= FAILURE_MEMORY {
            e.0 = 0;
        }
        e.0 += 1;
        e.1 = Instant::now();
        (e.0, Self::delay_after(e.0))
    }

    pub fn record_success(&self, ip: IpAddr) {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).remove(&ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};

    fn params(token: &str, nonce: &str, signed_at: i64, key: &SigningKey, version: &str) -> ConnectParams {
        let pk = key.verifying_key().to_bytes();
        let id = sha256_hex(&pk);
        let mut msg = format!("{version}|{id}|cli|cli|operator|operator.read|{signed_at}|{token}|{nonce}");
        if version == "v3" {
            msg.push_str("|linux|");
        }
        let sig = key.sign(msg.as_bytes());
        let v = json!({
            "minProtocol": 3, "maxProtocol": 3,
            "client": {"id": "cli", "version": "1", "platform": "Linux", "mode": "cli"},
            "scopes": ["operator.read"],
            "auth": {"token": token},
            "device": {"id": id, "publicKey": general_purpose::URL_SAFE_NO_PAD.encode(pk),
                       "signature": general_purpose::URL_SAFE_NO_PAD.encode(sig.to_bytes()),
                       "signedAt": signed_at, "nonce": nonce},
        });
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn v3_and_v2_signatures_verify_and_tampering_fails() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let now = 1_800_000_000_000;
        for v in ["v3", "v2"] {
            let p = params("tok", "n1", now, &key, v);
            let d = verify_device(&p, "n1", now + 1000).unwrap();
            assert_eq!(d.id, sha256_hex(&key.verifying_key().to_bytes()));
        }
        let p = params("tok", "n1", now, &key, "v3");
        assert!(matches!(verify_device(&p, "other", now), Err(AuthFailure::DeviceInvalid(_))));
        assert!(matches!(verify_device(&p, "n1", now + 121_000), Err(AuthFailure::DeviceInvalid(_))));
        let mut p = params("tok", "n1", now, &key, "v3");
        p.client.mode = "ui".into();
        assert!(matches!(verify_device(&p, "n1", now), Err(AuthFailure::DeviceInvalid(_))));
    }

    #[test]
    fn schema_enums_are_enforced() {
        let key = SigningKey::from_bytes(&[1; 32]);
        let mut p = params("t", "n", 0, &key, "v3");
        assert!(p.validate().is_ok());
        p.client.id = "evil".into();
        assert!(p.validate().unwrap_err().starts_with("at /client/id"));
    }

    #[test]
    fn limiter_slows_repeat_offenders_and_forgives_on_success() {
        let l = FailureLimiter::new();
        let ip: IpAddr = "127.0.0.9".parse().unwrap();
        let delays: Vec<_> = (0..6).map(|_| l.record_failure(ip).1).collect();
        assert_eq!(delays[..2], [Duration::ZERO, Duration::ZERO]);
        assert!(delays[3] > delays[2] && delays[5] > delays[4]);
        assert_eq!(l.delay_for(ip), delays[5]);
        l.record_success(ip);
        assert_eq!(l.delay_for(ip), Duration::ZERO);
    }

    #[test]
    fn token_compare_is_exact() {
        assert!(tokens_match("abc", "abc"));
        assert!(!tokens_match("abc", "abd"));
        assert!(!tokens_match("ab", "abc"));
    }
}
