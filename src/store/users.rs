//! People: users with a role, the channel identities that map to them, and one-time link
//! codes that join a new identity to an existing user. Codes are stored hashed, expire,
//! work once, and wrong guesses are rate limited per identity.

use rusqlite::{OptionalExtension, Transaction, TransactionBehavior, params};

use super::{Store, StoreError};
use crate::users::Role;

/// A user as the rest of the gateway sees one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub id: i64,
    pub name: String,
    pub role: Role,
}

/// A user with their identities, for listings.
#[derive(Debug, Clone)]
pub struct UserEntry {
    pub person: Person,
    pub identities: Vec<(String, String)>,
    pub created_at: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("that link code is not valid. Ask for a new one on the account you want to link to.")]
    Invalid,
    #[error("that link code has expired. Ask for a new one; codes last {0} minutes.")]
    Expired(u64),
    #[error("that link code was already used. Ask for a new one.")]
    Used,
    #[error("too many wrong link codes from here; try again in an hour.")]
    RateLimited,
    #[error("no user named {0:?}; see `skynet-gateway user list`")]
    NoSuchUser(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for LinkError {
    fn from(e: rusqlite::Error) -> Self {
        LinkError::Store(e.into())
    }
}

const CODE_ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

fn code_hash(code: &str) -> String {
    let normal: String = code.chars().filter(|c| c.is_ascii_alphanumeric()).map(|c| c.to_ascii_uppercase()).collect();
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(normal.as_bytes()))
}

fn person(tx: &rusqlite::Connection, id: i64) -> rusqlite::Result<Person> {
    tx.query_row("SELECT id, name, role FROM users WHERE id = ?1", [id], row_person)
}

fn row_person(r: &rusqlite::Row<'_>) -> rusqlite::Result<Person> {
    let role: String = r.get(2)?;
    Ok(Person { id: r.get(0)?, name: r.get(1)?, role: role.parse().unwrap_or(Role::Child) })
}

/// A free user name based on `hint` (`alice`, `alice-2`, ...).
fn free_name(tx: &Transaction<'_>, hint: &str) -> rusqlite::Result<String> {
    let base: String = hint.trim().chars().filter(|c| !c.is_control()).take(64).collect();
    let base = if base.is_empty() { "user".to_string() } else { base };
    for n in 1.. {
        let name = if n == 1 { base.clone() } else { format!("{base}-{n}") };
        let taken: bool = tx.query_row("SELECT EXISTS(SELECT 1 FROM users WHERE name = ?1)", [&name], |r| r.get(0))?;
        if !taken {
            return Ok(name);
        }
    }
    unreachable!("some name is always free")
}

/// Points the identity at `user_id`. A user left with no identity by the move was an
/// automatic one for that identity alone: its memories follow and it is removed.
fn attach(
    tx: &Transaction<'_>,
    user_id: i64,
    channel: &str,
    external_id: &str,
    display: Option<&str>,
) -> rusqlite::Result<()> {
    let previous: Option<i64> = tx
        .query_row(
            "SELECT user_id FROM identities WHERE channel = ?1 AND external_id = ?2",
            params![channel, external_id],
            |r| r.get(0),
        )
        .optional()?;
    tx.execute(
        "INSERT INTO identities (channel, external_id, user_id, display_name, linked_at) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (channel, external_id) DO UPDATE SET user_id = excluded.user_id, linked_at = excluded.linked_at,
             display_name = coalesce(excluded.display_name, display_name)",
        params![channel, external_id, user_id, display, now_ms()],
    )?;
    if let Some(old) = previous.filter(|old| *old != user_id) {
        let left: i64 = tx.query_row("SELECT count(*) FROM identities WHERE user_id = ?1", [old], |r| r.get(0))?;
        if left == 0 {
            tx.execute("UPDATE memories SET user_id = ?1 WHERE user_id = ?2", params![user_id, old])?;
            tx.execute("UPDATE sessions SET user_id = ?1 WHERE user_id = ?2", params![user_id, old])?;
            tx.execute("DELETE FROM users WHERE id = ?1", [old])?;
        }
    }
    Ok(())
}

impl Store {
    /// The user behind a channel identity, if known.
    pub async fn user_by_identity(&self, channel: &str, external_id: &str) -> Result<Option<Person>, StoreError> {
        let (channel, external_id) = (channel.to_string(), external_id.to_string());
        self.call(move |c| {
            c.query_row(
                "SELECT u.id, u.name, u.role FROM identities i JOIN users u ON u.id = i.user_id
                 WHERE i.channel = ?1 AND i.external_id = ?2",
                params![channel, external_id],
                row_person,
            )
            .optional()
        })
        .await
    }

    /// The user behind the identity, creating one with `role` (named after `name_hint`)
    /// when it is new.
    pub async fn user_for_identity(
        &self,
        channel: &str,
        external_id: &str,
        name_hint: &str,
        role: Role,
    ) -> Result<Person, StoreError> {
        let (channel, external_id, hint) = (channel.to_string(), external_id.to_string(), name_hint.to_string());
        self.call(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let found: Option<i64> = tx
                .query_row(
                    "SELECT user_id FROM identities WHERE channel = ?1 AND external_id = ?2",
                    params![channel, external_id],
                    |r| r.get(0),
                )
                .optional()?;
            let id = match found {
                Some(id) => id,
                None => {
                    let name = free_name(&tx, &hint)?;
                    tx.execute(
                        "INSERT INTO users (name, role, created_at) VALUES (?1, ?2, ?3)",
                        params![name, role.as_str(), now_ms()],
                    )?;
                    let id = tx.last_insert_rowid();
                    attach(&tx, id, &channel, &external_id, Some(&hint))?;
                    id
                }
            };
            let p = person(&tx, id)?;
            tx.commit()?;
            Ok(p)
        })
        .await
    }

    pub async fn add_user(&self, name: &str, role: Role) -> Result<Result<Person, String>, StoreError> {
        let name = name.trim().to_string();
        self.call(move |c| {
            let exists: bool =
                c.query_row("SELECT EXISTS(SELECT 1 FROM users WHERE name = ?1)", [&name], |r| r.get(0))?;
            if exists {
                return Ok(Err(format!("a user named {name:?} already exists")));
            }
            c.execute(
                "INSERT INTO users (name, role, created_at) VALUES (?1, ?2, ?3)",
                params![name, role.as_str(), now_ms()],
            )?;
            person(c, c.last_insert_rowid()).map(Ok)
        })
        .await
    }

    /// Changes a user's role; `false` when no such user.
    pub async fn set_role(&self, name: &str, role: Role) -> Result<bool, StoreError> {
        let name = name.to_string();
        self.call(move |c| {
            Ok(c.execute("UPDATE users SET role = ?1 WHERE name = ?2", params![role.as_str(), name])? > 0)
        })
        .await
    }

    pub async fn list_users(&self) -> Result<Vec<UserEntry>, StoreError> {
        self.call(|c| {
            let mut stmt = c.prepare("SELECT id, name, role, created_at FROM users ORDER BY id")?;
            let users: Vec<(Person, i64)> =
                stmt.query_map([], |r| Ok((row_person(r)?, r.get(3)?)))?.collect::<rusqlite::Result<_>>()?;
            let mut ids = c.prepare(
                "SELECT channel, external_id FROM identities WHERE user_id = ?1 ORDER BY channel, external_id",
            )?;
            users
                .into_iter()
                .map(|(person, created_at)| {
                    let identities =
                        ids.query_map([person.id], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<rusqlite::Result<_>>()?;
                    Ok(UserEntry { person, identities, created_at })
                })
                .collect()
        })
        .await
    }

    /// Links an identity to the named user (an admin's `user link`).
    pub async fn link_identity(&self, name: &str, channel: &str, external_id: &str) -> Result<Person, LinkError> {
        let (name, channel, external_id) = (name.to_string(), channel.to_string(), external_id.to_string());
        let out = self
            .call(move |c| {
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let Some(id) =
                    tx.query_row("SELECT id FROM users WHERE name = ?1", [&name], |r| r.get::<_, i64>(0)).optional()?
                else {
                    return Ok(Err(name));
                };
                attach(&tx, id, &channel, &external_id, None)?;
                let p = person(&tx, id)?;
                tx.commit()?;
                Ok(Ok(p))
            })
            .await?;
        out.map_err(LinkError::NoSuchUser)
    }

    /// Removes an identity's link; `false` when it was not linked.
    pub async fn unlink_identity(&self, channel: &str, external_id: &str) -> Result<bool, StoreError> {
        let (channel, external_id) = (channel.to_string(), external_id.to_string());
        self.call(move |c| {
            Ok(c.execute(
                "DELETE FROM identities WHERE channel = ?1 AND external_id = ?2",
                params![channel, external_id],
            )? > 0)
        })
        .await
    }

    /// A new one-time code for the user, valid for `ttl_secs`.
    pub async fn create_link_code(&self, user_id: i64, ttl_secs: u64) -> Result<String, StoreError> {
        let mut raw = [0u8; 8];
        getrandom::fill(&mut raw).expect("the operating system's random number generator works");
        let code: String = raw.iter().map(|b| CODE_ALPHABET[(*b as usize) % CODE_ALPHABET.len()] as char).collect();
        let hash = code_hash(&code);
        self.call(move |c| {
            let now = now_ms();
            c.execute("DELETE FROM link_codes WHERE expires_at < ?1", [now - 86_400_000])?;
            c.execute(
                "INSERT INTO link_codes (code_hash, user_id, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
                params![hash, user_id, now, now + (ttl_secs as i64) * 1000],
            )
        })
        .await?;
        Ok(format!("{}-{}", &code[..4], &code[4..]))
    }

    /// Joins the identity to the code's user. Wrong, used and expired codes count against
    /// the identity's hourly allowance.
    pub async fn redeem_link_code(
        &self,
        channel: &str,
        external_id: &str,
        code: &str,
        ttl_secs: u64,
        max_failures: u32,
    ) -> Result<Person, LinkError> {
        let (channel, external_id, hash) = (channel.to_string(), external_id.to_string(), code_hash(code));
        let who = format!("{channel}:{external_id}");
        self.call(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let now = now_ms();
            let failures: i64 = tx.query_row(
                "SELECT count(*) FROM link_failures WHERE identity = ?1 AND at > ?2",
                params![who, now - 3_600_000],
                |r| r.get(0),
            )?;
            if failures >= i64::from(max_failures) {
                return Ok(Err(LinkError::RateLimited));
            }
            let row: Option<(i64, i64, Option<i64>)> = tx
                .query_row("SELECT user_id, expires_at, used_at FROM link_codes WHERE code_hash = ?1", [&hash], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .optional()?;
            let verdict = match row {
                None => Err(LinkError::Invalid),
                Some((_, _, Some(_))) => Err(LinkError::Used),
                Some((_, expires, None)) if expires <= now => Err(LinkError::Expired(ttl_secs / 60)),
                Some((user_id, _, None)) => Ok(user_id),
            };
            let result = match verdict {
                Ok(user_id) => {
                    tx.execute("UPDATE link_codes SET used_at = ?1 WHERE code_hash = ?2", params![now, hash])?;
                    attach(&tx, user_id, &channel, &external_id, None)?;
                    Ok(person(&tx, user_id)?)
                }
                Err(e) => {
                    tx.execute("INSERT INTO link_failures (identity, at) VALUES (?1, ?2)", params![who, now])?;
                    Err(e)
                }
            };
            tx.commit()?;
            Ok(result)
        })
        .await?
    }

    /// The user's linked identities as (channel, external id).
    pub async fn identities_of(&self, user_id: i64) -> Result<Vec<(String, String)>, StoreError> {
        self.call(move |c| {
            let mut stmt =
                c.prepare("SELECT channel, external_id FROM identities WHERE user_id = ?1 ORDER BY linked_at")?;
            let rows = stmt.query_map([user_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        })
        .await
    }

    /// User messages the user sent in the last hour, over all sessions.
    pub async fn messages_last_hour(&self, user_id: i64) -> Result<i64, StoreError> {
        self.call(move |c| {
            c.query_row(
                r#"SELECT count(*) FROM messages m JOIN sessions s ON s.id = m.session_id
                   WHERE s.user_id = ?1 AND m.role = 'user' AND m.created_at > ?2
                     AND m.content NOT LIKE '[{"type":"tool_result"%'"#,
                params![user_id, now_ms() - 3_600_000],
                |r| r.get(0),
            )
        })
        .await
    }
}
