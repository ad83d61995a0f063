//! Users and identity: every sender (a web device, a Telegram id, a Discord id, the
//! gateway operator) maps to one user with a role; strangers get the channel's default
//! role or are refused. Roles and their permissions live in roles.rs; the rows in
//! store/users.rs.

pub mod cli;
mod roles;

pub use roles::{Permissions, Role, RoleConfig, UsersConfig, parse_default_role};

use crate::store::{Person, Store, StoreError};

/// Who sent a message, as the channel knows them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sender {
    pub channel: String,
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
}

/// What a stranger is told when strangers are refused.
pub const STRANGER_MESSAGE: &str = "I don't know you yet, so I can't answer here. If you already talk to this \
Skynet somewhere else, ask there for a link code and send it here (with /link CODE on Telegram or Discord). \
Or ask its admin to add you: skynet-gateway user add NAME, then skynet-gateway user link NAME CHANNEL ID.";

/// The identity of whoever holds the gateway token (the operator, the `/v1` API).
pub const OWNER: (&str, &str) = ("gateway", "owner");

/// The operator's user (an admin), created on first use.
pub async fn owner(store: &Store) -> Result<Person, StoreError> {
    store.user_for_identity(OWNER.0, OWNER.1, "owner", Role::Admin).await
}

/// The user behind `sender`: known, new with `default_role`, or `None` (refused).
pub async fn resolve(store: &Store, sender: &Sender, default_role: Option<Role>) -> Result<Option<Person>, StoreError> {
    if let Some(p) = store.user_by_identity(&sender.channel, &sender.id).await? {
        return Ok(Some(p));
    }
    let Some(role) = default_role else { return Ok(None) };
    let hint = sender.name.clone().unwrap_or_else(|| format!("{}-{}", sender.channel, sender.id));
    store.user_for_identity(&sender.channel, &sender.id, &hint, role).await.map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn identities_resolve_link_and_follow_their_user() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db")).unwrap();
        let web = Sender { channel: "webchat".into(), id: "dev-1".into(), name: Some("Alice".into()) };
        let tg = Sender { channel: "telegram".into(), id: "555".into(), name: Some("alice_tg".into()) };
        assert_eq!(resolve(&store, &web, None).await.unwrap(), None, "strangers refused");
        let alice = resolve(&store, &web, Some(Role::User)).await.unwrap().unwrap();
        assert_eq!((alice.name.as_str(), alice.role), ("Alice", Role::User));
        assert_eq!(resolve(&store, &web, None).await.unwrap().as_ref(), Some(&alice), "known now");

        // Telegram talks first (an automatic user), then links with Alice's code.
        let auto = resolve(&store, &tg, Some(Role::Child)).await.unwrap().unwrap();
        assert_ne!(auto.id, alice.id);
        let code = store.create_link_code(alice.id, 600).await.unwrap();
        assert_eq!(code.len(), 9);
        let linked = store.redeem_link_code("telegram", "555", &code.to_lowercase(), 600, 5).await.unwrap();
        assert_eq!(linked, alice);
        assert_eq!(resolve(&store, &tg, None).await.unwrap(), Some(alice.clone()));
        let users = store.list_users().await.unwrap();
        assert_eq!(users.len(), 1, "the automatic user was folded into Alice: {users:?}");
        assert_eq!(users[0].identities.len(), 2);

        // Used, unknown and expired codes are refused; then the identity is rate limited.
        let again = store.redeem_link_code("telegram", "555", &code, 600, 5).await.unwrap_err();
        assert!(matches!(again, crate::store::LinkError::Used), "{again}");
        let expired = store.create_link_code(alice.id, 0).await.unwrap();
        let err = store.redeem_link_code("discord", "9", &expired, 0, 5).await.unwrap_err();
        assert!(err.to_string().contains("expired"), "{err}");
        for _ in 0..4 {
            let _ = store.redeem_link_code("discord", "9", "NOPE-NOPE", 600, 5).await;
        }
        let fresh = store.create_link_code(alice.id, 600).await.unwrap();
        let err = store.redeem_link_code("discord", "9", &fresh, 600, 5).await.unwrap_err();
        assert!(matches!(err, crate::store::LinkError::RateLimited), "{err}");
        assert_eq!(
            resolve(&store, &Sender { channel: "discord".into(), id: "9".into(), name: None }, None).await.unwrap(),
            None
        );
    }
}
