//! Network namespaces for switchyard's containers and test hosts.
//!
//! Why named namespaces follow `ip netns` exactly (a bind mount of an nsfs file on
//! `/run/netns/NAME`, `/run/netns` a shared mount): operators debug switchyard with
//! `ip netns exec NAME ...`, and scripts may create namespaces switchyard later
//! attaches to. Anything else would be a second, incompatible registry.
//!
//! Why nothing here ever calls `setns()` on the caller's thread: namespaces are per
//! thread, and a thread left in another namespace silently carries it into whatever
//! runs on it next. Every excursion runs on a scoped helper thread that ends with
//! the excursion, so the namespace a thread entered can never leak.
//!
//! Why all `/run/netns` work happens in PID 1's mount namespace: the daemon may be
//! started as `ip netns exec HOST switchyard daemon`, which gives it a private
//! mount namespace whose mounts are invisible to the rest of the system and die with
//! it. A namespace created there would vanish with the daemon. So helper threads
//! first move into PID 1's mount namespace (after `unshare(CLONE_FS)`, which setns
//! requires) whenever it differs from ours. Where a sandbox denies access to
//! `/proc/1/ns/mnt` although we are root, we use the outermost ancestor process
//! whose mount namespace we may open instead (see `host_mnt_ns`).

use std::fmt;
use std::fs;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

pub mod exec;
pub mod garp;
pub mod link;
mod sys;
#[cfg(test)]
mod tests;

pub use exec::{enter_for_exec, enter_path_for_exec, enter_uts_for_exec};
pub use garp::send_gratuitous_arp;
pub use link::{LinkInfo, Netlink};

/// Where `ip netns` (and we) keep the bind mounts that name network namespaces.
pub const NETNS_RUN_DIR: &str = "/run/netns";

/// Longest namespace name we accept (iproute2 only requires < NAME_MAX; shorter
/// names keep CLI output and derived interface names manageable).
const MAX_NAME_LEN: usize = 64;

/// The calling thread's own network namespace file.
const THREAD_NETNS: &str = "/proc/thread-self/ns/net";

/// Errors from namespace, mount and netlink operations.
///
/// Each message names the operation, the inputs it was given and the OS error, on
/// one line. The OS error is part of the message rather than a `source()` so that
/// `anyhow`'s `{:#}` does not print it twice; use [`NetnsError::raw_os_error`] to
/// branch on it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetnsError {
    /// A namespace name that is not safe to use as a file name under /run/netns.
    #[error("invalid network namespace name {name:?}: {reason}")]
    InvalidName { name: String, reason: String },
    /// A bad argument other than a namespace name (interface name, prefix length...).
    #[error("{op}: {reason}")]
    InvalidArgument { op: String, reason: String },
    /// `create_named` on a name that is already taken.
    #[error("creating network namespace '{name}': {} already exists", path.display())]
    AlreadyExists { name: String, path: PathBuf },
    /// A named namespace that must exist does not.
    #[error("network namespace '{name}' not found: {} does not exist", path.display())]
    NotFound { name: String, path: PathBuf },
    /// A file that was expected to be a network namespace is something else.
    #[error("{} is not a network namespace: {reason}", path.display())]
    NotNetns { path: PathBuf, reason: String },
    /// A system call failed.
    #[error("{op}: {err}")]
    Os { op: String, err: io::Error },
    /// The kernel rejected a netlink request; `detail` is its extended-ack text.
    #[error("{op}: {err}{}", detail.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Netlink {
        op: String,
        err: io::Error,
        detail: Option<String>,
    },
    /// A netlink operation referred to an interface that does not exist.
    #[error("{op}: no interface named '{name}' in this namespace")]
    NoSuchLink { op: String, name: String },
    /// Namespaces this process would name could be seen by no one else (and why, and the fix).
    #[error("{0}")]
    Hidden(String),
    /// The kernel sent something netlink-packet-route could not parse.
    #[error("{op}: malformed netlink reply: {detail}")]
    Decode { op: String, detail: String },
}

impl NetnsError {
    /// The errno behind this error, if it came from the OS or the kernel.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            NetnsError::Os { err, .. } | NetnsError::Netlink { err, .. } => err.raw_os_error(),
            _ => None,
        }
    }
}

pub(crate) fn os(op: impl Into<String>, err: io::Error) -> NetnsError {
    NetnsError::Os { op: op.into(), err }
}

pub type Result<T> = std::result::Result<T, NetnsError>;

/// An open handle on a network namespace. The namespace stays alive as long as the
/// handle does, even if its name is deleted.
pub struct NetNs {
    fd: OwnedFd,
    /// The file it was opened from, for messages.
    origin: PathBuf,
    /// (st_dev, st_ino) of the nsfs inode: the namespace's identity.
    id: (u64, u64),
}

impl NetNs {
    /// The calling thread's network namespace.
    pub fn current() -> Result<NetNs> {
        NetNs::from_path(Path::new(THREAD_NETNS))
    }

    /// Opens a network namespace file (`/proc/PID/ns/net`, `/run/netns/NAME`, ...).
    pub fn from_path(p: &Path) -> Result<NetNs> {
        let fd = sys::open(p, libc::O_RDONLY, 0).map_err(|err| {
            os(
                format!("opening network namespace file {}", p.display()),
                err,
            )
        })?;
        NetNs::from_fd(fd, p)
    }

    fn from_fd(fd: OwnedFd, origin: &Path) -> Result<NetNs> {
        let not_netns = |reason: String| NetnsError::NotNetns {
            path: origin.to_owned(),
            reason,
        };
        match sys::ns_type(fd.as_fd()) {
            Ok(libc::CLONE_NEWNET) => {}
            Ok(other) => {
                return Err(not_netns(format!(
                    "it is a namespace of another type (CLONE_NEW* {other:#x})"
                )))
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOTTY) => {
                return Err(not_netns(
                    "not a namespace file (nothing mounted on it?)".into(),
                ))
            }
            Err(err) => {
                return Err(os(
                    format!("checking namespace type of {}", origin.display()),
                    err,
                ))
            }
        }
        let id = sys::fstat_id(fd.as_fd())
            .map_err(|err| os(format!("stat of {}", origin.display()), err))?;
        Ok(NetNs {
            fd,
            origin: origin.to_owned(),
            id,
        })
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Whether two handles refer to the same namespace.
    pub fn same_as(&self, other: &NetNs) -> bool {
        self.id == other.id
    }

    /// The namespace's inode number: its identity while it lives (what `ip netns identify` and
    /// `readlink /proc/PID/ns/net` show).
    pub fn inode(&self) -> u64 {
        self.id.1
    }

    /// Ends every process living in this namespace with SIGKILL, as `docker rm -f` ends a
    /// container's: what `container exec` started in a container goes with it. Processes are
    /// found by their `/proc/PID/ns/net` (the main thread's; this process itself is never one);
    /// rounds repeat while some were found, for children forked meanwhile. Returns how many
    /// were signalled.
    pub fn kill_processes(&self) -> usize {
        let me = std::process::id();
        let mut killed = 0;
        for _ in 0..16 {
            let Ok(dir) = fs::read_dir("/proc") else {
                break;
            };
            let mut found = 0;
            for entry in dir.flatten() {
                let Some(pid) = entry
                    .file_name()
                    .to_str()
                    .and_then(|s| s.parse::<u32>().ok())
                else {
                    continue;
                };
                // A zombie has left its namespaces: its link no longer resolves.
                let inside = fs::metadata(format!("/proc/{pid}/ns/net"))
                    .is_ok_and(|m| std::os::unix::fs::MetadataExt::ino(&m) == self.inode());
                if pid != me && inside && sys::kill(pid as libc::pid_t, libc::SIGKILL).is_ok() {
                    found += 1;
                }
            }
            if found == 0 {
                break;
            }
            killed += found;
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        killed
    }

    /// Runs `f` on a scoped helper thread that has entered this namespace; the
    /// caller's thread never changes namespace. A panic in `f` is propagated.
    pub fn run_in<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T> {
        on_helper_thread(|| {
            sys::setns(self.fd(), libc::CLONE_NEWNET)
                .map_err(|err| os(format!("entering network namespace {self}"), err))?;
            Ok(f())
        })
    }
}

impl AsFd for NetNs {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd()
    }
}

impl fmt::Display for NetNs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "net:[{}] ({})", self.id.1, self.origin.display())
    }
}

impl fmt::Debug for NetNs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NetNs")
            .field("fd", &self.fd)
            .field("origin", &self.origin)
            .field("inode", &self.id.1)
            .finish()
    }
}

/// Runs `f` on a fresh scoped thread, so that whatever namespace it enters dies
/// with it. Panics are re-raised on the caller.
fn on_helper_thread<T: Send>(f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    std::thread::scope(|s| {
        let handle = std::thread::Builder::new()
            .name("netns-helper".into())
            .spawn_scoped(s, f)
            .map_err(|err| os("spawning a namespace helper thread", err))?;
        handle
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// The mount namespace that owns `/run/netns`, as (fd, pid of a process that was in it when it
/// was found), or `None` if that is the calling thread's own mount namespace. Found once per
/// process and held open, so it stays reachable when that process (say, the shell that ran `ip
/// netns exec`) exits.
fn host_mnt_ns() -> Result<Option<(BorrowedFd<'static>, u32)>> {
    // Per mount namespace of the calling thread (a test thread may have a private one); each
    // answer is kept for the life of the process, and there are only ever a few.
    type Found = Option<(OwnedFd, u32)>;
    static FOUND: Mutex<Vec<((u64, u64), &'static Found)>> = Mutex::new(Vec::new());
    let own = sys::open(Path::new("/proc/thread-self/ns/mnt"), libc::O_RDONLY, 0)
        .and_then(|fd| sys::fstat_id(fd.as_fd()))
        .map_err(|err| {
            os(
                "opening our own mount namespace /proc/thread-self/ns/mnt",
                err,
            )
        })?;
    let mut found = FOUND
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let entry = match found.iter().find(|(id, _)| *id == own) {
        Some((_, entry)) => *entry,
        None => {
            let entry: &'static Found = Box::leak(Box::new(find_host_mnt_ns(own)?));
            found.push((own, entry));
            entry
        }
    };
    Ok(entry.as_ref().map(|(fd, pid)| (fd.as_fd(), *pid)))
}

/// Checks that named namespaces this process creates will be visible to the rest of the system
/// (and remembers where to create them): an error, with the fix in it, when the process runs in
/// a private mount namespace whose `/run/netns` is a copy no one else sees. Call it at start-up,
/// while the process that started us may still be there.
pub fn check_names_visible() -> Result<()> {
    host_mnt_ns().map(drop)
}

/// That is PID 1's. If `/proc/1/ns/mnt` cannot be opened even as root (some sandboxes deny
/// ptrace-level access to their init), the outermost ancestor of ours whose mount namespace we
/// may open: the closest thing to "the system's" mount namespace that we can see. If that is our
/// own (or we have no ancestor left: the shell that ran `ip netns exec ... &` exited) while our
/// `/run/netns` is a slave of another mount namespace's (what `ip netns exec` makes), it is the
/// namespace of any process whose `/run/netns` is in that master peer group; with none left,
/// names we mount would be seen by no one, and that is an error.
fn find_host_mnt_ns(own: (u64, u64)) -> Result<Option<(OwnedFd, u32)>> {
    let candidate = match sys::open(Path::new("/proc/1/ns/mnt"), libc::O_RDONLY, 0) {
        Ok(fd) => Some((fd, 1)),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EACCES | libc::EPERM)) => {
            outermost_accessible_ancestor_mnt_ns()
        }
        Err(err) => return Err(os("opening PID 1's mount namespace /proc/1/ns/mnt", err)),
    };
    if let Some((fd, pid)) = candidate {
        let id = sys::fstat_id(fd.as_fd())
            .map_err(|err| os(format!("stat of /proc/{pid}/ns/mnt"), err))?;
        if id != own {
            return Ok(Some((fd, pid)));
        }
    }
    let mountinfo = fs::read_to_string("/proc/thread-self/mountinfo")
        .map_err(|err| os("reading /proc/thread-self/mountinfo", err))?;
    let master = run_dir_propagation(&mountinfo).and_then(|p| p.master);
    if let Some(found) = master.and_then(|group| process_sharing_run_dir(group, own)) {
        return Ok(Some(found));
    }
    // A slave whose master is gone became private; `ip netns exec NAME` still left its mark
    // (sysfs mounted from NAME), and the namespace where NAME names our network namespace is
    // the one to use.
    let name = ip_netns_exec_name(&mountinfo);
    if let Some(found) = name
        .as_deref()
        .and_then(|n| process_naming_our_netns(n, own))
    {
        return Ok(Some(found));
    }
    if master.is_none() && name.is_none() {
        return Ok(None);
    }
    Err(NetnsError::Hidden(format!(
        "{NETNS_RUN_DIR} here is a private copy (a mount namespace like `ip netns exec` makes) \
         and no process is left in the mount namespace it copies, so network namespaces \
         created here would be invisible to everyone else; start the daemon with \
         `nsenter --net=/run/netns/NAME switchyard daemon` (which keeps the host's mount \
         namespace), or from a shell that outlives its start-up"
    )))
}

/// The network namespace name `ip netns exec NAME` mounted sysfs from, if this `mountinfo`
/// text shows one (`ip` mounts sysfs on /sys with the name as its source).
fn ip_netns_exec_name(mountinfo: &str) -> Option<String> {
    mountinfo.lines().rev().find_map(|line| {
        let (mount, fs) = line.split_once(" - ")?;
        let mut fs = fs.split(' ');
        let (fstype, source) = (fs.next()?, fs.next()?);
        (mount.split(' ').nth(4) == Some("/sys") && fstype == "sysfs" && source != "sysfs")
            .then(|| source.to_string())
    })
}

/// A process in a mount namespace other than `own` in which `/run/netns/NAME` names the
/// calling thread's network namespace, with its mount namespace opened.
fn process_naming_our_netns(name: &str, own: (u64, u64)) -> Option<(OwnedFd, u32)> {
    let ours = NetNs::current().ok()?.id;
    process_in_other_mnt_ns(own, |pid| {
        let named = PathBuf::from(format!("/proc/{pid}/root{NETNS_RUN_DIR}/{name}"));
        NetNs::from_path(&named).map(|ns| ns.id).ok() == Some(ours)
    })
}

/// The first process (other than us) for which `matches` holds and whose mount namespace is
/// not `own`, with its mount namespace opened.
fn process_in_other_mnt_ns(
    own: (u64, u64),
    matches: impl Fn(u32) -> bool,
) -> Option<(OwnedFd, u32)> {
    let me = std::process::id();
    for entry in fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me || !matches(pid) {
            continue;
        }
        let path = PathBuf::from(format!("/proc/{pid}/ns/mnt"));
        let Ok(fd) = sys::open(&path, libc::O_RDONLY, 0) else {
            continue;
        };
        if sys::fstat_id(fd.as_fd()).is_ok_and(|id| id != own) {
            return Some((fd, pid));
        }
    }
    None
}

/// Propagation of the `/run/netns` mount in a `mountinfo` text (the last mount on it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Propagation {
    shared: Option<u64>,
    master: Option<u64>,
}

fn run_dir_propagation(mountinfo: &str) -> Option<Propagation> {
    mountinfo.lines().rev().find_map(|line| {
        let fields: Vec<&str> = line.split(' ').collect();
        if fields.get(4) != Some(&NETNS_RUN_DIR) {
            return None;
        }
        let tags = fields.iter().skip(6).take_while(|f| **f != "-");
        let mut p = Propagation {
            shared: None,
            master: None,
        };
        for tag in tags {
            if let Some(n) = tag.strip_prefix("shared:") {
                p.shared = n.parse().ok();
            } else if let Some(n) = tag.strip_prefix("master:") {
                p.master = n.parse().ok();
            }
        }
        Some(p)
    })
}

/// A process (other than us) in a mount namespace other than `own` whose `/run/netns` is in
/// peer group `group`, with its mount namespace opened.
fn process_sharing_run_dir(group: u64, own: (u64, u64)) -> Option<(OwnedFd, u32)> {
    process_in_other_mnt_ns(own, |pid| {
        fs::read_to_string(format!("/proc/{pid}/mountinfo"))
            .ok()
            .and_then(|text| run_dir_propagation(&text))
            .and_then(|p| p.shared)
            == Some(group)
    })
}

fn outermost_accessible_ancestor_mnt_ns() -> Option<(OwnedFd, u32)> {
    let mut best = None;
    let mut pid = parent_pid(std::process::id())?;
    // Bounded walk: pid chains are short, and a cycle (pid reuse races) must not hang us.
    for _ in 0..1024 {
        if pid <= 1 {
            break;
        }
        if let Ok(fd) = sys::open(
            &PathBuf::from(format!("/proc/{pid}/ns/mnt")),
            libc::O_RDONLY,
            0,
        ) {
            best = Some((fd, pid));
        }
        pid = parent_pid(pid)?;
    }
    best
}

fn parent_pid(pid: u32) -> Option<u32> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("PPid:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Runs `f` on a helper thread placed in the mount namespace owning `/run/netns`.
fn in_host_mnt_ns<T: Send>(op: &str, f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    let target = host_mnt_ns().map_err(|e| prefix(op, e))?;
    on_helper_thread(move || {
        if let Some((fd, pid)) = target {
            sys::unshare(libc::CLONE_FS)
                .map_err(|err| os(format!("{op}: unshare(CLONE_FS) on a helper thread"), err))?;
            sys::setns(fd.as_fd(), libc::CLONE_NEWNS).map_err(|err| {
                os(
                    format!("{op}: entering the mount namespace of PID {pid}"),
                    err,
                )
            })?;
        }
        f()
    })
}

fn prefix(op: &str, e: NetnsError) -> NetnsError {
    match e {
        NetnsError::Os { op: inner, err } => os(format!("{op}: {inner}"), err),
        other => other,
    }
}

fn named_path(name: &str) -> PathBuf {
    Path::new(NETNS_RUN_DIR).join(name)
}

/// Checks that `name` is usable as a namespace name: 1 to 64 characters from
/// `[A-Za-z0-9_.-]`, not `.` or `..`, not starting with `-` (ip(8) would take it
/// for an option).
pub fn validate_name(name: &str) -> Result<()> {
    let bad = |reason: String| {
        Err(NetnsError::InvalidName {
            name: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("the name is empty".into());
    }
    if name.len() > MAX_NAME_LEN {
        return bad(format!("longer than {MAX_NAME_LEN} characters"));
    }
    if name == "." || name == ".." {
        return bad("'.' and '..' are not names".into());
    }
    if name.starts_with('-') {
        return bad("must not start with '-'".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return bad(format!(
            "character {c:?} is not allowed (only A-Z a-z 0-9 _ . -)"
        ));
    }
    Ok(())
}

/// Serialises the "make /run/netns a shared mount" dance within this process, so
/// two threads cannot both find it unmounted and stack two bind mounts.
static RUN_DIR_LOCK: Mutex<()> = Mutex::new(());

/// `mkdir -p /run/netns` and make it a shared mount point, as iproute2 does, so
/// that namespaces mounted there propagate into mount namespaces created later
/// (e.g. by `ip netns exec`) instead of being frozen out of them.
fn ensure_run_dir(op: &str) -> Result<()> {
    let _guard = RUN_DIR_LOCK
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    ensure_shared_dir(Path::new(NETNS_RUN_DIR), op)
}

fn ensure_shared_dir(dir: &Path, op: &str) -> Result<()> {
    match fs::DirBuilder::new().mode(0o755).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(err) => return Err(os(format!("{op}: creating {}", dir.display()), err)),
    }
    let mut made_mount_point = false;
    loop {
        match sys::mount(Path::new(""), dir, "none", libc::MS_SHARED | libc::MS_REC) {
            Ok(()) => return Ok(()),
            // EINVAL: not a mount point yet. Bind it onto itself, then retry once.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) && !made_mount_point => {
                sys::mount(dir, dir, "none", libc::MS_BIND | libc::MS_REC).map_err(|err| {
                    os(
                        format!("{op}: bind-mounting {} onto itself", dir.display()),
                        err,
                    )
                })?;
                made_mount_point = true;
            }
            Err(err) => {
                return Err(os(
                    format!("{op}: making {} a shared mount", dir.display()),
                    err,
                ))
            }
        }
    }
}

/// The empty file at `path` that a namespace named `name` is mounted on; taken names are refused.
fn create_name_file(name: &str, path: &Path, op: &str) -> Result<()> {
    match sys::open(path, libc::O_RDONLY | libc::O_CREAT | libc::O_EXCL, 0) {
        Ok(fd) => {
            drop(fd);
            Ok(())
        }
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Err(NetnsError::AlreadyExists {
            name: name.to_owned(),
            path: path.to_owned(),
        }),
        Err(err) => Err(os(format!("{op}: creating {}", path.display()), err)),
    }
}

/// Creates a new network namespace named `name`, like `ip netns add NAME`.
pub fn create_named(name: &str) -> Result<NetNs> {
    validate_name(name)?;
    let path = named_path(name);
    let op = format!("creating network namespace '{name}'");
    in_host_mnt_ns(&op, || {
        ensure_run_dir(&op)?;
        create_name_file(name, &path, &op)?;
        // This helper thread moves into the new namespace and ends right after: the
        // namespace lives on only through the bind mount (and the handle we return).
        let made = sys::unshare(libc::CLONE_NEWNET)
            .map_err(|err| os(format!("{op}: unshare(CLONE_NEWNET)"), err))
            .and_then(|()| {
                sys::mount(Path::new(THREAD_NETNS), &path, "none", libc::MS_BIND).map_err(|err| {
                    os(
                        format!("{op}: bind-mounting {THREAD_NETNS} on {}", path.display()),
                        err,
                    )
                })
            })
            .and_then(|()| NetNs::from_path(&path));
        if made.is_err() {
            let _ = sys::umount2(&path, libc::MNT_DETACH);
            let _ = fs::remove_file(&path);
        }
        made
    })
}

/// Opens the namespace named `name`; `None` if `/run/netns/NAME` does not exist.
pub fn open_named(name: &str) -> Result<Option<NetNs>> {
    validate_name(name)?;
    let path = named_path(name);
    let op = format!("opening network namespace '{name}'");
    in_host_mnt_ns(&op, || match sys::open(&path, libc::O_RDONLY, 0) {
        Ok(fd) => NetNs::from_fd(fd, &path).map(Some),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(err) => Err(os(format!("{op}: opening {}", path.display()), err)),
    })
}

/// Opens the namespace named `name`, or creates it: for a name this daemon owns (a container's).
/// A name file with nothing mounted on it names no namespace: it is what a process killed inside
/// [`create_named`] (between creating the file and mounting the namespace on it) or
/// [`delete_named`] (between unmounting and removing it) leaves behind, so it is removed and the
/// namespace made anew. Anything else that is not a network namespace is an error, untouched.
pub fn open_or_create_named(name: &str) -> Result<NetNs> {
    match open_named(name) {
        Ok(Some(ns)) => Ok(ns),
        Ok(None) => create_named(name),
        Err(e @ NetnsError::NotNetns { .. }) => {
            let path = named_path(name);
            let op = format!("checking network namespace file {}", path.display());
            let unmounted = in_host_mnt_ns(&op, || {
                let fd = sys::open(&path, libc::O_RDONLY, 0).map_err(|err| os(op.clone(), err))?;
                Ok(
                    matches!(sys::ns_type(fd.as_fd()), Err(e) if e.raw_os_error() == Some(libc::ENOTTY)),
                )
            })?;
            if !unmounted {
                return Err(e);
            }
            delete_named(name)?;
            create_named(name)
        }
        Err(e) => Err(e),
    }
}

/// Removes the name `name`, like `ip netns delete NAME`. The namespace itself
/// dies once nothing else (process, open handle, other mount) holds it. Ok if absent.
pub fn delete_named(name: &str) -> Result<()> {
    validate_name(name)?;
    let path = named_path(name);
    let op = format!("deleting network namespace '{name}'");
    in_host_mnt_ns(&op, || {
        // Loop in case something mounted it twice; EINVAL = no (more) mount there.
        for _ in 0..16 {
            match sys::umount2(&path, libc::MNT_DETACH) {
                Ok(()) => continue,
                Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOENT)) => break,
                Err(err) => return Err(os(format!("{op}: unmounting {}", path.display()), err)),
            }
        }
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(err) => Err(os(format!("{op}: removing {}", path.display()), err)),
        }
    })
}

/// Gives the namespace named `old` the name `new` instead (a bind mount of the one on the
/// other, then `old` removed), so whatever uses it goes on under the new name.
pub fn rename_named(old: &str, new: &str) -> Result<()> {
    validate_name(old)?;
    validate_name(new)?;
    let (from, to) = (named_path(old), named_path(new));
    let op = format!("renaming network namespace '{old}' to '{new}'");
    in_host_mnt_ns(&op, || {
        create_name_file(new, &to, &op)?;
        sys::mount(&from, &to, "none", libc::MS_BIND).map_err(|err| {
            let _ = fs::remove_file(&to);
            os(format!("{op}: bind-mounting {}", from.display()), err)
        })
    })?;
    delete_named(old)
}

/// Whether `/run/netns/NAME` exists (as `ip netns list` would show it). False for
/// invalid names and when the check itself fails.
/// The names in /run/netns (as `ip netns list`), read once where /run/netns really lives.
pub fn list_named() -> Result<std::collections::HashSet<String>> {
    in_host_mnt_ns("listing network namespaces", || {
        match fs::read_dir(NETNS_RUN_DIR) {
            Ok(dir) => Ok(dir
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()),
            // No directory: no named namespace at all.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Default::default()),
            Err(e) => Err(os(format!("reading {NETNS_RUN_DIR}"), e)),
        }
    })
}

pub fn exists_named(name: &str) -> bool {
    if validate_name(name).is_err() {
        return false;
    }
    let path = named_path(name);
    in_host_mnt_ns("checking for a network namespace", || {
        Ok(fs::symlink_metadata(&path).is_ok())
    })
    .unwrap_or(false)
}
