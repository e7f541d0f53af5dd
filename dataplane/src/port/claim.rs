//! Claims on interfaces, so two switchyards never attach the same interface.
//!
//! Two switches on one veth end would each forward the other's output: a loop. A claim is an
//! exclusive `flock` on `<run dir>/ports/<netns inode>-<ifindex>.lock`, holding the owner's pid for
//! the error message. The kernel drops the lock when the process dies, even by `kill -9`, so a crash
//! never leaves a stale claim. The run directory is `$SWITCHYARD_RUN_DIR`, else `/run/switchyard`.
//!
//! Releasing a claim removes its file (while still holding the lock), so the directory holds one
//! file per attached interface, not one per interface ever attached. Because a file can be removed
//! between someone's `open` and `flock`, `acquire` checks after locking that the path still names
//! the file it locked, and starts over if not: two holders of one path are impossible. A crashed
//! switchyard leaves its files behind (unlocked, harmless); the next claim of the same interface
//! takes them over and removes them in turn.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use super::{sys, PortError};

/// Held for as long as the port is attached; dropping it releases the interface.
#[derive(Debug)]
pub struct InterfaceClaim {
    _file: File,
    /// Removed on drop.
    path: PathBuf,
}

impl Drop for InterfaceClaim {
    fn drop(&mut self) {
        // Unlinked while the lock is held; the lock goes when `_file` closes right after.
        let _ = std::fs::remove_file(&self.path);
    }
}

fn run_dir() -> PathBuf {
    std::env::var_os("SWITCHYARD_RUN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/run/switchyard"))
}

impl InterfaceClaim {
    pub fn acquire(name: &str, ifindex: u32) -> Result<InterfaceClaim, PortError> {
        InterfaceClaim::acquire_as(name, ifindex, "")
    }

    /// A claim on one share of an interface (`share` non-empty: a VLAN of a parent interface).
    pub fn acquire_as(name: &str, ifindex: u32, share: &str) -> Result<InterfaceClaim, PortError> {
        let ns = sys::netns_inode()
            .map_err(|e| PortError::os(name, "reading the network namespace", e))?;
        let dir = run_dir().join("ports");
        std::fs::create_dir_all(&dir)
            .map_err(|e| PortError::os(name, "creating the claim directory", e))?;
        let path = if share.is_empty() {
            dir.join(format!("{ns}-{ifindex}.lock"))
        } else {
            dir.join(format!("{ns}-{ifindex}-{share}.lock"))
        };
        let (mut file, rc) = loop {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(|e| PortError::os(name, "opening the claim file", e))?;
            // SAFETY: flock on a descriptor we own; no memory is involved.
            let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
            if rc == 0 && !same_file(&file, &path) {
                // Its holder released (and removed) it between our open and flock: start over.
                continue;
            }
            break (file, rc);
        };
        if rc < 0 {
            let err = sys::last_err();
            if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                let holder = if holder.is_empty() {
                    String::new()
                } else {
                    format!(" (pid {holder})")
                };
                return Err(PortError::AlreadyAttached {
                    name: name.to_string(),
                    holder,
                });
            }
            return Err(PortError::os(name, "locking the claim file", err));
        }
        let _ = file.set_len(0);
        let _ = file.rewind();
        let _ = write!(file, "{}", std::process::id());
        Ok(InterfaceClaim { _file: file, path })
    }
}

/// Whether `path` still names the open `file`.
fn same_file(file: &File, path: &std::path::Path) -> bool {
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_claim_is_refused_until_the_first_is_dropped() {
        let dir = std::env::temp_dir().join(format!("sy-claim-{}", std::process::id()));
        std::env::set_var("SWITCHYARD_RUN_DIR", &dir);
        let first = InterfaceClaim::acquire("lo", 1).expect("first claim");
        // flock locks belong to the open file description, so a second open in the same process
        // conflicts just as another process would.
        match InterfaceClaim::acquire("lo", 1) {
            Err(PortError::AlreadyAttached { name, holder }) => {
                assert_eq!(name, "lo");
                assert!(holder.contains(&std::process::id().to_string()), "{holder}");
            }
            other => panic!("expected AlreadyAttached, got {other:?}"),
        }
        let path = first.path.clone();
        assert!(path.exists());
        drop(first);
        assert!(!path.exists(), "a released claim leaves no file behind");
        let again = InterfaceClaim::acquire("lo", 1).expect("claim after release");
        // A file left by a crashed holder (unlocked) is taken over, and removed on release.
        drop(again);
        std::fs::write(&path, "999999").unwrap();
        drop(InterfaceClaim::acquire("lo", 1).expect("a stale file is no claim"));
        assert!(!path.exists());
        let _ = std::fs::remove_dir_all(dir);
    }
}
