//! AF_PACKET port on an existing interface (typically the host end of a veth pair).
//!
//! Batched with `recvmmsg`/`sendmmsg` (one syscall per batch, not per frame: see
//! shared/notes/measurements.md; TPACKET_V3 rings add milliseconds of latency at low load, and V2 rings
//! would need 64 KiB slots to carry GSO frames). Socket options, each for a reason:
//! - `PACKET_VNET_HDR`: frames arrive with their `virtio_net_hdr`, so the kernel hands us
//!   checksum-partial and GSO super-frames as they are instead of us seeing broken checksums. With the
//!   kernel's default veth offloads, TCP through the switch works without ethtool, at super-frame rate.
//! - `PACKET_IGNORE_OUTGOING`: we do not see the frames we (or anyone) send out of this interface.
//! - `PACKET_QDISC_BYPASS`: our transmissions skip the qdisc, as a bridge's forwarded frames do.
//! - promiscuous membership: a switch port must see frames for every MAC, not just the interface's.
//! - the socket is created with protocol 0 and bound with ETH_P_ALL, so it never queues frames from
//!   other interfaces between `socket` and `bind`.

use std::mem;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::claim::InterfaceClaim;
use super::{sys, validate_ifname, Port, PortError, PortKind, RxBatch, SendReport, TxRef, BATCH};
use crate::wire::vnet::{VnetHeader, VNET_HDR_LEN};
use crate::MacAddr;

const PACKET_QDISC_BYPASS: libc::c_int = 20;
const PACKET_VNET_HDR: libc::c_int = 15;
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;
/// Socket buffers sized for a few batches of 64 KiB super-frames, so a burst does not find the
/// socket full.
const SOCKET_BUFFER: libc::c_int = 8 << 20;

pub struct AfPacketPort {
    name: String,
    ifindex: u32,
    fd: OwnedFd,
    mac: Option<MacAddr>,
    _claim: InterfaceClaim,
    // Preallocated syscall arguments; the pointers inside are refreshed on every call because the
    // buffers they point to belong to the caller.
    rx_hdrs: Box<[[u8; VNET_HDR_LEN]; BATCH]>,
    rx_iov: Box<[[libc::iovec; 2]; BATCH]>,
    rx_msgs: Box<[libc::mmsghdr; BATCH]>,
    tx_hdrs: Box<[[u8; VNET_HDR_LEN]; BATCH]>,
    tx_iov: Box<[[libc::iovec; 2]; BATCH]>,
    tx_msgs: Box<[libc::mmsghdr; BATCH]>,
}

// SAFETY: the raw pointers inside the preallocated iovec/mmsghdr arrays are only meaningful during a
// single recv/send call made by the owning thread; between calls they are stale and never read.
unsafe impl Send for AfPacketPort {}

fn zeroed_iov() -> Box<[[libc::iovec; 2]; BATCH]> {
    let empty = libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    };
    Box::new([[empty; 2]; BATCH])
}

fn zeroed_msgs() -> Box<[libc::mmsghdr; BATCH]> {
    // SAFETY: mmsghdr is plain old data; all-zero (null pointers, zero lengths) is valid.
    Box::new(unsafe { mem::zeroed() })
}

impl AfPacketPort {
    /// Attaches to the existing interface `name`: claims it, brings it up, opens the socket.
    pub fn open(name: &str) -> Result<AfPacketPort, PortError> {
        validate_ifname(name)?;
        let ifindex =
            sys::ifindex(name).ok_or_else(|| PortError::NoSuchInterface(name.to_string()))?;
        // SAFETY: plain socket(2); checked below.
        let raw = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                0,
            )
        };
        if raw < 0 {
            return Err(PortError::os(
                name,
                "opening an AF_PACKET socket",
                sys::last_err(),
            ));
        }
        // SAFETY: `raw` is a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let claim = InterfaceClaim::acquire(name, ifindex)?;
        let f = fd.as_raw_fd();
        let opt = |o, what| {
            sys::setsockopt_int(f, libc::SOL_PACKET, o, 1).map_err(|e| PortError::os(name, what, e))
        };
        opt(PACKET_VNET_HDR, "enabling PACKET_VNET_HDR")?;
        opt(PACKET_IGNORE_OUTGOING, "enabling PACKET_IGNORE_OUTGOING")?;
        opt(PACKET_QDISC_BYPASS, "enabling PACKET_QDISC_BYPASS")?;
        sys::set_buffer(f, libc::SO_RCVBUFFORCE, libc::SO_RCVBUF, SOCKET_BUFFER);
        sys::set_buffer(f, libc::SO_SNDBUFFORCE, libc::SO_SNDBUF, SOCKET_BUFFER);

        // SAFETY: packet_mreq is plain old data.
        let mut mreq: libc::packet_mreq = unsafe { mem::zeroed() };
        mreq.mr_ifindex = ifindex as libc::c_int;
        mreq.mr_type = libc::PACKET_MR_PROMISC as libc::c_ushort;
        // SAFETY: `mreq` is a valid packet_mreq and its size is passed.
        let rc = unsafe {
            libc::setsockopt(
                f,
                libc::SOL_PACKET,
                libc::PACKET_ADD_MEMBERSHIP,
                &mreq as *const _ as *const libc::c_void,
                mem::size_of::<libc::packet_mreq>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(PortError::os(
                name,
                "enabling promiscuous mode",
                sys::last_err(),
            ));
        }

        // SAFETY: sockaddr_ll is plain old data.
        let mut sll: libc::sockaddr_ll = unsafe { mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as libc::c_ushort;
        sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        sll.sll_ifindex = ifindex as libc::c_int;
        // SAFETY: `sll` is a valid sockaddr_ll and its size is passed.
        let rc = unsafe {
            libc::bind(
                f,
                &sll as *const _ as *const libc::sockaddr,
                mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(PortError::os(
                name,
                "binding the AF_PACKET socket",
                sys::last_err(),
            ));
        }
        sys::set_up(name).map_err(|e| PortError::os(name, "bringing the interface up", e))?;
        let mac = sys::hw_addr(name).ok();

        Ok(AfPacketPort {
            name: name.to_string(),
            ifindex,
            fd,
            mac,
            _claim: claim,
            rx_hdrs: Box::new([[0; VNET_HDR_LEN]; BATCH]),
            rx_iov: zeroed_iov(),
            rx_msgs: zeroed_msgs(),
            tx_hdrs: Box::new([[0; VNET_HDR_LEN]; BATCH]),
            tx_iov: zeroed_iov(),
            tx_msgs: zeroed_msgs(),
        })
    }

    /// ENETDOWN is reported both when the link goes down (it may come back) and when the interface is
    /// unregistered; only the latter removes the port.
    fn still_exists(&self) -> bool {
        sys::ifindex(&self.name) == Some(self.ifindex)
    }

    fn classify_recv_error(&self, err: std::io::Error) -> Result<usize, PortError> {
        match err.raw_os_error() {
            Some(libc::EAGAIN) | Some(libc::EINTR) => Ok(0),
            Some(libc::ENETDOWN) if self.still_exists() => Ok(0),
            Some(libc::ENETDOWN) | Some(libc::ENXIO) | Some(libc::ENODEV) => {
                Err(PortError::Gone(self.name.clone()))
            }
            _ => Err(PortError::Os {
                name: self.name.clone(),
                what: "receiving",
                source: err,
            }),
        }
    }
}

impl Port for AfPacketPort {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> PortKind {
        PortKind::AfPacket
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

    fn take_overruns(&mut self) -> u64 {
        // SAFETY: tpacket_stats is plain data; PACKET_STATISTICS fills it and resets the kernel's
        // counters, so each drop is reported once.
        let mut stats: libc::tpacket_stats = unsafe { mem::zeroed() };
        let mut len = mem::size_of::<libc::tpacket_stats>() as libc::socklen_t;
        // SAFETY: `stats` and `len` are valid out-pointers of the stated size.
        let rc = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                &mut stats as *mut _ as *mut libc::c_void,
                &mut len,
            )
        };
        if rc < 0 {
            0
        } else {
            stats.tp_drops as u64
        }
    }

    fn recv_batch(&mut self, batch: &mut RxBatch) -> Result<usize, PortError> {
        for i in 0..BATCH {
            let (slot, _) = batch.slot_mut(i);
            self.rx_iov[i][0] = libc::iovec {
                iov_base: self.rx_hdrs[i].as_mut_ptr().cast(),
                iov_len: VNET_HDR_LEN,
            };
            self.rx_iov[i][1] = libc::iovec {
                iov_base: slot.as_mut_ptr().cast(),
                iov_len: slot.len(),
            };
            let m = &mut self.rx_msgs[i];
            m.msg_hdr.msg_iov = self.rx_iov[i].as_mut_ptr();
            m.msg_hdr.msg_iovlen = 2;
            m.msg_hdr.msg_flags = 0;
            m.msg_len = 0;
        }
        // SAFETY: every mmsghdr points at two iovecs that point into live buffers (`rx_hdrs` and the
        // caller's slots) of the stated lengths; all stay borrowed for the duration of the call.
        let n = unsafe {
            libc::recvmmsg(
                self.fd.as_raw_fd(),
                self.rx_msgs.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            return self.classify_recv_error(sys::last_err());
        }
        let n = n as usize;
        for i in 0..n {
            let m = &self.rx_msgs[i];
            let total = m.msg_len as usize;
            let truncated = m.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 || total < VNET_HDR_LEN;
            let vnet = VnetHeader::parse(&self.rx_hdrs[i]);
            let meta = batch.meta_mut(i);
            meta.len = total.saturating_sub(VNET_HDR_LEN);
            meta.vnet = vnet;
            meta.truncated = truncated;
        }
        Ok(n)
    }

    fn send_batch(&mut self, frames: &[TxRef<'_>]) -> Result<SendReport, PortError> {
        let mut report = SendReport::default();
        for chunk in frames.chunks(BATCH) {
            for (i, f) in chunk.iter().enumerate() {
                f.vnet.emit(&mut self.tx_hdrs[i]);
                self.tx_iov[i][0] = libc::iovec {
                    iov_base: self.tx_hdrs[i].as_mut_ptr().cast(),
                    iov_len: VNET_HDR_LEN,
                };
                self.tx_iov[i][1] = libc::iovec {
                    iov_base: f.data.as_ptr() as *mut libc::c_void,
                    iov_len: f.data.len(),
                };
                let m = &mut self.tx_msgs[i];
                m.msg_hdr.msg_iov = self.tx_iov[i].as_mut_ptr();
                m.msg_hdr.msg_iovlen = 2;
                m.msg_len = 0;
            }
            let mut start = 0;
            while start < chunk.len() {
                // SAFETY: messages start..chunk.len() point at iovecs into `tx_hdrs` and into frame
                // data borrowed by `frames`, all alive for the call; the kernel only reads them.
                let rc = unsafe {
                    libc::sendmmsg(
                        self.fd.as_raw_fd(),
                        self.tx_msgs.as_mut_ptr().add(start),
                        (chunk.len() - start) as libc::c_uint,
                        libc::MSG_DONTWAIT,
                    )
                };
                if rc > 0 {
                    let done = start + rc as usize;
                    report.sent += rc as usize;
                    report.sent_bytes += chunk[start..done]
                        .iter()
                        .map(|f| f.data.len() as u64)
                        .sum::<u64>();
                    start = done;
                    continue;
                }
                // The frame at `start` failed; account it and move past it.
                let err = sys::last_err();
                match err.raw_os_error() {
                    Some(libc::EINTR) => continue,
                    Some(libc::EAGAIN) | Some(libc::ENOBUFS) => {
                        // The socket is full: the rest of this chunk would fail the same way.
                        report.busy += chunk.len() - start;
                        break;
                    }
                    Some(libc::EMSGSIZE) => report.too_big += 1,
                    Some(libc::ENETDOWN) if self.still_exists() => {
                        report.link_down += chunk.len() - start;
                        break;
                    }
                    Some(libc::ENETDOWN) | Some(libc::ENXIO) | Some(libc::ENODEV) => {
                        return Err(PortError::Gone(self.name.clone()))
                    }
                    _ => report.failed += 1,
                }
                start += 1;
            }
        }
        Ok(report)
    }
}
