//! `skynet-gateway health`: asks the running gateway's `/health` and exits 0 when it
//! answers 200 — the health check of the FROM-scratch container, which has no curl.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::config::{Config, Overrides};
use crate::home::Home;

const TIMEOUT: Duration = Duration::from_secs(3);

pub fn run(url: Option<&str>) -> anyhow::Result<ExitCode> {
    let (addr, path) = match url {
        Some(u) => parse_url(u)?,
        None => {
            let home = Home::resolve()?;
            let config = Config::load(home.root(), &Overrides::default())?;
            let ip: IpAddr = config.gateway.bind.parse().context("gateway.bind was validated")?;
            // A gateway listening on every interface is reachable on loopback.
            let ip = match ip {
                IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
                other => other,
            };
            (SocketAddr::new(ip, config.gateway.port), "/health".to_string())
        }
    };
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT)
        .with_context(|| format!("nothing answers on {addr}: is the gateway running?"))?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")?;
    let mut response = String::new();
    stream.take(64 * 1024).read_to_string(&mut response).context("the gateway did not answer in time")?;
    let status = response.split(' ').nth(1).unwrap_or("");
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.trim()).unwrap_or("");
    if status == "200" {
        println!("healthy: {body}");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("unhealthy: HTTP {status} {body}");
        Ok(ExitCode::FAILURE)
    }
}

/// `http://host:port/path` (plain HTTP only: the check runs next to the gateway).
fn parse_url(url: &str) -> anyhow::Result<(SocketAddr, String)> {
    let Some(rest) = url.strip_prefix("http://") else {
        bail!("--url must start with http:// (e.g. http://127.0.0.1:18789/health)");
    };
    let (authority, path) = rest.split_once('/').map_or((rest, "/health".to_string()), |(a, p)| (a, format!("/{p}")));
    let addr = authority
        .to_socket_addrs()
        .with_context(|| format!("--url {url}: {authority} is not host:port"))?
        .next()
        .with_context(|| format!("--url {url}: {authority} does not resolve"))?;
    Ok((addr, path))
}
