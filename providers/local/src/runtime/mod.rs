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

/// `listen` as a loopback address and port, or the problem at `listen`
/// (`what` serves this machine only; `port` is an example's).
pub(crate) fn loopback_listen(
    listen: &str,
    what: &str,
    port: u16,
) -> Result<std::net::SocketAddr, infra_provider_sdk::Diagnostic> {
    use infra_provider_sdk::Diagnostic;
    match listen.parse::<std::net::SocketAddr>() {
        Ok(addr) if addr.ip().is_loopback() => Ok(addr),
        Ok(_) => Err(
            Diagnostic::error(format!("`{listen}` is not a loopback address"))
                .at("listen")
                .help(format!(
                    "{what} serves this machine only: use 127.0.0.1:PORT"
                )),
        ),
        Err(_) => Err(
            Diagnostic::error(format!("`{listen}` is not an address and port"))
                .at("listen")
                .help(format!("write it as \"127.0.0.1:{port}\"")),
        ),
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
/// A port is free only until someone binds it: this process never hands out
/// one of the last 1,024 it handed out (instances started together, tests
/// running side by side), so two of its children never race for one port.
pub fn free_port() -> std::io::Result<u16> {
    static HANDED_OUT: std::sync::Mutex<std::collections::VecDeque<u16>> =
        std::sync::Mutex::new(std::collections::VecDeque::new());
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    let ephemeral_start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    const LOWEST: u16 = 10_000;
    let mut chosen = None;
    if ephemeral_start > LOWEST + 1_000 {
        for _ in 0..64 {
            let mut random = [0u8; 2];
            getrandom::fill(&mut random).map_err(std::io::Error::other)?;
            let port = LOWEST + u16::from_le_bytes(random) % (ephemeral_start - LOWEST);
            if !handed_out.contains(&port)
                && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
            {
                chosen = Some(port);
                break;
            }
        }
    }
    let port = match chosen {
        Some(port) => port,
        None => std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port(),
    };
    if handed_out.len() >= 1024 {
        handed_out.pop_front();
    }
    handed_out.push_back(port);
    Ok(port)
}

/// Writes `contents` to `path` through a temporary file and a rename, with
/// `mode`, so that a reader never sees half of it.
pub fn write_atomically(path: &Path, contents: &[u8], mode: u32) -> std::io::Result<()> {
    infra_provider_sdk::host::write_atomically(path, contents, mode)
        .map_err(|failure| std::io::Error::new(failure.error.kind(), failure.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_below_the_ephemeral_range_and_never_handed_out_twice() {
        let ephemeral_start: u16 =
            std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
                .ok()
                .and_then(|range| range.split_whitespace().next()?.parse().ok())
                .unwrap_or(32768);
        // From threads at once, as parallel tests and instances ask.
        let ports: Vec<u16> = std::thread::scope(|scope| {
            let askers: Vec<_> = (0..8)
                .map(|_| scope.spawn(|| (0..64).map(|_| free_port().unwrap()).collect::<Vec<_>>()))
                .collect();
            askers
                .into_iter()
                .flat_map(|asker| asker.join().unwrap())
                .collect()
        });
        let distinct: std::collections::BTreeSet<u16> = ports.iter().copied().collect();
        assert_eq!(distinct.len(), ports.len(), "a port handed out twice");
        if ephemeral_start > 11_000 {
            assert!(
                ports.iter().all(|&port| port < ephemeral_start),
                "{ports:?}"
            );
        }
    }
}
