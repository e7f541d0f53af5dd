//! Gratuitous ARP, sent when a container interface appears or moves, so that
//! neighbours and switchyard's own MAC learning pick up the new IP→MAC binding
//! at once instead of after their entries time out.
//!
//! Why one ARP *request* and no reply: Linux treats a request with sender IP ==
//! target IP as gratuitous and overrides an existing neighbour entry with it
//! (arp_process: `is_garp` bypasses the locktime), and RFC 5227 ("ARP
//! Announcement") prescribes the request form. A gratuitous reply would only help
//! a few old non-Linux stacks, and doubles broadcasts; neither side creates new
//! entries from either form unless `arp_accept` is set. MAC learning on a switch
//! works from either, since it only looks at the Ethernet source.
//!
//! Why a hand-built frame on an AF_PACKET socket: there is no kernel API that
//! "announces" an address on demand, and the frame is 42 fixed bytes.

use std::ffi::CString;
use std::io;
use std::mem;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use dataplane::wire::arp;
use dataplane::wire::ethernet::ethertype;
use dataplane::MacAddr;

use super::{os, NetNs, NetnsError, Result};

/// The gratuitous ARP request announcing `ip` at `mac` (target = sender), padded to 60 bytes.
pub(crate) fn garp_frame(mac: MacAddr, ip: Ipv4Addr) -> [u8; arp::REQUEST_FRAME_LEN] {
    arp::request_frame(mac, ip, ip)
}

/// Sends one gratuitous ARP request for `ip` at `mac` out of `ifname` in `ns`.
pub fn send_gratuitous_arp(ns: &NetNs, ifname: &str, mac: MacAddr, ip: Ipv4Addr) -> Result<()> {
    let op = || format!("sending gratuitous ARP for {ip} at {mac} on '{ifname}' in {ns}");
    let frame = garp_frame(mac, ip);
    ns.run_in(|| {
        let cname = CString::new(ifname).map_err(|_| NetnsError::InvalidArgument {
            op: op(),
            reason: "interface name contains a NUL byte".into(),
        })?;
        // SAFETY: `cname` is NUL-terminated and outlives the call; if_nametoindex
        // only reads it (and uses a socket of this thread's namespace).
        let ifindex = unsafe { libc::if_nametoindex(cname.as_ptr()) };
        if ifindex == 0 {
            return Err(NetnsError::NoSuchLink {
                op: op(),
                name: ifname.to_owned(),
            });
        }

        // SAFETY: plain socket(2) call with constant arguments; no memory involved.
        let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(os(
                format!("{}: opening an AF_PACKET socket", op()),
                io::Error::last_os_error(),
            ));
        }
        // SAFETY: `raw` is a fresh, valid descriptor returned by socket(2) that
        // nothing else owns.
        let sock = unsafe { OwnedFd::from_raw_fd(raw) };

        // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
        let mut addr: libc::sockaddr_ll = unsafe { mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = ethertype::ARP.to_be();
        addr.sll_ifindex = ifindex as i32;
        let addr_len = mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        // SAFETY: `addr` is an initialised sockaddr_ll and `addr_len` its exact
        // size; bind(2) only reads it. The descriptor is kept open by `sock`.
        let rc = unsafe { libc::bind(sock.as_raw_fd(), (&raw const addr).cast(), addr_len) };
        if rc < 0 {
            return Err(os(
                format!("{}: binding to '{ifname}'", op()),
                io::Error::last_os_error(),
            ));
        }

        // SAFETY: `frame` is a live 60-byte buffer that send(2) only reads.
        let sent = unsafe { libc::send(sock.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
        if sent < 0 {
            return Err(os(format!("{}: send", op()), io::Error::last_os_error()));
        }
        if sent as usize != frame.len() {
            return Err(os(
                format!("{}: short send of {sent} bytes", op()),
                io::Error::from(io::ErrorKind::WriteZero),
            ));
        }
        Ok(())
    })?
}
