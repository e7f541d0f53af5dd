//! Entering a named namespace for `switchyard container exec NAME -- CMD...`.
//!
//! Why a copy of `ip netns exec` rather than a plain `setns(net)`: programs inside
//! look at more than sockets. `ip`, `ethtool` and friends read `/sys/class/net`,
//! which only shows the namespace's interfaces if sysfs is mounted *from inside*
//! it; resolvers read `/etc/resolv.conf` and `/etc/hosts`, which `ip netns`
//! overrides per namespace from `/etc/netns/NAME/`. Doing exactly what `ip netns
//! exec` does means a command behaves the same under either tool.
//!
//! Why the remounts happen in a fresh mount namespace with slave propagation: the
//! new /sys and the /etc bind mounts must be private to the exec'd command and
//! never propagate back to the system.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::{host_mnt_ns, named_path, os, sys, validate_name, NetNs, NetnsError, Result};

/// Switches the calling thread into network namespace `name` with a private mount
/// namespace showing that namespace's /sys and `/etc/netns/NAME/*` files, exactly
/// like `ip netns exec NAME` does right before it execs. Call it right before
/// `exec` (the rest of the process keeps its namespaces; exec keeps only this
/// thread). It allocates, so it is not async-signal-safe; from
/// `CommandExt::pre_exec` it relies on the libc's fork-safe malloc (glibc's is).
///
/// Deviation from iproute2: a file in `/etc/netns/NAME/` that cannot be bind-mounted
/// (say `/etc/<file>` does not exist) is an error here, where `ip` only warns.
pub fn enter_for_exec(name: &str) -> Result<()> {
    validate_name(name)?;
    let ns = open_for_exec(name)?;
    enter(ns, name, Some(name))
}

/// Like `enter_for_exec`, for a namespace given by path (`/proc/PID/ns/net` of the daemon for
/// `--network host`); `etc` names the /etc/netns directory to show, if any.
pub fn enter_path_for_exec(path: &Path, etc: Option<&str>) -> Result<()> {
    let ns = NetNs::from_path(path)?;
    enter(ns, &path.display().to_string(), etc)
}

/// Gives the calling thread a UTS namespace of its own with host name `hostname`, right before
/// `exec` (after `enter_for_exec`): the container's host name for this command only. Containers
/// keep no UTS namespace between commands; the name lives in the daemon's state.
pub fn enter_uts_for_exec(hostname: &str) -> Result<()> {
    sys::unshare(libc::CLONE_NEWUTS)
        .map_err(|err| os("unshare(CLONE_NEWUTS) for the container's host name", err))?;
    sys::sethostname(hostname).map_err(|err| os(format!("sethostname({hostname:?})"), err))
}

fn enter(ns: NetNs, name: &str, etc: Option<&str>) -> Result<()> {
    let op = format!("entering network namespace '{name}' for exec");
    sys::setns(ns.fd(), libc::CLONE_NEWNET)
        .map_err(|err| os(format!("{op}: setns to {ns}"), err))?;
    drop(ns);

    sys::unshare(libc::CLONE_NEWNS)
        .map_err(|err| os(format!("{op}: unshare(CLONE_NEWNS)"), err))?;
    // Don't let any mount below propagate back to the parent mount namespace.
    sys::mount(
        Path::new(""),
        Path::new("/"),
        "none",
        libc::MS_SLAVE | libc::MS_REC,
    )
    .map_err(|err| os(format!("{op}: making / a recursive slave mount"), err))?;

    // A sysfs instance shows the network namespace of whoever mounts it.
    let sys_dir = Path::new("/sys");
    let mut sysfs_flags = 0;
    if sys::umount2(sys_dir, libc::MNT_DETACH).is_err() {
        // Could not unmount (perhaps nothing there): mount over it. A read-only
        // /sys cannot be shadowed by a read-write one.
        if sys::is_read_only(sys_dir).unwrap_or(false) {
            sysfs_flags = libc::MS_RDONLY;
        }
    }
    sys::mount(Path::new("sysfs"), sys_dir, "sysfs", sysfs_flags)
        .map_err(|err| os(format!("{op}: mounting sysfs on /sys"), err))?;

    match etc {
        Some(etc) => bind_etc(etc, &op),
        None => Ok(()),
    }
}

/// Opens /run/netns/NAME as seen from our mount namespace (as `ip` does), falling
/// back to the one that owns /run/netns if we are in a private mount namespace
/// that predates the name (it then does not see the mount).
fn open_for_exec(name: &str) -> Result<NetNs> {
    let path = named_path(name);
    let first = NetNs::from_path(&path);
    let missing = match &first {
        Ok(_) => return first,
        Err(NetnsError::NotNetns { .. }) => true,
        Err(e) => e.raw_os_error() == Some(libc::ENOENT),
    };
    if missing {
        if let Some((_, pid)) = host_mnt_ns()? {
            let via_host: PathBuf = format!("/proc/{pid}/root{}", path.display()).into();
            match NetNs::from_path(&via_host) {
                Ok(ns) => return Ok(ns),
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
                Err(e) => return Err(e),
            }
        }
        if matches!(first, Err(NetnsError::NotNetns { .. })) {
            return first;
        }
        return Err(NetnsError::NotFound {
            name: name.to_owned(),
            path,
        });
    }
    first
}

/// Bind-mounts every file in /etc/netns/NAME over the same name in /etc.
fn bind_etc(name: &str, op: &str) -> Result<()> {
    let dir = Path::new("/etc/netns").join(name);
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(os(format!("{op}: reading {}", dir.display()), err)),
    };
    let mut names = entries
        .map(|e| e.map(|e| e.file_name()))
        .collect::<io::Result<Vec<_>>>()
        .map_err(|err| os(format!("{op}: reading {}", dir.display()), err))?;
    names.sort();
    for file in names {
        let src = dir.join(&file);
        let dst = Path::new("/etc").join(&file);
        sys::mount(&src, &dst, "none", libc::MS_BIND).map_err(|err| {
            os(
                format!("{op}: bind-mounting {} on {}", src.display(), dst.display()),
                err,
            )
        })?;
    }
    Ok(())
}
