//! Thin, checked wrappers over the handful of Linux calls std does not expose
//! (setns, unshare, mount, umount2, the nsfs ioctl). Keeping every raw call here
//! keeps the `unsafe` surface small and reviewable; callers get `io::Error`s and
//! add the context (which name, which path) themselves.

use std::ffi::CString;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// `NS_GET_NSTYPE` from <linux/nsfs.h>: `_IO(0xb7, 0x3)`; not in the libc crate.
const NS_GET_NSTYPE: libc::Ioctl = 0xb703;

pub(super) fn cpath(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// open(2) with `O_CLOEXEC` always added.
pub(super) fn open(path: &Path, flags: libc::c_int, mode: libc::mode_t) -> io::Result<OwnedFd> {
    let c = cpath(path)?;
    // SAFETY: `c` is a NUL-terminated string that lives across the call; open(2)
    // only reads it. The mode is passed as the variadic `unsigned int` open expects.
    let fd =
        check(unsafe { libc::open(c.as_ptr(), flags | libc::O_CLOEXEC, mode as libc::c_uint) })?;
    // SAFETY: `fd` was just returned by a successful open(2), so it is a valid
    // descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

pub(super) fn setns(fd: BorrowedFd<'_>, nstype: libc::c_int) -> io::Result<()> {
    // SAFETY: setns(2) takes a descriptor (kept open by the borrow for the whole
    // call) and a flag; it touches no memory of ours and only changes the calling
    // thread's namespace membership.
    check(unsafe { libc::setns(fd.as_raw_fd(), nstype) }).map(drop)
}

pub(super) fn kill(pid: libc::pid_t, signal: libc::c_int) -> io::Result<()> {
    // SAFETY: kill(2) takes two integers and touches no memory of ours.
    check(unsafe { libc::kill(pid, signal) }).map(drop)
}

pub(super) fn unshare(flags: libc::c_int) -> io::Result<()> {
    // SAFETY: unshare(2) takes only flags and touches no memory of ours; it
    // affects only the calling thread (or the process for CLONE_NEWNS/FS state
    // that the thread already owns alone).
    check(unsafe { libc::unshare(flags) }).map(drop)
}

pub(super) fn sethostname(name: &str) -> io::Result<()> {
    // SAFETY: sethostname(2) reads exactly `len` bytes from the pointer, which borrows `name`
    // for the whole call; it changes only the calling thread's UTS namespace.
    check(unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) }).map(drop)
}

pub(super) fn mount(
    src: &Path,
    target: &Path,
    fstype: &str,
    flags: libc::c_ulong,
) -> io::Result<()> {
    let src = cpath(src)?;
    let target = cpath(target)?;
    let fstype = CString::new(fstype).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: all three strings are NUL-terminated and outlive the call; mount(2)
    // only reads them, and `data` is NULL, which every filesystem we use accepts.
    check(unsafe {
        libc::mount(
            src.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            flags,
            std::ptr::null(),
        )
    })
    .map(drop)
}

pub(super) fn umount2(target: &Path, flags: libc::c_int) -> io::Result<()> {
    let target = cpath(target)?;
    // SAFETY: `target` is NUL-terminated and outlives the call; umount2(2) only reads it.
    check(unsafe { libc::umount2(target.as_ptr(), flags) }).map(drop)
}

/// (st_dev, st_ino) of an open file: the identity of a namespace behind an nsfs fd.
pub(super) fn fstat_id(fd: BorrowedFd<'_>) -> io::Result<(u64, u64)> {
    let mut st = MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `st` points to writable memory of the right size for a `struct stat`,
    // and the descriptor stays open for the call thanks to the borrow.
    check(unsafe { libc::fstat(fd.as_raw_fd(), st.as_mut_ptr()) })?;
    // SAFETY: fstat succeeded, so the kernel filled in the whole struct.
    let st = unsafe { st.assume_init() };
    Ok((st.st_dev, st.st_ino))
}

/// The CLONE_NEW* type of the namespace behind an nsfs fd (ENOTTY if it is not one).
pub(super) fn ns_type(fd: BorrowedFd<'_>) -> io::Result<libc::c_int> {
    // SAFETY: NS_GET_NSTYPE takes no argument and returns the type as the result;
    // on a non-nsfs file the ioctl fails with ENOTTY and touches nothing.
    check(unsafe { libc::ioctl(fd.as_raw_fd(), NS_GET_NSTYPE) })
}

/// Whether the filesystem holding `path` is mounted read-only.
pub(super) fn is_read_only(path: &Path) -> io::Result<bool> {
    let c = cpath(path)?;
    let mut st = MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c` is NUL-terminated and outlives the call; `st` points to writable
    // memory sized for a `struct statvfs`.
    check(unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) })?;
    // SAFETY: statvfs succeeded, so the struct is fully initialised.
    let st = unsafe { st.assume_init() };
    Ok(st.f_flag & libc::ST_RDONLY != 0)
}
