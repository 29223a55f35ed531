//! What the local provider keeps on this machine between runs: the runtime
//! directory `.infra/` next to the configuration (kept out of git), the
//! processes it started, and a small HTTP client to talk to them.

pub mod http;
pub mod process;

use std::io::Write as _;
use std::path::{Path, PathBuf};

/// The runtime directory of one configuration.
#[derive(Debug, Clone)]
pub struct RuntimeDir {
    root: PathBuf,
}

impl RuntimeDir {
    /// `.infra/` inside `config_dir`.
    pub fn new(config_dir: &Path) -> RuntimeDir {
        RuntimeDir {
            root: config_dir.join(".infra"),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Creates it (and adds it to the configuration's `.gitignore`: what
    /// it holds is this machine's, and the admin token is a secret).
    pub fn ensure(&self) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.root)?;
        let Some(config_dir) = self.root.parent() else {
            return Ok(());
        };
        let gitignore = config_dir.join(".gitignore");
        let existing = std::fs::read_to_string(&gitignore).unwrap_or_default();
        let listed = existing
            .lines()
            .any(|line| matches!(line.trim(), ".infra" | ".infra/" | "/.infra" | "/.infra/"));
        if !listed {
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&gitignore)?;
            if !existing.is_empty() && !existing.ends_with('\n') {
                writeln!(file)?;
            }
            writeln!(
                file,
                "# infra's runtime files on this machine (logs, pids, tokens)"
            )?;
            writeln!(file, ".infra/")?;
        }
        Ok(())
    }

    /// Where the load balancer listening on `listen` keeps its files.
    pub fn load_balancer(&self, listen: &str) -> PathBuf {
        self.root.join("lb").join(file_name(listen))
    }

    /// Where the instances of the deployment at `address` log.
    pub fn deployment(&self, address: &str) -> PathBuf {
        self.root.join("deployments").join(file_name(address))
    }
}

/// `127.0.0.1:8080` → `127.0.0.1_8080`: a name safe in any file system.
pub(crate) fn file_name(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// 32 random bytes from the OS, as hex: the load balancer's admin token.
pub fn random_token() -> std::io::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(std::io::Error::other)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// A loopback port free right now, for a process to listen on.
///
/// Picked at random below the kernel's ephemeral range: a port the OS picks
/// (bind to port 0) is an ephemeral one, which any outgoing connection — the
/// load balancer's to its backends, a client's — may take as its source
/// port before the process that was given it binds it, and the process then
/// fails to start. Falls back to the OS's pick when no such port is free.
pub fn free_port() -> std::io::Result<u16> {
    let ephemeral_start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    const LOWEST: u16 = 10_000;
    if ephemeral_start > LOWEST + 1_000 {
        for _ in 0..64 {
            let mut random = [0u8; 2];
            getrandom::fill(&mut random).map_err(std::io::Error::other)?;
            let port = LOWEST + u16::from_le_bytes(random) % (ephemeral_start - LOWEST);
            if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
                return Ok(port);
            }
        }
    }
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Writes `contents` to `path` through a temporary file and a rename, with
/// `mode`, so that a reader never sees half of it.
pub fn write_atomically(path: &Path, contents: &[u8], mode: u32) -> std::io::Result<()> {
    infra_provider_sdk::host::write_atomically(path, contents, mode)
        .map_err(|failure| std::io::Error::new(failure.error.kind(), failure.to_string()))
}
