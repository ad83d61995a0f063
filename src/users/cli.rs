//! `skynet-gateway user list|add|role|link|unlink|code`: user administration from the
//! command line. Works while the gateway runs (SQLite WAL; changes apply to the next
//! message).

use std::process::ExitCode;

use anyhow::{Context, bail};

use super::Role;
use crate::config::{Config, Overrides};
use crate::home::Home;
use crate::store::{LinkError, Store};

#[derive(Debug, clap::Subcommand)]
pub enum UserCmd {
    /// List users, their roles and linked identities
    List {
        /// Machine-readable output
        #[arg(long)]
        json: bool,
    },
    /// Add a user
    Add {
        name: String,
        /// admin, user or child
        #[arg(long, default_value = "user")]
        role: String,
    },
    /// Change a user's role (admin, user or child)
    Role { name: String, role: String },
    /// Link a channel identity to a user, e.g. `user link alice telegram 123456789`
    Link { name: String, channel: String, id: String },
    /// Remove a channel identity's link
    Unlink { channel: String, id: String },
    /// Print a one-time code that links another channel to the user (sent there with /link CODE)
    Code { name: String },
}

pub fn run(cmd: UserCmd) -> anyhow::Result<ExitCode> {
    let home = Home::resolve()?;
    home.prepare()?;
    let store = Store::open(&home.db_path())?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot start a runtime")?;
    rt.block_on(async move {
        match cmd {
            UserCmd::List { json } => {
                let users = store.list_users().await?;
                if json {
                    let rows: Vec<serde_json::Value> = users
                        .iter()
                        .map(|u| {
                            serde_json::json!({"id": u.person.id, "name": u.person.name, "role": u.person.role,
                                "identities": u.identities.iter().map(|(c, i)| format!("{c}:{i}")).collect::<Vec<_>>()})
                        })
                        .collect();
                    println!("{}", serde_json::to_string_pretty(&rows)?);
                } else if users.is_empty() {
                    println!("No users yet. Add one with `skynet-gateway user add NAME --role admin|user|child`.");
                } else {
                    println!("{:<24} {:<6} identities", "name", "role");
                    for u in users {
                        let ids: Vec<String> = u.identities.iter().map(|(c, i)| format!("{c}:{i}")).collect();
                        println!("{:<24} {:<6} {}", u.person.name, u.person.role, ids.join(", "));
                    }
                }
            }
            UserCmd::Add { name, role } => {
                let role: Role = role.parse().map_err(anyhow::Error::msg)?;
                if name.trim().is_empty() {
                    bail!("the name must not be empty");
                }
                match store.add_user(&name, role).await? {
                    Ok(p) => println!(
                        "Added {} ({}). Link their accounts with `skynet-gateway user link {} CHANNEL ID`.",
                        p.name, p.role, p.name
                    ),
                    Err(why) => bail!("{why}"),
                }
            }
            UserCmd::Role { name, role } => {
                let role: Role = role.parse().map_err(anyhow::Error::msg)?;
                if !store.set_role(&name, role).await? {
                    bail!("no user named {name:?}; see `skynet-gateway user list`");
                }
                println!("{name} is now {role}.");
            }
            UserCmd::Link { name, channel, id } => match store.link_identity(&name, &channel, &id).await {
                Ok(p) => println!("{channel}:{id} is now {}.", p.name),
                Err(LinkError::Store(e)) => return Err(e.into()),
                Err(e) => bail!("{e}"),
            },
            UserCmd::Unlink { channel, id } => {
                if !store.unlink_identity(&channel, &id).await? {
                    bail!("{channel}:{id} is not linked to anyone; see `skynet-gateway user list`");
                }
                println!("{channel}:{id} is unlinked; its next message is treated as a stranger's.");
            }
            UserCmd::Code { name } => {
                let users = store.list_users().await?;
                let Some(u) = users.iter().find(|u| u.person.name == name) else {
                    bail!("no user named {name:?}; see `skynet-gateway user list`");
                };
                let ttl = Config::load(home.root(), &Overrides::default())?.users.link_code_ttl_secs;
                let code = store.create_link_code(u.person.id, ttl).await?;
                println!("{code}");
                eprintln!("Send `/link {code}` from the account to link to {name}, within {} minutes.", ttl / 60);
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}
