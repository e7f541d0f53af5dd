//! Tap device created by the switch (`IFF_TAP | IFF_NO_PI | IFF_VNET_HDR`).
//!
//! The switch holds the fd; the kernel side is a normal interface that may stay in the switch's
//! namespace (as a host port, like docker0's own address) or be moved into a container's namespace
//! while the fd stays open. `TUNSETOFFLOAD` tells the kernel we accept checksum-partial and TSO/USO
//! super-frames, which is what lets a TCP sender in that namespace hand us 64 KiB at a time. A tap has
//! no batched read, so a batch is up to `BATCH` `readv` calls until `EAGAIN`.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::claim::InterfaceClaim;
use super::{
    sys, validate_ifname, Port, PortError, PortKind, RxBatch, SendFrames, SendOnly, SendReport,
    TxRef, BATCH,
};
use crate::wire::vnet::{VnetHeader, VNET_HDR_LEN};
use crate::MacAddr;

const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const TUNSETPERSIST: libc::c_ulong = 0x4004_54cb;
const TUNSETOFFLOAD: libc::c_ulong = 0x4004_54d0;
const TUNSETVNETHDRSZ: libc::c_ulong = 0x4004_54d8;
const IFF_TAP: libc::c_short = 0x0002;
const IFF_NO_PI: libc::c_short = 0x1000;
const IFF_VNET_HDR: libc::c_short = 0x4000;
const TUN_F_CSUM: libc::c_uint = 0x01;
const TUN_F_TSO4: libc::c_uint = 0x02;
const TUN_F_TSO6: libc::c_uint = 0x04;
const TUN_F_TSO_ECN: libc::c_uint = 0x08;
const TUN_F_USO4: libc::c_uint = 0x20;
const TUN_F_USO6: libc::c_uint = 0x40;

pub struct TapPort {
    name: String,
    fd: OwnedFd,
    mac: Option<MacAddr>,
    _claim: InterfaceClaim,
}

impl TapPort {
    /// Creates (or attaches to an unused persistent) tap named `name` in the current namespace and
    /// brings it up.
    pub fn create(name: &str) -> Result<TapPort, PortError> {
        validate_ifname(name)?;
        let path = c"/dev/net/tun";
        // SAFETY: `path` is a valid C string; the result is checked.
        let raw = unsafe {
            libc::open(
                path.as_ptr(),
                libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
            )
        };
        if raw < 0 {
            return Err(PortError::os(name, "opening /dev/net/tun", sys::last_err()));
        }
        // SAFETY: `raw` is a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let mut req = sys::ifreq(name);
        req.ifr_ifru.ifru_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
        // SAFETY: TUNSETIFF reads the name and flags from `req`, a valid ifreq.
        if unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETIFF, &mut req) } < 0 {
            let err = sys::last_err();
            return Err(match err.raw_os_error() {
                Some(libc::EBUSY) => PortError::TapBusy(name.to_string()),
                Some(libc::EINVAL) => PortError::Os {
                    name: name.to_string(),
                    what: "creating the tap (an interface of another kind may hold that name)",
                    source: err,
                },
                _ => PortError::os(name, "creating the tap", err),
            });
        }
        let hdr_len: libc::c_int = VNET_HDR_LEN as libc::c_int;
        // SAFETY: TUNSETVNETHDRSZ reads an int through the pointer, which points at `hdr_len`.
        if unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETVNETHDRSZ, &hdr_len) } < 0 {
            return Err(PortError::os(
                name,
                "setting the tap's vnet header size",
                sys::last_err(),
            ));
        }
        // USO needs Linux 6.2; older kernels refuse the whole call, so retry without it.
        let base = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN;
        for offloads in [base | TUN_F_USO4 | TUN_F_USO6, base] {
            // SAFETY: TUNSETOFFLOAD takes the flags by value.
            if unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETOFFLOAD, offloads as libc::c_ulong) } == 0
            {
                break;
            }
        }
        let ifindex =
            sys::ifindex(name).ok_or_else(|| PortError::NoSuchInterface(name.to_string()))?;
        let claim = InterfaceClaim::acquire(name, ifindex)?;
        sys::set_up(name).map_err(|e| PortError::os(name, "bringing the tap up", e))?;
        let mac = sys::hw_addr(name).ok();
        Ok(TapPort {
            name: name.to_string(),
            fd,
            mac,
            _claim: claim,
        })
    }

    /// Gives the interface a chosen MAC (a host port keeps the same MAC across daemon restarts, so
    /// containers' neighbour caches stay valid).
    pub fn set_mac(&mut self, mac: MacAddr) -> Result<(), PortError> {
        sys::set_hw_addr(&self.name, mac)
            .map_err(|e| PortError::os(&self.name, "setting the tap's MAC", e))?;
        self.mac = Some(mac);
        Ok(())
    }

    /// Makes the interface outlive the fd (`TUNSETPERSIST`), so a daemon that is killed leaves its
    /// host ports, their addresses and routes in place and re-attaches to them by name on restart.
    /// A persistent tap disappears only when deleted (netlink `RTM_DELLINK`) or made non-persistent.
    pub fn set_persistent(&self, persistent: bool) -> Result<(), PortError> {
        // SAFETY: TUNSETPERSIST takes its flag by value on a tap fd we own.
        if unsafe {
            libc::ioctl(
                self.fd.as_raw_fd(),
                TUNSETPERSIST,
                persistent as libc::c_ulong,
            )
        } < 0
        {
            return Err(PortError::os(
                &self.name,
                "setting the tap persistent",
                sys::last_err(),
            ));
        }
        Ok(())
    }
}

impl Port for TapPort {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> PortKind {
        PortKind::Tap
    }

    fn vnet_hdr(&self) -> bool {
        true
    }

    fn raw_fd(&self) -> Option<RawFd> {
        Some(self.fd.as_raw_fd())
    }

    fn mac(&self) -> Option<MacAddr> {
        self.mac
    }

    fn recv_batch(&mut self, batch: &mut RxBatch) -> Result<usize, PortError> {
        let mut n = 0;
        let mut hdr = [0u8; VNET_HDR_LEN];
        while n < BATCH {
            let (slot, meta) = batch.slot_mut(n);
            let iov = [
                libc::iovec {
                    iov_base: hdr.as_mut_ptr().cast(),
                    iov_len: VNET_HDR_LEN,
                },
                libc::iovec {
                    iov_base: slot.as_mut_ptr().cast(),
                    iov_len: slot.len(),
                },
            ];
            // SAFETY: both iovecs point into live, writable buffers of the stated lengths.
            let rc = unsafe { libc::readv(self.fd.as_raw_fd(), iov.as_ptr(), 2) };
            if rc < 0 {
                let err = sys::last_err();
                return match err.raw_os_error() {
                    Some(libc::EAGAIN) | Some(libc::EINTR) => Ok(n),
                    Some(libc::EBADFD) | Some(libc::ENODEV) => {
                        Err(PortError::Gone(self.name.clone()))
                    }
                    _ => Err(PortError::Os {
                        name: self.name.clone(),
                        what: "reading the tap",
                        source: err,
                    }),
                };
            }
            let total = rc as usize;
            // A tap read returns at most one frame; a frame filling the slot exactly may have been cut.
            meta.truncated = total < VNET_HDR_LEN || total - VNET_HDR_LEN >= slot.len();
            meta.len = total.saturating_sub(VNET_HDR_LEN);
            meta.vnet = VnetHeader::parse(&hdr);
            n += 1;
        }
        Ok(n)
    }

    fn send_batch(&mut self, frames: &[TxRef<'_>]) -> Result<SendReport, PortError> {
        write_frames(&self.fd, &self.name, frames)
    }

    fn sender(&self) -> Option<Box<dyn Port>> {
        Some(Box::new(SendOnly {
            name: self.name.clone(),
            kind: PortKind::Tap,
            mac: self.mac,
            send: self.fd.try_clone().ok()?,
        }))
    }
}

impl SendFrames for OwnedFd {
    fn send(&mut self, name: &str, frames: &[TxRef<'_>]) -> Result<SendReport, PortError> {
        write_frames(self, name, frames)
    }
}

/// Writes each frame with its vnet header (one `writev` per frame: a tap takes one frame a call).
fn write_frames(fd: &OwnedFd, name: &str, frames: &[TxRef<'_>]) -> Result<SendReport, PortError> {
    let mut report = SendReport::default();
    for f in frames {
        let hdr = f.vnet.to_bytes();
        let iov = [
            libc::iovec {
                iov_base: hdr.as_ptr() as *mut libc::c_void,
                iov_len: VNET_HDR_LEN,
            },
            libc::iovec {
                iov_base: f.data.as_ptr() as *mut libc::c_void,
                iov_len: f.data.len(),
            },
        ];
        // SAFETY: both iovecs point into live buffers of the stated lengths; the kernel only reads.
        let rc = unsafe { libc::writev(fd.as_raw_fd(), iov.as_ptr(), 2) };
        if rc >= 0 {
            report.sent += 1;
            report.sent_bytes += f.data.len() as u64;
            continue;
        }
        let err: io::Error = sys::last_err();
        match err.raw_os_error() {
            Some(libc::EAGAIN) | Some(libc::ENOBUFS) => report.busy += 1,
            // The tap's link is down (e.g. just moved into a namespace and not yet set up).
            Some(libc::EIO) => report.link_down += 1,
            Some(libc::EMSGSIZE) => report.too_big += 1,
            Some(libc::EBADFD) | Some(libc::ENODEV) => {
                return Err(PortError::Gone(name.to_string()))
            }
            _ => report.failed += 1,
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `f` on a thread inside a fresh network namespace, so nothing touches the host's links.
    fn in_fresh_netns(f: impl FnOnce() + Send + 'static) {
        std::thread::spawn(move || {
            // SAFETY: unshare only changes this thread's network namespace.
            assert_eq!(
                unsafe { libc::unshare(libc::CLONE_NEWNET) },
                0,
                "needs root"
            );
            f();
        })
        .join()
        .unwrap();
    }

    #[test]
    fn persistent_tap_outlives_its_fd_and_is_reattached_by_name() {
        in_fresh_netns(|| {
            let mut tap = TapPort::create("sytap0").unwrap();
            let chosen = MacAddr([0x02, 0, 0, 0, 0x12, 0x34]);
            tap.set_mac(chosen).unwrap();
            assert_eq!(sys::hw_addr("sytap0").ok(), Some(chosen));
            let mac = Some(chosen);
            tap.set_persistent(true).unwrap();
            drop(tap);
            assert!(sys::ifindex("sytap0").is_some(), "persistent tap must stay");
            let again = TapPort::create("sytap0").unwrap();
            assert_eq!(again.mac(), mac, "re-attached to the same interface");
            again.set_persistent(false).unwrap();
            drop(again);
            assert!(
                sys::ifindex("sytap0").is_none(),
                "non-persistent tap goes with its fd"
            );
        });
    }
}
