//! Frames of the OpenClaw-compatible gateway protocol (v3, v4 negotiated too):
//! requests, responses, events, error codes and close codes. See `shared/protocol-v3.md`.

use std::ops::RangeInclusive;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Protocol versions this gateway speaks; the highest one inside the client's range wins.
pub const SUPPORTED: RangeInclusive<u32> = 3..=4;
/// Frames before the handshake completes are capped (the reference gateway does the same).
pub const PRE_AUTH_MAX_FRAME: usize = 64 * 1024;
/// A client that has not completed `connect` by then is dropped.
pub const PRE_AUTH_TIMEOUT: Duration = Duration::from_secs(15);
/// Announced in hello-ok; frames queued for one client beyond this close it.
pub const MAX_BUFFERED_BYTES: usize = 50 * 1024 * 1024;

/// WebSocket close codes used by the protocol.
pub mod close {
    pub const NORMAL: u16 = 1000;
    pub const GOING_AWAY: u16 = 1001;
    pub const PROTOCOL_ERROR: u16 = 1002;
    pub const UNSUPPORTED_DATA: u16 = 1003;
    pub const POLICY_VIOLATION: u16 = 1008;
    pub const TOO_BIG: u16 = 1009;
    pub const SERVICE_RESTART: u16 = 1012;
}

/// `{type:"req", id, method, params?}`; the schema is closed.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
    pub method: String,
    #[serde(default)]
    pub params: Option<Value>,
}

impl Request {
    /// Parses a text frame. On failure returns the request id when one could be read, so
    /// the error response can still be matched by the client.
    pub fn parse(text: &str) -> Result<Request, (String, RpcError)> {
        let value: Value = serde_json::from_str(text).map_err(|e| {
            (
                String::new(),
                RpcError::invalid(format!("malformed JSON frame ({e}); send one JSON object per text frame")),
            )
        })?;
        let id = value.get("id").and_then(Value::as_str).unwrap_or_default().to_string();
        let req: Request = serde_json::from_value(value)
            .map_err(|e| (id.clone(), RpcError::invalid(format!("invalid request frame: {e}"))))?;
        if req.kind != "req" {
            return Err((
                id,
                RpcError::invalid(format!("invalid request frame: type must be \"req\", got {:?}", req.kind)),
            ));
        }
        Ok(req)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    NotPaired,
    InvalidRequest,
    Unavailable,
    /// v4 only; v3 reports missing scopes as `INVALID_REQUEST`.
    Forbidden,
}

/// The `error` object of a failed response.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RpcError {
    pub code: ErrorCode,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retryable: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

impl RpcError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        RpcError { code, message: message.into(), details: None, retryable: None, retry_after_ms: None }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unavailable, message)
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// The params of `method` did not match its schema.
    pub fn bad_params(method: &str, why: impl std::fmt::Display) -> Self {
        Self::invalid(format!("invalid {method} params: {why}"))
    }

    /// The caller lacks `scope`; v3 and v4 report this differently.
    pub fn missing_scope(scope: &str, protocol: u32) -> Self {
        let message = format!("missing scope: {scope}");
        if protocol >= 4 {
            Self::new(ErrorCode::Forbidden, message).with_details(json!({"code": "MISSING_SCOPE", "scope": scope}))
        } else {
            Self::invalid(message)
        }
    }
}

pub fn ok_frame(id: &str, payload: &Value) -> String {
    json!({"type": "res", "id": id, "ok": true, "payload": payload}).to_string()
}

pub fn error_frame(id: &str, error: &RpcError) -> String {
    json!({"type": "res", "id": id, "ok": false, "error": error}).to_string()
}

/// An event frame; `seq` is set for every event after the handshake.
pub fn event_frame(event: &str, payload: &Value, seq: Option<u64>, state_version: Option<&Value>) -> String {
    let mut frame = json!({"type": "event", "event": event, "payload": payload});
    if let Some(seq) = seq {
        frame["seq"] = seq.into();
    }
    if let Some(sv) = state_version {
        frame["stateVersion"] = sv.clone();
    }
    frame.to_string()
}

/// Deserialises `params` (absent means `{}`) into a method's closed parameter struct.
pub fn parse_params<T: serde::de::DeserializeOwned>(method: &str, params: Option<Value>) -> Result<T, RpcError> {
    let value = params.unwrap_or_else(|| json!({}));
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        if path == "." || path.is_empty() {
            RpcError::bad_params(method, e.inner())
        } else {
            RpcError::bad_params(method, format!("at /{}: {}", path.replace('.', "/"), e.inner()))
        }
    })
}

/// Picks the highest version in `[min, max]` that this gateway supports.
pub fn negotiate(min: u32, max: u32) -> Option<u32> {
    SUPPORTED.rev().find(|v| (min..=max).contains(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_picks_the_highest_common_version() {
        assert_eq!(negotiate(1, 9), Some(4));
        assert_eq!(negotiate(3, 3), Some(3));
        assert_eq!(negotiate(1, 3), Some(3));
        assert_eq!(negotiate(4, 7), Some(4));
        assert_eq!(negotiate(99, 99), None);
        assert_eq!(negotiate(5, 1), None);
    }

    #[test]
    fn request_parsing_keeps_the_id_for_error_replies() {
        let (id, e) = Request::parse(r#"{"type":"req","id":"a1","method":"x","extra":1}"#).unwrap_err();
        assert_eq!(id, "a1");
        assert!(e.message.contains("unknown field `extra`"), "{}", e.message);
        let (id, e) = Request::parse("{not json").unwrap_err();
        assert_eq!(id, "");
        assert!(e.message.starts_with("malformed JSON"));
        let (_, e) = Request::parse(r#"{"type":"event","id":"1","method":"x"}"#).unwrap_err();
        assert!(e.message.contains("type must be"));
        assert_eq!(Request::parse(r#"{"type":"req","id":"1","method":"health"}"#).unwrap().method, "health");
    }

    #[test]
    fn missing_scope_differs_between_v3_and_v4() {
        let v3 = serde_json::to_value(RpcError::missing_scope("operator.read", 3)).unwrap();
        assert_eq!(v3["code"], "INVALID_REQUEST");
        let v4 = serde_json::to_value(RpcError::missing_scope("operator.read", 4)).unwrap();
        assert_eq!((v4["code"].as_str(), v4["details"]["code"].as_str()), (Some("FORBIDDEN"), Some("MISSING_SCOPE")));
    }

    #[test]
    fn params_errors_name_the_json_pointer() {
        #[derive(Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct P {
            inner: Inner,
        }
        #[derive(Deserialize, Debug)]
        #[allow(dead_code)]
        struct Inner {
            n: u32,
        }
        let e = parse_params::<P>("m", Some(json!({"inner": {"n": "x"}}))).unwrap_err();
        assert!(e.message.starts_with("invalid m params: at /inner/n:"), "{}", e.message);
    }
}
