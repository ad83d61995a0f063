//! The service definitions, rendered from the templates in `packaging/`: a systemd unit
//! (user or system) and a launchd plist (agent or daemon).

use std::path::{Path, PathBuf};

const SYSTEMD_TEMPLATE: &str = include_str!("../../packaging/systemd/skynet-gateway.service");
const LAUNCHD_TEMPLATE: &str = include_str!("../../packaging/launchd/ai.skynet.gateway.plist");

/// The service's name: systemd's unit is `skynet-gateway.service`, launchd's label this.
pub const LABEL: &str = "ai.skynet.gateway";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Systemd,
    Launchd,
}

/// What goes into the definition.
pub struct Target<'a> {
    pub kind: Kind,
    /// A system-wide service (root) instead of one for the current user.
    pub system: bool,
    pub exe: &'a Path,
    pub skynet_home: &'a Path,
    /// For a system service: the account it runs as.
    pub user: Option<&'a str>,
}

/// Quotes a value for a systemd unit line: `"…"` with `\` and `"` escaped and `%`
/// doubled, so spaces and specifier characters in paths survive.
fn systemd_quote(s: &str) -> String {
    let escaped = s.replace('\\', "\\\\").replace('"', "\\\"").replace('%', "%%");
    format!("\"{escaped}\"")
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&apos;")
}

pub fn render(t: &Target<'_>) -> String {
    let exe = t.exe.to_string_lossy();
    let home = t.skynet_home.to_string_lossy();
    match t.kind {
        Kind::Systemd => {
            let user = match (t.system, t.user) {
                (true, Some(u)) => format!("User={u}\n"),
                _ => String::new(),
            };
            SYSTEMD_TEMPLATE
                .replace("{{EXEC}}", &systemd_quote(&exe))
                .replace("{{ENV_HOME}}", &systemd_quote(&format!("SKYNET_HOME={home}")))
                .replace("{{USER}}", &user)
                .replace("{{WANTED_BY}}", if t.system { "multi-user.target" } else { "default.target" })
        }
        Kind::Launchd => LAUNCHD_TEMPLATE
            .replace("{{LABEL}}", LABEL)
            .replace("{{EXEC}}", &xml_escape(&exe))
            .replace("{{SKYNET_HOME}}", &xml_escape(&home))
            .replace("{{LOG}}", &xml_escape(&t.skynet_home.join("gateway.log").to_string_lossy())),
    }
}

/// Where the definition lives, as service-manager writes it.
pub fn definition_path(kind: Kind, system: bool) -> Option<PathBuf> {
    let base = directories::BaseDirs::new();
    match (kind, system) {
        (Kind::Systemd, true) => Some(PathBuf::from("/etc/systemd/system/skynet-gateway.service")),
        (Kind::Systemd, false) => Some(base?.config_dir().join("systemd/user/skynet-gateway.service")),
        (Kind::Launchd, true) => Some(PathBuf::from(format!("/Library/LaunchDaemons/{LABEL}.plist"))),
        (Kind::Launchd, false) => Some(base?.home_dir().join(format!("Library/LaunchAgents/{LABEL}.plist"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn systemd_paths_with_spaces_and_percent_signs_are_quoted() {
        let t = Target {
            kind: Kind::Systemd,
            system: true,
            exe: Path::new("/opt/my apps/skynet-gateway"),
            skynet_home: Path::new("/srv/100% skynet"),
            user: Some("ann"),
        };
        let unit = render(&t);
        assert!(unit.contains("ExecStart=\"/opt/my apps/skynet-gateway\" run\n"), "{unit}");
        assert!(unit.contains("Environment=\"SKYNET_HOME=/srv/100%% skynet\"\n"), "{unit}");
        assert!(unit.contains("\nUser=ann\nRestart=on-failure\n"), "{unit}");
        assert!(unit.contains("WantedBy=multi-user.target"), "{unit}");
        assert!(!unit.contains("{{"), "every placeholder filled: {unit}");
    }

    #[test]
    fn a_user_unit_has_no_user_line_and_starts_with_the_session() {
        let t = Target {
            kind: Kind::Systemd,
            system: false,
            exe: Path::new("/usr/local/bin/skynet-gateway"),
            skynet_home: Path::new("/home/ann/.skynet"),
            user: Some("ann"),
        };
        let unit = render(&t);
        assert!(!unit.contains("User="), "{unit}");
        assert!(unit.contains("WantedBy=default.target"), "{unit}");
    }

    #[test]
    fn plist_values_are_xml_escaped() {
        let t = Target {
            kind: Kind::Launchd,
            system: false,
            exe: Path::new("/Users/a&b/bin/skynet-gateway"),
            skynet_home: Path::new("/Users/a&b/.skynet"),
            user: None,
        };
        let plist = render(&t);
        assert!(plist.contains("<string>/Users/a&amp;b/bin/skynet-gateway</string>"), "{plist}");
        assert!(plist.contains("<string>ai.skynet.gateway</string>"));
        assert!(!plist.contains("{{"));
    }
}
