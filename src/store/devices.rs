//! Paired devices: Ed25519 identities that connected with the gateway token and were
//! issued a device token they may use instead.

use rusqlite::{OptionalExtension, params};

use super::{Store, StoreError};

#[derive(Debug, Clone)]
pub struct Device {
    pub id: String,
    pub public_key: String,
    pub client_id: String,
    pub platform: String,
    pub scopes: Vec<String>,
    pub token_hash: String,
    pub paired_at: i64,
}

impl Store {
    pub async fn device(&self, id: &str) -> Result<Option<Device>, StoreError> {
        let id = id.to_string();
        self.call(move |c| {
            c.query_row(
                "SELECT id, public_key, client_id, platform, scopes, token_hash, paired_at
                 FROM devices WHERE id = ?1",
                [&id],
                |r| {
                    let scopes: String = r.get(4)?;
                    Ok(Device {
                        id: r.get(0)?,
                        public_key: r.get(1)?,
                        client_id: r.get(2)?,
                        platform: r.get(3)?,
                        scopes: serde_json::from_str(&scopes).unwrap_or_default(),
                        token_hash: r.get(5)?,
                        paired_at: r.get(6)?,
                    })
                },
            )
            .optional()
        })
        .await
    }

    /// Records a pairing, replacing the scopes and token of an earlier one.
    pub async fn pair_device(&self, d: Device) -> Result<(), StoreError> {
        self.call(move |c| {
            let scopes = serde_json::to_string(&d.scopes).expect("strings serialise");
            c.execute(
                "INSERT INTO devices (id, public_key, client_id, platform, scopes, token_hash, paired_at, last_seen_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)
                 ON CONFLICT(id) DO UPDATE SET public_key = excluded.public_key,
                   client_id = excluded.client_id, platform = excluded.platform,
                   scopes = excluded.scopes, token_hash = excluded.token_hash,
                   last_seen_at = excluded.last_seen_at",
                params![d.id, d.public_key, d.client_id, d.platform, scopes, d.token_hash, d.paired_at],
            )
            .map(drop)
        })
        .await
    }

    pub async fn touch_device(&self, id: &str, now_ms: i64) -> Result<(), StoreError> {
        let id = id.to_string();
        self.call(move |c| {
            c.execute("UPDATE devices SET last_seen_at = ?2 WHERE id = ?1", params![id, now_ms]).map(drop)
        })
        .await
    }

    pub async fn device_count(&self) -> Result<i64, StoreError> {
        self.call(|c| c.query_row("SELECT count(*) FROM devices", [], |r| r.get(0))).await
    }
}
