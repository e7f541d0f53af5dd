//! The state file: `<state dir>/state.json`, replaced atomically on every change.
//!
//! A change is written to `state.json.tmp`, fsynced, renamed over `state.json`, and the directory
//! is fsynced so the rename itself survives a power cut. A reader therefore sees either the old or
//! the new state, never a mix, whenever the daemon is killed. The directory is locked (`flock` on
//! `daemon.lock`, released by the kernel when the process dies, even by `kill -9`) so two daemons
//! never write the same state.

use std::fs::{File, OpenOptions};
use std::io::{Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::model::{State, STATE_FORMAT};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state directory {dir}: {source}")]
    Dir { dir: String, source: std::io::Error },
    #[error("state directory {dir} is in use by another switchyard daemon{holder}")]
    Locked { dir: String, holder: String },
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not a switchyard state file: {detail}")]
    Corrupt { path: String, detail: String },
    #[error("{path} has state format {found}; this switchyard understands format {STATE_FORMAT}")]
    Format { path: String, found: u32 },
    #[error("writing {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

/// How long `open` waits for a lock whose holder is exiting or gone. A daemon killed with `kill -9`
/// holds its lock until the kernel has closed all its files, which takes most of a second with
/// a few dozen AF_PACKET ports (each close waits for an RCU grace period): a restart right after
/// the kill must wait for that, not refuse.
const STALE_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// The process named in `daemon.lock`, as far as `/proc` tells.
#[derive(Debug, PartialEq)]
enum Holder {
    /// Running, and not killed: another daemon serves this directory.
    Alive,
    /// Gone, a zombie, or with SIGKILL pending (closing its files): the lock is about to go.
    Exiting,
}

impl Holder {
    fn of(pid: &str) -> Holder {
        let Ok(pid) = pid.parse::<u32>() else {
            // Locked before the pid was written (or by something else): give it the grace time.
            return Holder::Exiting;
        };
        let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
            return Holder::Exiting;
        };
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(str::trim)
                .unwrap_or("")
        };
        let killed = |mask: &str| {
            u64::from_str_radix(mask, 16).is_ok_and(|m| m & (1 << (libc::SIGKILL - 1)) != 0)
        };
        let state = field("State:");
        if state.starts_with('Z')
            || state.starts_with('X')
            || killed(field("ShdPnd:"))
            || killed(field("SigPnd:"))
        {
            Holder::Exiting
        } else {
            Holder::Alive
        }
    }
}

pub struct Store {
    dir: PathBuf,
    path: PathBuf,
    _lock: File,
}

impl Store {
    /// Creates the directory if needed (mode 0700) and locks it for this process.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        let dir_err = |source| StoreError::Dir {
            dir: dir.display().to_string(),
            source,
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(dir_err)?;
        let mut lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(dir.join("daemon.lock"))
            .map_err(dir_err)?;
        let waited_since = std::time::Instant::now();
        loop {
            // SAFETY: flock on a descriptor we own; no memory is involved.
            if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                break;
            }
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EWOULDBLOCK) {
                return Err(dir_err(err));
            }
            let pid = std::fs::read_to_string(dir.join("daemon.lock")).unwrap_or_default();
            let pid = pid.trim();
            let holder = Holder::of(pid);
            if holder == Holder::Alive || waited_since.elapsed() > STALE_LOCK_WAIT {
                return Err(StoreError::Locked {
                    dir: dir.display().to_string(),
                    holder: match holder {
                        _ if pid.is_empty() => String::new(),
                        Holder::Alive => format!(" (pid {pid})"),
                        Holder::Exiting => format!(" (pid {pid}, still exiting)"),
                    },
                });
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = lock.set_len(0);
        let _ = lock.rewind();
        let _ = write!(lock, "{}", std::process::id());
        Ok(Store {
            dir: dir.to_path_buf(),
            path: dir.join("state.json"),
            _lock: lock,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The saved state, or `None` on a first start.
    pub fn load(&self) -> Result<Option<State>, StoreError> {
        let p = self.path.display().to_string();
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(StoreError::Read { path: p, source }),
        };
        #[derive(serde::Deserialize)]
        struct FormatOnly {
            format: u32,
        }
        let format = serde_json::from_str::<FormatOnly>(&text)
            .map_err(|e| StoreError::Corrupt {
                path: p.clone(),
                detail: e.to_string(),
            })?
            .format;
        if format != STATE_FORMAT {
            return Err(StoreError::Format {
                path: p,
                found: format,
            });
        }
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| StoreError::Corrupt {
                path: p,
                detail: e.to_string(),
            })
    }

    /// Atomically replaces the state file (temp file, fsync, rename, fsync of the directory).
    pub fn save(&self, state: &State) -> Result<(), StoreError> {
        let tmp = self.dir.join("state.json.tmp");
        let err = |source| StoreError::Write {
            path: self.path.display().to_string(),
            source,
        };
        let mut text = serde_json::to_vec_pretty(state).expect("state always serializes");
        text.push(b'\n');
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(err)?;
        f.write_all(&text).map_err(err)?;
        f.sync_all().map_err(err)?;
        drop(f);
        std::fs::rename(&tmp, &self.path).map_err(err)?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(err)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::NetworkCreate;
    use crate::model::tests::Counter;

    fn temp_dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("switchyard-store-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn saves_and_loads_atomically_and_locks_the_directory() {
        let dir = temp_dir("rt");
        let store = Store::open(&dir).unwrap();
        assert!(store.load().unwrap().is_none(), "first start");
        let mut state = State::initial(&[], &mut Counter(0)).unwrap();
        state
            .create_network(
                &NetworkCreate {
                    name: "front".into(),
                    subnet: Some("10.7.0.0/24".into()),
                    ..Default::default()
                },
                &[],
                &mut Counter(100),
            )
            .unwrap();
        store.save(&state).unwrap();
        assert!(!dir.join("state.json.tmp").exists());
        assert_eq!(store.load().unwrap(), Some(state));
        match Store::open(&dir) {
            Err(StoreError::Locked { holder, .. }) => {
                assert_eq!(holder, format!(" (pid {})", std::process::id()))
            }
            other => panic!("second open must be refused, got {:?}", other.err()),
        }
        drop(store);
        // A process another test forks in this moment holds a copy of the lock's descriptor
        // until it execs (close-on-exec), so the lock may outlive `drop` by that long.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let reopened = loop {
            match Store::open(&dir) {
                Err(StoreError::Locked { .. }) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(10))
                }
                other => break other,
            }
        };
        assert!(reopened.is_ok(), "the lock goes with its holder");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A holder that is gone (here: a reaped child's pid) but whose lock is still held, as a
    /// daemon's is while the kernel closes its ports after `kill -9`: `open` waits for the lock.
    #[test]
    fn waits_for_the_lock_of_an_exiting_holder() {
        let dir = temp_dir("stale");
        std::fs::create_dir_all(&dir).unwrap();
        let lock = dir.join("daemon.lock");
        let held = File::create(&lock).unwrap();
        // SAFETY: flock on a descriptor we own.
        assert_eq!(unsafe { libc::flock(held.as_raw_fd(), libc::LOCK_EX) }, 0);
        let mut gone = std::process::Command::new("true").spawn().unwrap();
        gone.wait().unwrap();
        std::fs::write(&lock, gone.id().to_string()).unwrap();
        assert_eq!(Holder::of(&gone.id().to_string()), Holder::Exiting);
        assert_eq!(Holder::of(&std::process::id().to_string()), Holder::Alive);
        let release = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(300));
            drop(held);
        });
        let store = Store::open(&dir).expect("the lock of a dead pid is waited for, not refused");
        release.join().unwrap();
        drop(store);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn refuses_corrupt_and_future_files() {
        let dir = temp_dir("bad");
        let store = Store::open(&dir).unwrap();
        std::fs::write(store.path(), "{ not json").unwrap();
        assert!(matches!(store.load(), Err(StoreError::Corrupt { .. })));
        std::fs::write(store.path(), r#"{"format": 99}"#).unwrap();
        let e = store.load().unwrap_err().to_string();
        assert!(e.contains("format 99"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A format-1 state file (MACs as `aa:bb:cc:dd:ee:ff`, as every daemon so far wrote them) loads
    /// and is written back byte for byte: a daemon starts from an existing state.json.
    #[test]
    fn an_existing_state_file_loads_and_saves_unchanged() {
        let fixture = include_str!("testdata/state-format-1.json");
        let dir = temp_dir("fixture");
        let store = Store::open(&dir).unwrap();
        std::fs::write(store.path(), fixture).unwrap();
        let state = store.load().unwrap().expect("a state");
        let web = &state.containers["web"].endpoints[0];
        assert_eq!(web.mac.to_string(), web_mac(fixture));
        store.save(&state).unwrap();
        assert_eq!(std::fs::read_to_string(store.path()).unwrap(), fixture);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn web_mac(fixture: &str) -> &str {
        let at = fixture.find("\"mac\": \"").expect("an endpoint MAC") + "\"mac\": \"".len();
        &fixture[at..at + 17]
    }
}
