//! Reading the files a configuration names (its `.infra` files, `file()`)
//! without trusting them: only regular files (a FIFO would block, a device
//! never end), and never more bytes than the limit, whatever the file
//! claims to hold.

use std::fs::{self, File};
use std::path::Path;

/// What [`read_limited`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Limited {
    /// The whole file.
    Read(Vec<u8>),
    /// Larger than the limit: its size (at least the limit plus one).
    TooLarge(u64),
    /// A FIFO, a device, a directory: not read (it could block or never end).
    NotAFile,
}

/// Reads the regular file at `path` if it holds at most `limit` bytes,
/// never more than `limit + 1` of them (a file that grows while read, or
/// lies about its size, is still bounded).
pub fn read_limited(path: &Path, limit: u64) -> std::io::Result<Limited> {
    use std::io::Read as _;
    let metadata = fs::metadata(path)?;
    if !metadata.is_file() {
        return Ok(Limited::NotAFile);
    }
    if metadata.len() > limit {
        return Ok(Limited::TooLarge(metadata.len()));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(metadata.len()).unwrap_or(0));
    File::open(path)?.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Ok(Limited::TooLarge(bytes.len() as u64));
    }
    Ok(Limited::Read(bytes))
}
