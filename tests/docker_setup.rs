//! The Docker path. This machine has the docker client but no daemon and no image
//! registry, so `docker-setup.sh` runs against a `docker` stand-in first on PATH that
//! records its calls, while a real gateway plays the container for the health wait. The
//! compose file is parsed with PyYAML and checked against the Dockerfile; both scripts
//! must pass shellcheck. The prompts run on a real terminal, a private tmux server.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;

const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// A copy of the script and compose file in a temp dir, so the repository stays clean.
struct Setup {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
}

impl Setup {
    fn new(compose_works: bool) -> Setup {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        std::fs::create_dir_all(dir.join("packaging")).unwrap();
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        std::fs::copy(Path::new(REPO).join("docker-setup.sh"), dir.join("docker-setup.sh")).unwrap();
        std::fs::copy(Path::new(REPO).join("packaging/docker-compose.yml"), dir.join("packaging/docker-compose.yml"))
            .unwrap();
        let script = format!(
            "#!/bin/sh\necho \"SKYNET_HOST_PORT=${{SKYNET_HOST_PORT:-}} $*\" >> '{}'\n[ \"$1 $2\" = 'compose version' ] && exit {}\nexit 0\n",
            dir.join("docker.log").display(),
            if compose_works { 0 } else { 1 }
        );
        std::fs::write(dir.join("bin/docker"), script).unwrap();
        std::fs::set_permissions(dir.join("bin/docker"), std::fs::Permissions::from_mode(0o755)).unwrap();
        Setup { _tmp: tmp, dir }
    }

    fn run(&self, args: &[&str], env: &[(&str, &str)], with_docker: bool) -> Output {
        let path = if with_docker {
            format!("{}:/usr/bin:/bin", self.dir.join("bin").display())
        } else {
            "/usr/bin:/bin".into()
        };
        let mut cmd = Command::new("sh");
        cmd.arg(self.dir.join("docker-setup.sh")).args(args).env("PATH", path);
        for key in ["ANTHROPIC_API_KEY", "OPENAI_API_KEY", "SKYNET_MODEL"] {
            cmd.env_remove(key);
        }
        cmd.envs(env.iter().copied()).output().unwrap()
    }

    fn env_file(&self) -> String {
        std::fs::read_to_string(self.dir.join("packaging/skynet.env")).unwrap()
    }

    fn docker_calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.join("docker.log")).unwrap_or_default().lines().map(str::to_string).collect()
    }
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

#[test]
fn setup_writes_a_private_env_file_starts_compose_and_waits_for_health() {
    let g = Gateway::start(&[]);
    let port = g.port().to_string();
    let s = Setup::new(true);
    let out = s.run(
        &["--port", &port, "--model", "anthropic/claude-sonnet-4-5"],
        &[("ANTHROPIC_API_KEY", "sk-ant-secret")],
        true,
    );
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    let env = s.env_file();
    let token = env.lines().find_map(|l| l.strip_prefix("SKYNET_GATEWAY__AUTH_TOKEN=")).unwrap().to_string();
    assert!(token.len() == 64 && token.chars().all(|c| c.is_ascii_hexdigit()), "{env}");
    assert!(
        env.contains("SKYNET_AGENT__MODEL=anthropic/claude-sonnet-4-5\n")
            && env.contains("ANTHROPIC_API_KEY=sk-ant-secret\n")
    );
    let mode = std::fs::metadata(s.dir.join("packaging/skynet.env")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the env file holds secrets");
    assert_eq!(
        s.docker_calls(),
        [
            "SKYNET_HOST_PORT= compose version".to_string(),
            format!("SKYNET_HOST_PORT={port} compose -f packaging/docker-compose.yml up -d --build"),
        ]
    );
    assert!(said.contains(&format!("ws://127.0.0.1:{port}/")) && said.contains(&token), "{said}");
    assert!(!said.contains("No model is configured"), "{said}");

    // Again, with a line of the user's own: the token and the line are kept.
    std::fs::write(s.dir.join("packaging/skynet.env"), format!("{env}SKYNET_LOG__LEVEL=debug\n")).unwrap();
    let out = s.run(&["--port", &port, "--model", "openai/gpt-4o-mini", "--no-build"], &[], true);
    assert!(out.status.success(), "{}", text(&out));
    let env = s.env_file();
    assert!(env.contains(&format!("SKYNET_GATEWAY__AUTH_TOKEN={token}\n")), "{env}");
    assert!(env.contains("SKYNET_AGENT__MODEL=openai/gpt-4o-mini\n") && !env.contains("claude-sonnet"), "{env}");
    assert!(env.contains("SKYNET_LOG__LEVEL=debug\n") && env.contains("ANTHROPIC_API_KEY=sk-ant-secret\n"), "{env}");
    assert!(s.docker_calls().last().unwrap().ends_with("up -d"), "--no-build: {:?}", s.docker_calls());
}

#[test]
fn setup_says_plainly_when_docker_or_compose_is_missing_or_a_flag_is_wrong() {
    let s = Setup::new(true);
    let out = s.run(&[], &[], false);
    assert!(!out.status.success());
    assert!(text(&out).contains("docker is not installed"), "{}", text(&out));

    let s = Setup::new(false);
    let out = s.run(&[], &[], true);
    assert!(!out.status.success());
    assert!(text(&out).contains("Docker Compose plugin is missing"), "{}", text(&out));
    assert!(!s.dir.join("packaging/skynet.env").exists(), "nothing written before the checks pass");

    let s = Setup::new(true);
    let out = s.run(&["--port", "not-a-port"], &[], true);
    assert!(!out.status.success() && text(&out).contains("--port must be a number"), "{}", text(&out));
}

#[test]
fn on_a_terminal_it_asks_for_the_model_and_a_hidden_key() {
    let g = Gateway::start(&[]);
    let port = g.port().to_string();
    let s = Setup::new(true);
    let path = format!("{}:/usr/bin:/bin", s.dir.join("bin").display());
    let shell = format!("PATH='{path}' sh '{}' --port {port} --no-build", s.dir.join("docker-setup.sh").display());
    let Some(screen) = tmux::Screen::start(&shell, &[]) else { return };
    screen.type_in("Model [anthropic/claude-sonnet-4-5]:", "openai/gpt-4o-mini");
    screen.type_in("OPENAI_API_KEY (input hidden, Enter to skip):", "sk-typed-in-secret");
    let shown = screen.wait_for("EXIT=");
    assert!(shown.contains("EXIT=0") && shown.contains("Skynet is running in Docker"), "{shown}");
    assert!(!shown.contains("sk-typed-in-secret"), "the key was shown:\n{shown}");
    let env = s.env_file();
    assert!(env.contains("SKYNET_AGENT__MODEL=openai/gpt-4o-mini\n"), "{env}");
    assert!(env.contains("OPENAI_API_KEY=sk-typed-in-secret\n"), "{env}");
    let mode = std::fs::metadata(s.dir.join("packaging/skynet.env")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    // Echo is back on afterwards: what is typed at the shell shows again.
    screen.tmux(&["send-keys", "-l", "echo-is-back"]);
    screen.wait_for("echo-is-back");
    drop(screen);

    // A second run on a terminal does not ask again: the model is in skynet.env now.
    let Some(screen) = tmux::Screen::start(&shell, &[]) else { return };
    let shown = screen.wait_for("EXIT=");
    assert!(shown.contains("EXIT=0") && !shown.contains("Model ["), "{shown}");
    drop(screen);

    // Flags and the environment win on a terminal too: nothing is asked.
    let s = Setup::new(true);
    let path = format!("{}:/usr/bin:/bin", s.dir.join("bin").display());
    let script = s.dir.join("docker-setup.sh");
    for (args, env) in [
        (format!("--port {port} --no-build --model groq/llama-3.3-70b-versatile"), ""),
        (format!("--port {port} --no-build"), "ANTHROPIC_API_KEY=sk-ant-from-env "),
    ] {
        let Some(screen) = tmux::Screen::start(&format!("{env}PATH='{path}' sh '{}' {args}", script.display()), &[])
        else {
            return;
        };
        let shown = screen.wait_for("EXIT=");
        assert!(shown.contains("EXIT=0") && !shown.contains("Model [") && !shown.contains("input hidden"), "{shown}");
    }
    let env = s.env_file();
    assert!(env.contains("SKYNET_AGENT__MODEL=groq/llama-3.3-70b-versatile\n"), "{env}");
    assert!(env.contains("ANTHROPIC_API_KEY=sk-ant-from-env\n"), "{env}");
}

#[test]
fn ctrl_c_at_the_hidden_key_prompt_restores_the_terminal_and_writes_no_key() {
    let s = Setup::new(true);
    let path = format!("{}:/usr/bin:/bin", s.dir.join("bin").display());
    let shell = format!("PATH='{path}' sh '{}' --no-build", s.dir.join("docker-setup.sh").display());
    let Some(screen) = tmux::Screen::start(&shell, &[]) else { return };
    screen.type_in("Model [anthropic/claude-sonnet-4-5]:", "");
    screen.ready("ANTHROPIC_API_KEY (input hidden, Enter to skip):");
    screen.tmux(&["send-keys", "-l", "sk-half"]);
    screen.tmux(&["send-keys", "C-c"]);
    let shown = screen.wait_for("EXIT=");
    assert!(shown.contains("EXIT=130"), "{shown}");
    assert!(!shown.contains("sk-half"), "{shown}");
    screen.tmux(&["send-keys", "-l", "echo-is-back"]);
    screen.wait_for("echo-is-back");
    let env = std::fs::read_to_string(s.dir.join("packaging/skynet.env")).unwrap_or_default();
    assert!(!env.contains("API_KEY") && !env.contains("SKYNET_AGENT__MODEL"), "{env}");
    assert!(s.docker_calls().iter().all(|c| !c.contains(" up ")), "nothing started: {:?}", s.docker_calls());
}

#[test]
fn without_a_terminal_it_never_asks() {
    let g = Gateway::start(&[]);
    let s = Setup::new(true);
    let out = Command::new("sh")
        .arg(s.dir.join("docker-setup.sh"))
        .args(["--no-build", "--port", &g.port().to_string()])
        .env("PATH", format!("{}:/usr/bin:/bin", s.dir.join("bin").display()))
        .env_remove("ANTHROPIC_API_KEY")
        .env_remove("OPENAI_API_KEY")
        .env_remove("SKYNET_MODEL")
        .stdin(std::process::Stdio::piped())
        .output()
        .unwrap();
    let said = text(&out);
    assert!(!said.contains("Model [") && said.contains("No model is configured yet"), "{said}");
}

#[test]
fn compose_and_dockerfile_agree_and_the_scripts_pass_shellcheck() {
    let parsed = Command::new("python3")
        .arg("-c")
        .arg("import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))")
        .arg(Path::new(REPO).join("packaging/docker-compose.yml"))
        .output()
        .unwrap();
    if parsed.status.success() {
        let c: serde_json::Value = serde_json::from_slice(&parsed.stdout).unwrap();
        let svc = &c["services"]["skynet"];
        assert_eq!(svc["healthcheck"]["test"], serde_json::json!(["CMD", "/skynet-gateway", "health"]));
        assert_eq!(svc["ports"][0], "127.0.0.1:${SKYNET_HOST_PORT:-18789}:18789", "loopback only on the host");
        assert_eq!(svc["volumes"][0], "skynet-data:/data");
        assert_eq!(svc["env_file"][0]["path"], "skynet.env");
        assert_eq!(svc["build"]["dockerfile"], "packaging/Dockerfile");
    } else {
        eprintln!("PyYAML is not available; the compose file was not parsed: {}", text(&parsed));
    }
    let dockerfile = std::fs::read_to_string(Path::new(REPO).join("packaging/Dockerfile")).unwrap();
    for needle in [
        "FROM scratch",
        "COPY --from=build /skynet-gateway /skynet-gateway",
        "SKYNET_HOME=/data",
        "SKYNET_GATEWAY__BIND=0.0.0.0",
        "CMD [\"/skynet-gateway\", \"health\"]",
        "--target x86_64-unknown-linux-musl",
    ] {
        assert!(dockerfile.contains(needle), "Dockerfile lacks {needle:?}");
    }

    let scripts: Vec<PathBuf> = ["docker-setup.sh", "install.sh", "packaging/release.sh"]
        .iter()
        .map(|s| Path::new(REPO).join(s))
        .filter(|p| p.exists())
        .collect();
    match Command::new("shellcheck").args(&scripts).output() {
        Ok(o) => assert!(o.status.success(), "shellcheck:\n{}", text(&o)),
        Err(_) => eprintln!("shellcheck is not installed; the scripts were not linted"),
    }
}
