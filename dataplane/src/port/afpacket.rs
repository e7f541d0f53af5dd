//! AF_PACKET port on an existing interface (typically the host end of a veth pair).
//!
//! Receive goes through a TPACKET_V2 ring mapped into our memory: the kernel copies each frame into a
//! ring slot in the *sender's* softirq, and `recv_batch` reads slots with plain loads, no syscall per
//! frame. With `recvmmsg`, the switch's core spent ~40% of its time in the kernel's per-packet receive
//! path (`packet_recvmsg`, `_copy_to_iter`, `sock_rfree`, `__check_object_size`) at 64-byte UDP
//! rates; a ring costs ~11 ns of CPU per packet (shared/notes/measurements.md). V2 rather than V3:
//! V3 hands over whole blocks on a timeout and adds milliseconds of latency at low load.
//!
//! Ring size: a port starts with a small ring of small slots (`RING_SLOTS_IDLE`, 1024 slots of
//! `RING_SMALL_FRAME_SIZE`, 256 bytes, 256 KiB; a further engine worker's socket on it,
//! `RING_SLOTS_MEMBER`, 512 slots, 128 KiB) and grows it once to `RING_SLOTS_BUSY` (2048 slots of
//! 2 KiB, 4 MiB: about 3 ms of 64-byte frames at 670 kpps, to absorb bursts while the engine serves
//! other ports) the first time a read finds it more than a quarter full after taking a whole batch,
//! finds a batch of `GROW_AFTER_COPIES` frames too large for its slots, or the kernel reports a
//! drop. Most ports of a Docker host are idle, and the ring was nearly all of a port's memory (200
//! containers took 815 MiB). An idle port's traffic is small frames (ARP, SYNs and ACKs, pings, DNS
//! queries): in 256-byte slots the same memory holds eight times the frames of 2 KiB slots, so an
//! idle container meeting 64 new clients at once keeps every SYN (with 128 slots of 2 KiB it lost
//! some, each a connection stalled for the 1 s SYN retransmission). A larger frame takes the path
//! of a super-frame (below) until its port grows. The uplink starts large
//! (`AfPacketPort::open_busy`): it carries every published port's first burst.
//!
//! Growing without a gap: a ring cannot be resized, setting one frees the old one with what it
//! holds, and unbinding a socket or setting a ring on a bound one leaves frames meanwhile with no
//! socket (one RCU grace period, milliseconds). So a port replaces its socket instead, and the
//! kernel's fanout is what hands over. Every receiving socket is in a `PACKET_FANOUT_CBPF` group:
//! its own (`PACKET_FANOUT_FLAG_UNIQUEID`), which an engine worker's `Port::receiver` joins. The
//! group's program returns the member for each frame: it computes a key of the frame's flow
//! (`flow_key_program`) and starts as `ret key`, which the kernel takes modulo the members, so all
//! frames of a flow reach one member and one worker sends them on in order. `grow_ring`:
//! 1. makes the program a table from `key % members` to a member's position (`Group`), which a
//!    new member does not change (and a table left by an earlier replacement plain positions
//!    again: its steering value counts on the number of members a join changes);
//! 2. opens a socket with the large ring and joins it to the group (it receives nothing from the
//!    group); sets the same program again for its RCU grace period, after which nothing reaches
//!    the new socket as the copy every bound socket outside a group gets, and discards the copies
//!    it got before it joined;
//! 3. steers the old socket's keys to the new one. Replacing a group's program returns after a
//!    grace period, so from then on no frame reaches the old socket.
//!
//! `recv_batch` then reads what the old ring holds, in order, until it is empty; adds the old
//! socket's last kernel drops (`PACKET_STATISTICS`) to the port's `rx-overrun`; closes it and goes
//! on with the new ring in the same batch. The engine polls the new socket from the moment the
//! group steers frames to it (`Port::moved_fd`): the old one gets nothing more that could wake it.
//! Nothing is discarded but the copies, nothing is estimated: a frame the old ring had no room
//! for is one of the kernel's drops, counted exactly. The value the table gives the old socket's
//! keys names the new socket's position both before the old one closes and after the kernel has
//! moved the new one (the group's last member) into its place (`Group::steer`), so the worker
//! that reads a flow's frames does not change while a ring grows. One member of a group is
//! replaced at a time. The program costs a few classic BPF instructions per frame (JIT-compiled),
//! and none of its loads can fail (a failed load would pick the first member past the table). A VLAN share's senders
//! (`Port::sender`, duplicates of its descriptor) keep its old socket open, steered past and
//! receiving nothing, until the port is removed.
//!
//! Large frames: ring slots are small (`RING_FRAME_SIZE`, 2 KiB: an MTU-sized frame fits), but GSO
//! super-frames are up to 64 KiB. `PACKET_COPY_THRESH` makes
//! the kernel queue a frame that does not fit its slot *also* on the socket's ordinary receive queue,
//! and mark the (truncated) slot `TP_STATUS_COPY`. Both happen under the receive-queue lock in ring
//! order, so the n-th COPY slot is the n-th queued frame: `recv_batch` collects the COPY slots of a
//! batch and reads their full frames (with their `virtio_net_hdr`) with one `recvmmsg` into the same
//! `RxBatch` slots, preserving order. If the socket's receive buffer is full the kernel skips the
//! queue copy and the slot arrives cut (no COPY flag); it is flagged truncated and dropped as such.
//!
//! VLAN tags: veth and most NICs strip the 802.1Q tag into `skb->vlan_tci` before AF_PACKET sees the
//! frame, so the bytes we get are untagged and the tag is only reported beside them (`tp_vlan_tci` /
//! `tp_vlan_tpid` in a ring slot's header, the `PACKET_AUXDATA` control message for `recvmmsg`). A
//! switch must forward the frame as it was on the wire, and learn it in its VLAN, so `recv_batch`
//! puts the tag back after the MAC addresses: while copying out of a ring slot (no extra move), and
//! with one 4-byte shift inside the batch slot for COPY frames (slots have room: `FRAME_CAPACITY`).
//! The vnet header's `csum_start` and `hdr_len` count from the start of the frame, so they move by
//! the same 4 bytes. On transmit nothing is needed: `packet_snd` takes tagged frames as data, and
//! the kernel parses the tag itself (also for GSO super-frames with a vnet header).
//!
//! Transmit stays on `sendmmsg` (one syscall per batch). Socket options, each for a reason:
//! - `PACKET_VNET_HDR` (set before the ring: the kernel refuses it afterwards): frames arrive with
//!   their `virtio_net_hdr` (in a ring slot, just before the MAC header at `tp_mac - 10`), so the
//!   kernel hands us checksum-partial and GSO super-frames as they are instead of us seeing broken
//!   checksums. With the kernel's default veth offloads, TCP through the switch works without
//!   ethtool, at super-frame rate.
//! - `PACKET_IGNORE_OUTGOING`: we do not see the frames we (or anyone) send out of this interface
//!   (for a socket in a group the group's hook decides: `PACKET_FANOUT_FLAG_IGNORE_OUTGOING`).
//! - `PACKET_QDISC_BYPASS`: our transmissions skip the qdisc, as a bridge's forwarded frames do.
//! - promiscuous membership: a switch port must see frames for every MAC, not just the interface's.
//! - the socket is created with protocol 0 and bound with ETH_P_ALL, so it never queues frames from
//!   other interfaces between `socket` and `bind` (and the ring is set up before any frame arrives).
//!
//! Readiness: the kernel calls `sk_data_ready` after publishing every ring slot, so an edge-triggered
//! poller is woken for each frame written after we last looked; `recv_batch` returning fewer than
//! `BATCH` frames means it met a slot the kernel had not published yet, whose publication wakes us.
//! Errors: with a ring we no longer get receive errors, so a wake-up that finds the ring empty reads
//! `SO_ERROR` (the kernel sets ENETDOWN there when the interface goes down or is unregistered).

use std::mem;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

use super::claim::InterfaceClaim;
use super::{
    sys, validate_ifname, Port, PortError, PortKind, RxBatch, RxMeta, SendFrames, SendOnly,
    SendReport, TxRef, BATCH,
};
use crate::wire::vnet::{VnetHeader, VNET_HDR_LEN};
use crate::MacAddr;

const PACKET_QDISC_BYPASS: libc::c_int = 20;
const PACKET_VNET_HDR: libc::c_int = 15;
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;
const PACKET_RX_RING: libc::c_int = 5;
const PACKET_COPY_THRESH: libc::c_int = 7;
const PACKET_VERSION: libc::c_int = 10;
const TPACKET_V2: libc::c_int = 1;
const TP_STATUS_KERNEL: u32 = 0;
const TP_STATUS_USER: u32 = 1 << 0;
const TP_STATUS_COPY: u32 = 1 << 1;
/// `tp_vlan_tci` holds a tag the kernel took out of the frame (also when the TCI is 0).
const TP_STATUS_VLAN_VALID: u32 = 1 << 4;
/// `tp_vlan_tpid` holds that tag's TPID (otherwise it is 0x8100).
const TP_STATUS_VLAN_TPID_VALID: u32 = 1 << 6;
/// Socket option and control message type of `struct tpacket_auxdata` (linux/if_packet.h).
const PACKET_AUXDATA: libc::c_int = 8;
/// Joins (or creates) a fanout group: each frame of the interface goes to one of its sockets.
const PACKET_FANOUT: libc::c_int = 18;
/// Fanout by a classic BPF program (`PACKET_FANOUT_DATA`) that returns the member's index.
const PACKET_FANOUT_CBPF: libc::c_int = 6;
/// Sets a `PACKET_FANOUT_CBPF` group's program (`struct sock_fprog`); replacing one waits for an
/// RCU grace period, after which no frame is steered by the old program any more.
const PACKET_FANOUT_DATA: libc::c_int = 22;
/// The kernel picks a group id no group of the namespace uses (read back with getsockopt).
const PACKET_FANOUT_FLAG_UNIQUEID: libc::c_int = 0x2000;
/// The group ignores frames sent out of the interface (what `PACKET_IGNORE_OUTGOING` does for a
/// socket outside a group).
const PACKET_FANOUT_FLAG_IGNORE_OUTGOING: libc::c_int = 0x4000;
/// Offsets in `struct tpacket_auxdata` { u32 tp_status, tp_len, tp_snaplen; u16 tp_mac, tp_net,
/// tp_vlan_tci, tp_vlan_tpid; }.
const AUX_STATUS: usize = 0;
const AUX_VLAN_TCI: usize = 16;
const AUX_VLAN_TPID: usize = 18;
const AUX_LEN: usize = 20;
/// Control buffer per message: one `cmsghdr` (16 bytes) and the 20-byte auxdata padded to 24, in
/// u64s for the alignment `cmsghdr` needs. Room to spare in case the kernel adds fields.
const CMSG_WORDS: usize = 8;

/// Bytes per slot of a grown ring: the 32-byte `tpacket2_hdr` and its `sockaddr_ll` area (48 bytes
/// with alignment), the 10-byte vnet header, then the frame at offset 44 + 14. A 1514-byte frame
/// (and a tagged one) fits; larger frames travel through `PACKET_COPY_THRESH` (see the module docs).
const RING_FRAME_SIZE: usize = 2048;
/// Bytes per slot of a small ring (an idle port's): frames of up to ~180 bytes fit (ARP, TCP
/// without payload or with a little, ICMP echo, most DNS queries); larger ones travel through
/// `PACKET_COPY_THRESH` as super-frames do.
const RING_SMALL_FRAME_SIZE: usize = 256;
/// A small ring's batch with this many frames too large for its slots means bulk traffic: the ring
/// grows (the copy path costs a `recvmmsg` a batch).
const GROW_AFTER_COPIES: usize = 8;
/// So do this many such frames within `COPY_WINDOW`, a batch at a time: request-response traffic
/// of a few frames a batch. The copy path adds ~10 µs to a frame's way through the switch (1000-
/// byte pings: RTT median 149-150 µs against 129-131 µs in 2 KiB slots), which a port carrying
/// such traffic should not pay; a port seeing a few larger frames a second (a health check) keeps
/// its small ring.
const GROW_AFTER_COPIES_PER_WINDOW: u32 = 32;
const COPY_WINDOW: std::time::Duration = std::time::Duration::from_secs(1);
/// Bytes per ring block (a multiple of the page size and of the frame size; order-2 allocations,
/// which the kernel finds even when its memory is fragmented).
const RING_BLOCK_SIZE: usize = 16 << 10;
/// Slots of a new port's ring: 256 KiB of small slots (see the module docs).
pub(crate) const RING_SLOTS_IDLE: usize = 1024;
/// Slots of a new fanout member's ring (another engine worker's socket on the port): 128 KiB, so an
/// idle port costs 256 KiB + 128 KiB per further worker rather than 256 KiB per worker. It grows to
/// `RING_SLOTS_BUSY` as any ring does once its flows meet load.
pub(crate) const RING_SLOTS_MEMBER: usize = 512;
/// Slots of a ring that has met load: 4 MiB of `RING_FRAME_SIZE` slots.
pub(crate) const RING_SLOTS_BUSY: usize = 2048;

/// Bytes per slot of a ring of `slots`: only a grown ring has slots for MTU-sized frames.
fn slot_size(slots: usize) -> usize {
    if slots >= RING_SLOTS_BUSY {
        RING_FRAME_SIZE
    } else {
        RING_SMALL_FRAME_SIZE
    }
}

/// Offsets in `struct tpacket2_hdr` (linux/if_packet.h).
const TP_LEN: usize = 4;
const TP_SNAPLEN: usize = 8;
const TP_MAC: usize = 12;
const TP_VLAN_TCI: usize = 24;
const TP_VLAN_TPID: usize = 26;
/// Socket buffers sized for a few batches of 64 KiB super-frames, so a burst does not find the
/// socket full.
const SOCKET_BUFFER: libc::c_int = 8 << 20;

/// The mmap'ed TPACKET_V2 receive ring. Slot `i` starts at `base + i * frame` (blocks are mapped
/// back to back and a block holds a whole number of slots).
struct RxRing {
    base: NonNull<u8>,
    len: usize,
    /// Number of slots.
    slots: usize,
    /// Bytes per slot (`slot_size`).
    frame: usize,
    /// The next slot to look at: the kernel fills slots in order.
    next: usize,
}

/// Asks the kernel for a receive ring of `slots` slots of `frame` bytes on `fd`, which has none.
fn set_ring(fd: RawFd, slots: usize, frame: usize) -> std::io::Result<()> {
    let blocks = slots * frame / RING_BLOCK_SIZE;
    let req = libc::tpacket_req {
        tp_block_size: RING_BLOCK_SIZE as libc::c_uint,
        tp_block_nr: blocks as libc::c_uint,
        tp_frame_size: frame as libc::c_uint,
        tp_frame_nr: slots as libc::c_uint,
    };
    sys::setsockopt(fd, libc::SOL_PACKET, PACKET_RX_RING, &req)
}

impl RxRing {
    /// Sets up and maps a ring of `slots` slots on `fd`, which has none. `PACKET_VNET_HDR` and
    /// `PACKET_VERSION` must already be set.
    fn map(fd: RawFd, slots: usize) -> std::io::Result<RxRing> {
        let frame = slot_size(slots);
        debug_assert!((slots * frame).is_multiple_of(RING_BLOCK_SIZE));
        set_ring(fd, slots, frame)?;
        let len = slots * frame;
        // SAFETY: maps the ring the kernel just allocated for `fd`; the result is checked. The
        // mapping stays valid until `munmap` in `Drop`, independent of the fd.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(sys::last_err());
        }
        Ok(RxRing {
            base: NonNull::new(p.cast()).expect("mmap returned a non-null mapping"),
            len,
            slots,
            frame,
            next: 0,
        })
    }

    fn slot(&self, i: usize) -> *mut u8 {
        debug_assert!(i < self.slots);
        // SAFETY: i < self.slots, so the slot lies inside the mapping.
        unsafe { self.base.as_ptr().add(i * self.frame) }
    }

    /// Whether the kernel has published slot `i` (it holds a frame we have not read).
    fn published(&self, i: usize) -> bool {
        self.status(i).load(Ordering::Acquire) & TP_STATUS_USER != 0
    }

    /// `tp_status` of slot `i`, shared with the kernel.
    fn status(&self, i: usize) -> &AtomicU32 {
        // SAFETY: the slot starts with the 4-byte aligned u32 `tp_status` (slots are 16-byte aligned
        // in a page-aligned mapping), which the kernel and we only access atomically; the mapping
        // outlives `&self`.
        unsafe { &*(self.slot(i) as *const AtomicU32) }
    }

    /// Header fields of slot `i`. Only valid after an acquire load of its status saw
    /// `TP_STATUS_USER`; `status` is that value (it carries the VLAN flags).
    fn header(&self, i: usize, status: u32) -> SlotHeader {
        let p = self.slot(i);
        // SAFETY: the fields lie within the slot's header at their natural alignment; the kernel wrote
        // them before publishing the status we acquired, and does not touch the slot until we hand it
        // back.
        let (len, snaplen, mac, tci, tpid) = unsafe {
            (
                (p.add(TP_LEN) as *const u32).read() as usize,
                (p.add(TP_SNAPLEN) as *const u32).read() as usize,
                (p.add(TP_MAC) as *const u16).read() as usize,
                (p.add(TP_VLAN_TCI) as *const u16).read(),
                (p.add(TP_VLAN_TPID) as *const u16).read(),
            )
        };
        SlotHeader {
            len,
            snaplen,
            mac,
            tag: StrippedTag::reported(status, tci, tpid),
        }
    }

    /// Bytes `off..off + len` of slot `i`, clamped to the slot.
    fn bytes(&self, i: usize, off: usize, len: usize) -> &[u8] {
        let off = off.min(self.frame);
        let len = len.min(self.frame - off);
        // SAFETY: the range lies within slot `i` of the mapping; the slot belongs to us (status
        // TP_STATUS_USER acquired) until `release`, and callers drop the slice before that.
        unsafe { std::slice::from_raw_parts(self.slot(i).add(off), len) }
    }

    /// Hands slot `i` back to the kernel; everything we read from it happens before.
    fn release(&self, i: usize) {
        self.status(i).store(TP_STATUS_KERNEL, Ordering::Release);
    }
}

/// What `RxRing::header` reads from a published slot.
struct SlotHeader {
    /// `tp_len`: the frame's length as received (without a stripped tag).
    len: usize,
    /// `tp_snaplen`: bytes of it in the slot.
    snaplen: usize,
    /// `tp_mac`: offset of the frame in the slot.
    mac: usize,
    /// The tag the kernel took out of the frame, if any.
    tag: Option<StrippedTag>,
}

/// Where an 802.1Q/802.1ad tag goes: right after the destination and source MAC addresses.
const TAG_OFFSET: usize = 12;
/// Bytes of one tag (TPID + TCI).
const TAG_LEN: usize = 4;

/// A VLAN tag the kernel removed from a received frame (hardware-accelerated VLAN receive: veth and
/// most NICs) and reported out of band, to be put back into the frame bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct StrippedTag {
    tpid: u16,
    tci: u16,
}

impl StrippedTag {
    /// The tag reported by `tp_status`/`tp_vlan_tci`/`tp_vlan_tpid` (a ring slot header or
    /// `tpacket_auxdata`), following the kernel's own rule (and libpcap's): a tag is present when
    /// `TP_STATUS_VLAN_VALID` is set, which includes TCI 0 (priority-tagged frames); kernels older
    /// than that flag only report non-zero TCIs. The TPID is 0x8100 unless the kernel says otherwise.
    fn reported(status: u32, tci: u16, tpid: u16) -> Option<StrippedTag> {
        if status & TP_STATUS_VLAN_VALID == 0 && tci == 0 {
            return None;
        }
        let tpid = if status & TP_STATUS_VLAN_TPID_VALID != 0 && tpid != 0 {
            tpid
        } else {
            crate::wire::ethernet::ethertype::VLAN
        };
        Some(StrippedTag { tpid, tci })
    }

    /// The tag as it goes on the wire.
    fn bytes(&self) -> [u8; TAG_LEN] {
        let [a, b] = self.tpid.to_be_bytes();
        let [c, d] = self.tci.to_be_bytes();
        [a, b, c, d]
    }
}

/// Copies the received frame `src` into `dst`, putting `tag` (when given) back at offset 12, and
/// returns the bytes written (clamped to `dst`) and whether the tag went in. One pass, so a ring
/// frame is moved only once.
///
/// Each call inserts one tag: a frame that already carries a tag in its bytes (QinQ, whose outer tag
/// the kernel stripped) gets the stripped one in front of it, which is where it was on the wire.
/// A frame too short to hold MAC addresses is copied as it is.
fn copy_restoring_tag(dst: &mut [u8], src: &[u8], tag: Option<StrippedTag>) -> (usize, bool) {
    let tag = match tag {
        Some(tag) if src.len() >= TAG_OFFSET && dst.len() >= TAG_OFFSET + TAG_LEN => tag,
        _ => {
            let k = src.len().min(dst.len());
            dst[..k].copy_from_slice(&src[..k]);
            return (k, false);
        }
    };
    dst[..TAG_OFFSET].copy_from_slice(&src[..TAG_OFFSET]);
    dst[TAG_OFFSET..TAG_OFFSET + TAG_LEN].copy_from_slice(&tag.bytes());
    let rest = &src[TAG_OFFSET..];
    let k = rest.len().min(dst.len() - TAG_OFFSET - TAG_LEN);
    dst[TAG_OFFSET + TAG_LEN..][..k].copy_from_slice(&rest[..k]);
    (TAG_OFFSET + TAG_LEN + k, true)
}

/// Inserts `tag` at offset 12 of the `len`-byte frame at the start of `buf`, shifting the rest right
/// by 4 bytes, and returns the new length. `None` (and `buf` untouched) when the frame is shorter
/// than the MAC addresses or `buf` has no 4 spare bytes after it. Like `copy_restoring_tag`, each
/// call inserts one more tag; the caller calls it once per frame the kernel reported a tag for.
fn insert_tag(buf: &mut [u8], len: usize, tag: StrippedTag) -> Option<usize> {
    let new_len = len.checked_add(TAG_LEN)?;
    if len < TAG_OFFSET || new_len > buf.len() {
        return None;
    }
    buf.copy_within(TAG_OFFSET..len, TAG_OFFSET + TAG_LEN);
    buf[TAG_OFFSET..TAG_OFFSET + TAG_LEN].copy_from_slice(&tag.bytes());
    Some(new_len)
}

/// The vnet header of a frame after a tag was inserted at offset 12: `csum_start` and `hdr_len`
/// count from the start of the frame, so what they point at moved 4 bytes on. `csum_start` is only
/// meaningful with `NEEDS_CSUM`, and `hdr_len` 0 means "not given", so those stay as they are.
pub(crate) fn vnet_after_tag(mut vnet: VnetHeader) -> VnetHeader {
    if vnet.needs_csum() {
        vnet.csum_start = vnet.csum_start.saturating_add(TAG_LEN as u16);
    }
    if vnet.hdr_len != 0 {
        vnet.hdr_len = vnet.hdr_len.saturating_add(TAG_LEN as u16);
    }
    vnet
}

/// The tag reported by the `PACKET_AUXDATA` control message of a received message, if any.
///
/// # Safety
/// `msg` must be a `msghdr` filled in by a successful receive call, whose `msg_control` (if not
/// null) points at a live buffer of at least `msg_controllen` bytes.
unsafe fn auxdata_tag(msg: &libc::msghdr) -> Option<StrippedTag> {
    // SAFETY: the caller guarantees msg_control/msg_controllen describe a live buffer the kernel
    // filled; CMSG_FIRSTHDR/CMSG_NXTHDR stay within msg_controllen and return null at its end.
    let mut c = unsafe { libc::CMSG_FIRSTHDR(msg) };
    while !c.is_null() {
        // SAFETY: a non-null cmsg pointer from CMSG_FIRSTHDR/CMSG_NXTHDR points at a whole cmsghdr
        // inside the buffer.
        let h = unsafe { &*c };
        let data_len = (h.cmsg_len as usize).saturating_sub(
            // SAFETY: CMSG_LEN only computes a length.
            unsafe { libc::CMSG_LEN(0) } as usize,
        );
        if h.cmsg_level == libc::SOL_PACKET && h.cmsg_type == PACKET_AUXDATA && data_len >= AUX_LEN
        {
            // SAFETY: the kernel wrote `data_len` >= AUX_LEN bytes of data after the header, within
            // the buffer (it sets MSG_CTRUNC instead of writing past msg_controllen).
            let d = unsafe { std::slice::from_raw_parts(libc::CMSG_DATA(c), AUX_LEN) };
            let u32_at = |o: usize| u32::from_ne_bytes(d[o..o + 4].try_into().expect("4 bytes"));
            let u16_at = |o: usize| u16::from_ne_bytes([d[o], d[o + 1]]);
            return StrippedTag::reported(
                u32_at(AUX_STATUS),
                u16_at(AUX_VLAN_TCI),
                u16_at(AUX_VLAN_TPID),
            );
        }
        // SAFETY: `c` is a cmsghdr within `msg`'s control buffer, as above.
        c = unsafe { libc::CMSG_NXTHDR(msg, c) };
    }
    None
}

/// The `PACKET_FANOUT_CBPF` group every receiving socket of a port is in (see the module docs),
/// shared by the port's sockets (one per engine worker) under a lock.
struct Group {
    /// The kernel's group id (`PACKET_FANOUT_FLAG_UNIQUEID`).
    id: u16,
    /// The members (`RxSocket::member`) in the kernel's order: a socket that joins is appended, one
    /// that closes is replaced by the last (`__fanout_unlink`); the kernel gives a frame to the
    /// member at the index the program returns, modulo their number.
    order: Vec<u64>,
    /// Empty while the program is `ret key` (the member at `key % members`, `key` the frame's
    /// flow's: `flow_key_program`). Once a member has been replaced: the member that receives the frames
    /// of CPUs `c` with `c % serves.len() == r`, at `r`.
    serves: Vec<u64>,
    next_member: u64,
    /// A member is being replaced: one at a time, so that the positions `steer` counts on hold.
    swapping: bool,
    /// The table the group's program holds (empty: `ret key`).
    installed: Vec<u32>,
}

type SharedGroup = std::sync::Arc<std::sync::Mutex<Group>>;

impl Group {
    fn lock(group: &SharedGroup) -> std::sync::MutexGuard<'_, Group> {
        group.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn new_member(&mut self) -> u64 {
        self.next_member += 1;
        self.next_member
    }

    fn position(&self, member: u64) -> Option<usize> {
        self.order.iter().position(|&m| m == member)
    }

    /// A member closed: the kernel moved the last member into its place.
    fn unlink(&mut self, member: u64) {
        if let Some(i) = self.position(member) {
            self.order.swap_remove(i);
        }
    }

    /// The value the program returns for each residue `r` of `serves`: the position of the member
    /// serving it, and for those `retiring` serves, `x`.
    fn values(&self, retiring: Option<(u64, u32)>) -> Vec<u32> {
        self.serves
            .iter()
            .enumerate()
            .map(|(r, &m)| match retiring {
                Some((old, x)) if old == m => x,
                _ => self.position(m).unwrap_or(r) as u32,
            })
            .collect()
    }

    /// Where frames for `old`'s CPUs go while `new` (the last member) replaces it: a value that is
    /// `new`'s position among all members now, and `old`'s position once `old` has closed and the
    /// kernel moved `new` there. So they reach `new` before and after the close, never `old`.
    fn steer(&self, old: u64) -> Option<u32> {
        let len = self.order.len();
        let (p, q) = (self.position(old)?, len - 1);
        if len < 2 || p == q {
            return None;
        }
        // Two coprime moduli: the Chinese remainder theorem promises one below len * (len - 1).
        (0..len * (len - 1))
            .find(|x| x % len == q && x % (len - 1) == p)
            .map(|x| x as u32)
    }
}

/// Classic BPF leaving in `A` a key of the frame's flow, the same for both of its directions: for
/// IPv4, the addresses xor-ed, with the ports for TCP and UDP (not for fragments), folded, then
/// multiplied by 2^32 / golden ratio and shifted right by 16 so that every bit of the fold reaches
/// the low bits the kernel's `key % members` keeps; for anything else the kernel's `skb->hash` (0
/// when nothing set it: one member gets those). Without the multiplication a key's low bit was
/// the parity of the two hosts' addresses and ports, the same for every connection one host opens
/// to a server: Linux gives `connect()` even source ports, so of two workers one got them all. All
/// frames of a flow get one key, so one worker reads them in order, as with `PACKET_FANOUT_HASH`
/// (whose hash a classic program cannot compute): steering by the receiving CPU reordered every
/// flow whose sender changes CPU, as TCP does between its own context and the softirq of arriving
/// ACKs (`one_flow_stays_in_order_across_workers`).
///
/// No load can fail: a classic program whose load falls outside the frame ends returning 0, which
/// the kernel takes as the member at position 0 *without* the steering table, so while that
/// member's ring grows such a frame could reach the socket being replaced after it was drained.
/// Every load is guarded by the frame's length (`ld len`; a fanout program runs on a received
/// frame with `skb->data` at its network header, where plain offsets count from): an IPv4 packet
/// shorter than its header, or than the header its IHL claims plus the ports, gets the key of a
/// packet without ports or key 0 (`flow_key_never_aborts`).
fn flow_key_program() -> Vec<libc::sock_filter> {
    use Bpf::*;
    const SKF_AD_OFF: u32 = (-0x1000i32) as u32;
    const SKF_AD_PROTOCOL: u32 = 0;
    const SKF_AD_RXHASH: u32 = 32;
    #[rustfmt::skip]
    let prog = [
        Op(LD_W_ABS, SKF_AD_OFF + SKF_AD_PROTOCOL),
        Jump(JEQ_K, 0x0800, "ipv4", "other"),
        Label("other"),
        Op(LD_W_ABS, SKF_AD_OFF + SKF_AD_RXHASH),
        Goto("end"),
        Label("ipv4"),
        Op(LD_LEN, 0),
        Jump(JGE_K, 20, "header", "zero"),
        Label("zero"),
        Op(LD_IMM, 0),
        Goto("end"),
        Label("header"),
        Op(LD_W_ABS, 12), // source address
        Op(ST, 0),
        Op(LD_W_ABS, 16), // destination address
        Op(LDX_MEM, 0),
        Op(XOR_X, 0),
        Op(ST, 0), // M[0] = source ^ destination
        Op(LD_B_ABS, 9), // protocol
        Jump(JEQ_K, 6, "l4", "udp?"),
        Label("udp?"),
        Jump(JEQ_K, 17, "l4", "no ports"),
        Label("l4"),
        Op(LD_H_ABS, 6), // flags and fragment offset
        Jump(JSET_K, 0x3fff, "no ports", "whole"),
        Label("whole"),
        Op(LDX_B_MSH, 0), // X = the header's length from its IHL
        Op(TXA, 0),
        Op(ADD_K, 4),
        Op(ST, 1), // M[1] = the header's length + the two ports
        Op(LD_LEN, 0),
        Op(LDX_MEM, 1),
        Jump(JGE_X, 0, "ports", "no ports"),
        Label("ports"),
        Op(LDX_B_MSH, 0),
        Op(LD_H_IND, 0), // source port
        Op(ST, 2),
        Op(LD_H_IND, 2), // destination port
        Op(LDX_MEM, 2),
        Op(XOR_X, 0), // A = source port ^ destination port
        Goto("mix"),
        Label("no ports"),
        Op(LD_IMM, 0),
        Label("mix"),
        Op(LDX_MEM, 0),
        Op(XOR_X, 0),
        Op(ST, 0),
        Op(RSH_K, 16),
        Op(LDX_MEM, 0),
        Op(XOR_X, 0), // A = h ^ (h >> 16)
        Op(MUL_K, GOLDEN),
        Op(RSH_K, 16), // A = (A * GOLDEN) >> 16
        Label("end"),
    ];
    assemble(&prog)
}

/// 2^32 divided by the golden ratio: Fibonacci hashing's multiplier. Each bit of a product
/// depends on the key's bits at and below it, so the key program keeps the product's high half.
const GOLDEN: u32 = 0x9e37_79b9;

/// Classic BPF opcodes the steering programs use (`linux/filter.h`).
const LD_IMM: u16 = 0x00; // BPF_LD | BPF_IMM
const LD_LEN: u16 = 0x80; // BPF_LD | BPF_W | BPF_LEN
const LD_W_ABS: u16 = 0x20;
const LD_H_ABS: u16 = 0x28;
const LD_B_ABS: u16 = 0x30;
const LD_H_IND: u16 = 0x48;
const LDX_B_MSH: u16 = 0xb1;
const LDX_MEM: u16 = 0x61;
const ST: u16 = 0x02;
const TXA: u16 = 0x87; // BPF_MISC | BPF_TXA
const ADD_K: u16 = 0x04;
const MUL_K: u16 = 0x24;
const XOR_X: u16 = 0xac;
const RSH_K: u16 = 0x74;
const MOD_K: u16 = 0x94;
const JA: u16 = 0x05;
const JEQ_K: u16 = 0x15;
const JGE_K: u16 = 0x35;
const JGE_X: u16 = 0x3d;
const JSET_K: u16 = 0x45;
const RET_A: u16 = 0x16;
const RET_K: u16 = 0x06;

/// A classic BPF instruction with named jump targets, for `assemble`.
enum Bpf {
    Op(u16, u32),
    /// A conditional jump: (opcode, k, where if true, where if false).
    Jump(u16, u32, &'static str, &'static str),
    Goto(&'static str),
    Label(&'static str),
}

/// Resolves `Bpf` labels into jump offsets (a jump skips the instructions between it and its
/// target, which must come after it). Panics on a program this module wrote wrongly.
fn assemble(prog: &[Bpf]) -> Vec<libc::sock_filter> {
    let mut at = std::collections::HashMap::new();
    let mut n = 0usize;
    for i in prog {
        match i {
            Bpf::Label(l) => assert!(at.insert(*l, n).is_none(), "label {l} twice"),
            _ => n += 1,
        }
    }
    let skip = |from: usize, to: &str| -> usize {
        let t = *at.get(to).unwrap_or_else(|| panic!("no label {to}"));
        assert!(t > from, "backward jump to {to}");
        t - from - 1
    };
    let mut out = Vec::with_capacity(n);
    for i in prog {
        let here = out.len();
        let op = |code: u16, jt: usize, jf: usize, k: u32| libc::sock_filter {
            code,
            jt: u8::try_from(jt).expect("jump too far"),
            jf: u8::try_from(jf).expect("jump too far"),
            k,
        };
        match *i {
            Bpf::Op(code, k) => out.push(op(code, 0, 0, k)),
            Bpf::Jump(code, k, t, f) => out.push(op(code, skip(here, t), skip(here, f), k)),
            Bpf::Goto(t) => out.push(op(JA, 0, 0, skip(here, t) as u32)),
            Bpf::Label(_) => {}
        }
    }
    out
}

/// The steering program: `ret key` without values, else `values[key % values.len()]`, `key`
/// the frame's flow's (`flow_key_program`).
fn steering_program(values: &[u32]) -> Vec<libc::sock_filter> {
    let op = |code: u16, jt: u8, jf: u8, k: u32| libc::sock_filter { code, jt, jf, k };
    let mut prog = flow_key_program();
    let Some((&last, head)) = values.split_last() else {
        prog.push(op(RET_A, 0, 0, 0));
        return prog;
    };
    prog.push(op(MOD_K, 0, 0, values.len() as u32));
    for (r, &v) in head.iter().enumerate() {
        // Equal: the next instruction returns `v`; otherwise skip it.
        prog.push(op(JEQ_K, 0, 1, r as u32));
        prog.push(op(RET_K, 0, 0, v));
    }
    prog.push(op(RET_K, 0, 0, last));
    prog
}

/// Installs `values`' steering program on the group `fd` is in. Returns after an RCU grace
/// period when it replaced a program: from then on, no frame is steered by the old one.
fn set_steering(fd: RawFd, values: &[u32]) -> std::io::Result<()> {
    let mut prog = steering_program(values);
    let fprog = libc::sock_fprog {
        len: prog.len() as libc::c_ushort,
        filter: prog.as_mut_ptr(),
    };
    // `fprog` points at `prog`, which lives until the call has copied it.
    sys::setsockopt(fd, libc::SOL_PACKET, PACKET_FANOUT_DATA, &fprog)
}

/// The `PACKET_FANOUT` argument for group `id` (0 with `PACKET_FANOUT_FLAG_UNIQUEID`).
fn fanout_arg(id: u16, flags: libc::c_int) -> libc::c_int {
    id as libc::c_int | ((PACKET_FANOUT_CBPF | PACKET_FANOUT_FLAG_IGNORE_OUTGOING | flags) << 16)
}

/// Puts the bound `fd` in a new group of its own, steered `ret key`; returns the group.
fn create_group(fd: RawFd) -> std::io::Result<Group> {
    sys::setsockopt_int(
        fd,
        libc::SOL_PACKET,
        PACKET_FANOUT,
        fanout_arg(0, PACKET_FANOUT_FLAG_UNIQUEID),
    )?;
    let id = (sys::getsockopt_int(fd, libc::SOL_PACKET, PACKET_FANOUT)? & 0xffff) as u16;
    // The group has no program yet, so this one takes no grace period.
    set_steering(fd, &[])?;
    Ok(Group {
        id,
        order: vec![1],
        serves: Vec::new(),
        next_member: 1,
        swapping: false,
        installed: Vec::new(),
    })
}

/// Frames the kernel dropped on `fd` (its ring was full) since the last call (`PACKET_STATISTICS`
/// resets the kernel's counters).
fn kernel_drops(fd: RawFd) -> u64 {
    // SAFETY: tpacket_stats is plain data.
    let mut stats: libc::tpacket_stats = unsafe { mem::zeroed() };
    let mut len = mem::size_of::<libc::tpacket_stats>() as libc::socklen_t;
    // SAFETY: `stats` and `len` are valid out-pointers of the stated size.
    let rc = unsafe {
        libc::getsockopt(
            fd,
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

/// Reads and discards everything on `fd`'s receive queue; returns how many frames.
fn drain_queue(fd: RawFd) -> u64 {
    let mut scrap = [0u8; 1];
    let mut drained = 0;
    loop {
        // SAFETY: reads at most one byte into `scrap` (the rest of the frame is discarded by the
        // kernel); non-blocking.
        let rc = unsafe {
            libc::recv(
                fd,
                scrap.as_mut_ptr().cast(),
                scrap.len(),
                libc::MSG_DONTWAIT | libc::MSG_TRUNC,
            )
        };
        if rc >= 0 {
            drained += 1;
        } else if sys::last_err().raw_os_error() != Some(libc::EINTR) {
            return drained;
        }
    }
}

/// A receiving socket and its ring.
struct RxSocket {
    fd: OwnedFd,
    ring: RxRing,
    /// Its name in the `Group`.
    member: u64,
}

impl RxSocket {
    /// A socket on `ifindex` with a ring of `slots`, bound: until it joins a group, it receives
    /// every frame of the interface.
    fn open(name: &str, ifindex: u32, slots: usize) -> Result<RxSocket, PortError> {
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
        let f = fd.as_raw_fd();
        let opt = |o, what| {
            sys::setsockopt_int(f, libc::SOL_PACKET, o, 1).map_err(|e| PortError::os(name, what, e))
        };
        // Order matters: the kernel refuses PACKET_VNET_HDR and PACKET_VERSION once a ring exists.
        opt(PACKET_VNET_HDR, "enabling PACKET_VNET_HDR")?;
        sys::setsockopt_int(f, libc::SOL_PACKET, PACKET_VERSION, TPACKET_V2)
            .map_err(|e| PortError::os(name, "selecting TPACKET_V2", e))?;
        opt(PACKET_COPY_THRESH, "enabling PACKET_COPY_THRESH")?;
        let ring = RxRing::map(f, slots)
            .map_err(|e| PortError::os(name, "mapping the receive ring", e))?;
        opt(PACKET_IGNORE_OUTGOING, "enabling PACKET_IGNORE_OUTGOING")?;
        opt(PACKET_QDISC_BYPASS, "enabling PACKET_QDISC_BYPASS")?;
        // Frames read with recvmmsg (COPY) report a stripped VLAN tag only through this cmsg.
        opt(PACKET_AUXDATA, "enabling PACKET_AUXDATA")?;
        sys::set_buffer(f, libc::SO_RCVBUFFORCE, libc::SO_RCVBUF, SOCKET_BUFFER);
        sys::set_buffer(f, libc::SO_SNDBUFFORCE, libc::SO_SNDBUF, SOCKET_BUFFER);

        // SAFETY: packet_mreq is plain old data.
        let mut mreq: libc::packet_mreq = unsafe { mem::zeroed() };
        mreq.mr_ifindex = ifindex as libc::c_int;
        mreq.mr_type = libc::PACKET_MR_PROMISC as libc::c_ushort;
        sys::setsockopt(f, libc::SOL_PACKET, libc::PACKET_ADD_MEMBERSHIP, &mreq)
            .map_err(|e| PortError::os(name, "enabling promiscuous mode", e))?;
        bind(f, ifindex, libc::ETH_P_ALL as u16)
            .map_err(|e| PortError::os(name, "binding the AF_PACKET socket", e))?;
        Ok(RxSocket {
            fd,
            ring,
            member: 0,
        })
    }

    /// Joins group `id` (after its creator, with the same flags).
    fn join(&self, id: u16) -> std::io::Result<()> {
        sys::setsockopt_int(
            self.fd.as_raw_fd(),
            libc::SOL_PACKET,
            PACKET_FANOUT,
            fanout_arg(id, 0),
        )
    }

    /// Hands every published slot back to the kernel unread and discards the socket's queue and
    /// drop count: what reached a socket before it was meant to receive anything.
    fn discard_all(&mut self) {
        // In ring order from where the kernel started, so `next` stays where it writes next.
        while self.ring.published(self.ring.next) {
            self.ring.release(self.ring.next);
            self.ring.next = (self.ring.next + 1) % self.ring.slots;
        }
        drain_queue(self.fd.as_raw_fd());
        kernel_drops(self.fd.as_raw_fd());
    }
}

/// Binds `fd` to interface `ifindex` for `protocol` (host order); 0 stops the socket receiving.
fn bind(fd: RawFd, ifindex: u32, protocol: u16) -> std::io::Result<()> {
    // SAFETY: sockaddr_ll is plain old data.
    let mut sll: libc::sockaddr_ll = unsafe { mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as libc::c_ushort;
    sll.sll_protocol = protocol.to_be();
    sll.sll_ifindex = ifindex as libc::c_int;
    // SAFETY: `sll` is a valid sockaddr_ll and its size is passed.
    let rc = unsafe {
        libc::bind(
            fd,
            &sll as *const _ as *const libc::sockaddr,
            mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(sys::last_err());
    }
    Ok(())
}

impl Drop for RxRing {
    fn drop(&mut self) {
        if self.len == 0 {
            return;
        }
        // SAFETY: `base`/`len` are exactly the mapping made in `map`, and no slice into it outlives
        // the port.
        unsafe {
            libc::munmap(self.base.as_ptr().cast(), self.len);
        }
    }
}

pub struct AfPacketPort {
    name: String,
    ifindex: u32,
    mac: Option<MacAddr>,
    /// The socket read (and sent through).
    rx: RxSocket,
    /// The socket with the large ring that replaces `rx` (see `grow_ring`): the group steers
    /// `rx`'s frames to it; it is read once `rx`'s ring is empty.
    successor: Option<RxSocket>,
    /// The fanout group `rx` is in, shared with the port's other receivers.
    group: SharedGroup,
    /// A new socket (the successor, then `rx`) took `rx`'s frames since the engine last asked
    /// (`Port::moved_fd`).
    moved: bool,
    /// A read found the ring under pressure (or the kernel dropped): grow it.
    want_grow: bool,
    /// Growing failed once (no memory for the ring): the port keeps its small one.
    grow_failed: bool,
    /// Frames too large for a small ring's slots since `copy_window` began (`COPY_WINDOW`).
    copies_seen: u32,
    copy_window: Option<std::time::Instant>,
    /// Ring slots of another worker's socket on this port (`new_receiver`).
    member_slots: usize,
    /// Frames lost while rings were replaced (the old socket's last drops), reported with the
    /// kernel's drops.
    lost: u64,
    /// `None` for a fanout member (`Port::receiver`): the first socket holds the interface's claim.
    _claim: Option<InterfaceClaim>,
    /// Whether this socket may share its frames with others (`Port::receiver`): a whole interface
    /// only (a VLAN share filters its VLAN out of everything the interface carries).
    fanout: bool,
    // Preallocated syscall arguments; the pointers inside are refreshed on every call because the
    // buffers they point to belong to the caller.
    rx_hdrs: Box<[[u8; VNET_HDR_LEN]; BATCH]>,
    /// Batch slots (in ring order) whose frames are read from the socket queue (TP_STATUS_COPY).
    rx_copy: [u8; BATCH],
    rx_iov: Box<[[libc::iovec; 2]; BATCH]>,
    rx_msgs: Box<[libc::mmsghdr; BATCH]>,
    /// One control buffer per message, for the `PACKET_AUXDATA` cmsg that reports stripped tags.
    rx_cmsg: Box<[[u64; CMSG_WORDS]; BATCH]>,
    tx: TxArea,
}

/// Preallocated `sendmmsg` arguments; the pointers inside are refreshed on every call.
struct TxArea {
    hdrs: Box<[[u8; VNET_HDR_LEN]; BATCH]>,
    iov: Box<[[libc::iovec; 2]; BATCH]>,
    msgs: Box<[libc::mmsghdr; BATCH]>,
}

impl TxArea {
    fn new() -> TxArea {
        TxArea {
            hdrs: Box::new([[0; VNET_HDR_LEN]; BATCH]),
            iov: zeroed_iov(),
            msgs: zeroed_msgs(),
        }
    }
}

/// What an `AfPacketPort`'s sender (`SendOnly`) sends with: the socket and its own syscall arguments.
struct AfPacketTx {
    fd: OwnedFd,
    ifindex: u32,
    tx: TxArea,
}

// SAFETY: as for `AfPacketPort`: the pointers in the preallocated arrays are only meaningful during
// one send call made by the owning thread.
unsafe impl Send for AfPacketTx {}

impl SendFrames for AfPacketTx {
    fn send(&mut self, name: &str, frames: &[TxRef<'_>]) -> Result<SendReport, PortError> {
        send_frames(&self.fd, name, self.ifindex, &mut self.tx, frames)
    }
}

// SAFETY: the raw pointers inside the preallocated iovec/mmsghdr arrays are only meaningful during a
// single recv/send call made by the owning thread; between calls they are stale and never read. The
// ring mapping is owned by the port and only accessed through `&self`/`&mut self`.
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
        AfPacketPort::open_socket(name, Some(""), RING_SLOTS_IDLE)
    }

    /// Like `open`, for a port that carries load from its first moment (the uplink: the frames of
    /// every published port and masqueraded flow): its ring, and the other workers' sockets on it,
    /// start at `RING_SLOTS_BUSY`. A small ring meeting a burst of new connections loses frames
    /// before the large one takes over, and each lost SYN is a connection that waits a second
    /// (bench/compare-nat.sh with 64 clients: 31 overruns on the uplink, 11 connections past the
    /// client's 1 s timeout); one port per daemon is worth its 4 MiB a ring.
    pub fn open_busy(name: &str) -> Result<AfPacketPort, PortError> {
        AfPacketPort::open_socket(name, Some(""), RING_SLOTS_BUSY)
    }

    /// Like `open`, with a claim of its own for `share` (a VLAN on a parent interface: several
    /// networks may each hold one socket on the same interface, one per VLAN).
    pub fn open_shared(name: &str, share: &str) -> Result<AfPacketPort, PortError> {
        AfPacketPort::open_socket(name, Some(share), RING_SLOTS_IDLE)
    }

    /// Opens the socket with a ring of `slots`; `share` names the claim it takes (`None`: none,
    /// a fanout member). Its other workers' sockets start at `RING_SLOTS_MEMBER`, or at `slots`
    /// if that is `RING_SLOTS_BUSY`.
    fn open_socket(
        name: &str,
        share: Option<&str>,
        slots: usize,
    ) -> Result<AfPacketPort, PortError> {
        validate_ifname(name)?;
        let ifindex =
            sys::ifindex(name).ok_or_else(|| PortError::NoSuchInterface(name.to_string()))?;
        let claim = match share {
            Some(share) => Some(InterfaceClaim::acquire_as(name, ifindex, share)?),
            None => None,
        };
        let mut rx = RxSocket::open(name, ifindex, slots)?;
        let group = create_group(rx.fd.as_raw_fd())
            .map_err(|e| PortError::os(name, "creating a PACKET_FANOUT group", e))?;
        rx.member = group.order[0];
        sys::set_up(name).map_err(|e| PortError::os(name, "bringing the interface up", e))?;
        let mac = sys::hw_addr(name).ok();
        let mut port = AfPacketPort::with(
            name,
            ifindex,
            mac,
            rx,
            std::sync::Arc::new(std::sync::Mutex::new(group)),
            claim,
            share.is_none_or(str::is_empty),
        );
        if slots == RING_SLOTS_BUSY {
            port.member_slots = RING_SLOTS_BUSY;
        }
        Ok(port)
    }

    fn with(
        name: &str,
        ifindex: u32,
        mac: Option<MacAddr>,
        rx: RxSocket,
        group: SharedGroup,
        claim: Option<InterfaceClaim>,
        fanout: bool,
    ) -> AfPacketPort {
        AfPacketPort {
            name: name.to_string(),
            ifindex,
            mac,
            rx,
            successor: None,
            group,
            moved: false,
            want_grow: false,
            grow_failed: false,
            copies_seen: 0,
            copy_window: None,
            member_slots: RING_SLOTS_MEMBER,
            lost: 0,
            _claim: claim,
            fanout,
            rx_hdrs: Box::new([[0; VNET_HDR_LEN]; BATCH]),
            rx_copy: [0; BATCH],
            rx_iov: zeroed_iov(),
            rx_msgs: zeroed_msgs(),
            rx_cmsg: Box::new([[0; CMSG_WORDS]; BATCH]),
            tx: TxArea::new(),
        }
    }

    /// Starts replacing the small ring with a large one (see the module docs): a new socket with
    /// the large ring joins the group, the group's program steers this socket's frames to it, and
    /// `recv_batch` reads what the old ring still holds before it reads the new one
    /// (`finish_growing`). Nothing is discarded but the frames the new socket received, as a copy,
    /// before it joined the group. If another member of the group is being replaced, the next
    /// read tries again; if the large ring cannot be had, the port keeps its small one.
    fn grow_ring(&mut self) {
        let group = self.group.clone();
        // Another member may be in the middle of this (which takes grace periods): never wait.
        let mut g = match group.try_lock() {
            Ok(g) => g,
            Err(std::sync::TryLockError::Poisoned(e)) => e.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return,
        };
        if g.swapping {
            return;
        }
        self.want_grow = false;
        if let Err(e) = self.start_growing(&mut g) {
            self.grow_failed = true;
            tracing::warn!(port = %self.name, "growing the receive ring: {e}");
        }
    }

    fn start_growing(&mut self, g: &mut Group) -> Result<(), PortError> {
        let name = self.name.clone();
        let os = |what| {
            let name = name.clone();
            move |e| PortError::os(&name, what, e)
        };
        let (f, old) = (self.rx.fd.as_raw_fd(), self.rx.member);
        if g.serves.is_empty() {
            // From `ret key` to the same steering as a table, which a new member does not change.
            g.serves = g.order.clone();
        }
        // Before a member joins, the table must name members only by their positions: `ret key`
        // counts members, and the value the last replacement steered its socket's frames with
        // (`steer`) means that socket only while the group has as many members as it had then;
        // with one more it names the joining socket, whose first frames are discarded as copies.
        let plain = g.values(None);
        if g.installed != plain {
            set_steering(f, &plain).map_err(os("steering the group"))?;
            g.installed = plain;
        }
        let mut new = RxSocket::open(&self.name, self.ifindex, RING_SLOTS_BUSY)?;
        new.join(g.id)
            .map_err(os("joining the PACKET_FANOUT group"))?;
        new.member = g.new_member();
        g.order.push(new.member);
        // The same program again, for its grace period: after it, no frame reaches the new socket
        // as the copy every bound socket outside a group gets, and the ring holds only such copies.
        let steered = set_steering(f, &g.installed).and_then(|()| {
            new.discard_all();
            let x = g.steer(old).ok_or(std::io::ErrorKind::NotFound)?;
            // After this grace period no frame reaches the old socket any more.
            let steering = g.values(Some((old, x)));
            set_steering(f, &steering)?;
            g.installed = steering;
            Ok(())
        });
        if let Err(e) = steered {
            // Nothing was steered to the new socket: closing it loses nothing.
            g.unlink(new.member);
            drop(new);
            return Err(os("steering the group")(e));
        }
        for m in g.serves.iter_mut().filter(|m| **m == old) {
            *m = new.member;
        }
        g.swapping = true;
        self.successor = Some(new);
        // The poller must wake for the new socket now (`moved_fd`): the old one receives nothing.
        self.moved = true;
        Ok(())
    }

    /// The old ring is empty and receives nothing more: the new socket takes over. Frames the
    /// kernel dropped on the old one are counted; closing it loses nothing.
    fn finish_growing(&mut self) {
        if self.successor.is_none() {
            return;
        }
        let group = self.group.clone();
        // The control plane may hold the group (a member coming or going): never wait for it;
        // the old ring stays empty, and the next read tries again.
        let mut g = match group.try_lock() {
            Ok(g) => g,
            Err(std::sync::TryLockError::Poisoned(e)) => e.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return,
        };
        let Some(new) = self.successor.take() else {
            return;
        };
        let old = mem::replace(&mut self.rx, new);
        let f = old.fd.as_raw_fd();
        self.lost += kernel_drops(f);
        // Frames of COPY slots whose read failed: counted as truncated with their slots.
        drain_queue(f);
        g.unlink(old.member);
        drop(old);
        g.swapping = false;
        tracing::info!(port = %self.name, slots = self.rx.ring.slots, "receive ring grown");
    }

    /// Slots of the receive ring (tests).
    #[cfg(test)]
    fn ring_slots(&self) -> usize {
        self.rx.ring.slots
    }

    fn still_exists(&self) -> bool {
        still_exists(&self.name, self.ifindex)
    }

    /// Reads the full frames of the batch slots listed in `rx_copy[..copies]` (ring slots marked
    /// TP_STATUS_COPY, in ring order) from the socket queue, where the kernel put them in the same
    /// order. Returns the first error met; slots left unread stay flagged truncated.
    fn recv_copies(&mut self, batch: &mut RxBatch, copies: usize) -> Option<std::io::Error> {
        for k in 0..copies {
            let (slot, _) = batch.slot_mut(self.rx_copy[k] as usize);
            self.rx_iov[k][0] = libc::iovec {
                iov_base: self.rx_hdrs[k].as_mut_ptr().cast(),
                iov_len: VNET_HDR_LEN,
            };
            self.rx_iov[k][1] = libc::iovec {
                iov_base: slot.as_mut_ptr().cast(),
                iov_len: slot.len(),
            };
            let m = &mut self.rx_msgs[k];
            m.msg_hdr.msg_iov = self.rx_iov[k].as_mut_ptr();
            m.msg_hdr.msg_iovlen = 2;
            // The kernel shrinks msg_controllen to what it wrote, so it is reset on every call.
            m.msg_hdr.msg_control = self.rx_cmsg[k].as_mut_ptr().cast();
            m.msg_hdr.msg_controllen = mem::size_of::<[u64; CMSG_WORDS]>() as _;
            m.msg_hdr.msg_flags = 0;
            m.msg_len = 0;
        }
        let mut done = 0;
        let mut first_err = None;
        let mut failures = 0;
        while done < copies {
            // SAFETY: messages done..copies point at two iovecs each, into `rx_hdrs` and into the
            // caller's batch slots, all live and exclusively borrowed for the call.
            let rc = unsafe {
                libc::recvmmsg(
                    self.rx.fd.as_raw_fd(),
                    self.rx_msgs.as_mut_ptr().add(done),
                    (copies - done) as libc::c_uint,
                    libc::MSG_DONTWAIT,
                    std::ptr::null_mut(),
                )
            };
            if rc > 0 {
                for k in done..done + rc as usize {
                    let m = &self.rx_msgs[k];
                    let total = m.msg_len as usize;
                    let mut truncated =
                        m.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 || total < VNET_HDR_LEN;
                    let mut vnet = VnetHeader::parse(&self.rx_hdrs[k]);
                    let mut len = total.saturating_sub(VNET_HDR_LEN);
                    // SAFETY: message k was just filled by recvmmsg; its msg_control points into
                    // `rx_cmsg[k]`, live and of at least the msg_controllen the kernel left there.
                    let tag = unsafe { auxdata_tag(&m.msg_hdr) };
                    let (slot, meta) = batch.slot_mut(self.rx_copy[k] as usize);
                    if let Some(tag) = tag.filter(|_| !truncated) {
                        match insert_tag(slot, len, tag) {
                            Some(tagged) => {
                                len = tagged;
                                vnet = vnet_after_tag(vnet);
                            }
                            // No room for the tag (a frame within 4 bytes of the slot size): it
                            // cannot be forwarded as it was on the wire.
                            None => truncated = true,
                        }
                    }
                    meta.len = len;
                    meta.vnet = vnet;
                    meta.truncated = truncated;
                }
                done += rc as usize;
                continue;
            }
            let err = sys::last_err();
            match err.raw_os_error() {
                Some(libc::EINTR) => continue,
                // The kernel queues the copy before publishing the slot, so this does not happen;
                // if it did, the queue is empty and later COPY slots still match their frames.
                Some(libc::EAGAIN) => break,
                _ => {
                    // A pending socket error (ENETDOWN) is reported once, before queued frames;
                    // the frames are still there, so try again.
                    failures += 1;
                    first_err.get_or_insert(err);
                    if failures > 2 {
                        break;
                    }
                }
            }
        }
        first_err
    }

    /// The socket's pending error (`SO_ERROR`, which also clears it), if any.
    fn take_socket_error(&self) -> Option<std::io::Error> {
        let mut value: libc::c_int = 0;
        let mut len = mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: `value` and `len` are valid out-pointers of the stated size.
        let rc = unsafe {
            libc::getsockopt(
                self.rx.fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_ERROR,
                &mut value as *mut libc::c_int as *mut libc::c_void,
                &mut len,
            )
        };
        if rc < 0 {
            Some(sys::last_err())
        } else if value != 0 {
            Some(std::io::Error::from_raw_os_error(value))
        } else {
            None
        }
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

impl AfPacketPort {
    /// Counts a batch's `copies` (frames too large for a small ring's slots) into the current
    /// `COPY_WINDOW`; whether the window has seen `GROW_AFTER_COPIES_PER_WINDOW` of them.
    fn steady_copies(&mut self, copies: usize) -> bool {
        if copies == 0 {
            return false;
        }
        let now = std::time::Instant::now();
        match self.copy_window {
            Some(start) if now.duration_since(start) < COPY_WINDOW => {}
            _ => (self.copy_window, self.copies_seen) = (Some(now), 0),
        }
        self.copies_seen += copies as u32;
        self.copies_seen >= GROW_AFTER_COPIES_PER_WINDOW
    }

    /// Reads frames from `rx`'s ring into batch slots `start..` (up to `BATCH`), and returns where
    /// they end.
    fn read_ring(&mut self, batch: &mut RxBatch, start: usize) -> Result<usize, PortError> {
        let mut n = start;
        let mut copies = 0;
        let ring = &mut self.rx.ring;
        while n < BATCH {
            let i = ring.next;
            let status = ring.status(i).load(Ordering::Acquire);
            if status & TP_STATUS_USER == 0 {
                // Not published yet: its publication calls sk_data_ready, which wakes the poller.
                break;
            }
            let SlotHeader {
                len,
                snaplen,
                mac,
                tag,
            } = ring.header(i, status);
            let (slot, meta) = batch.slot_mut(n);
            if status & TP_STATUS_COPY != 0 {
                // Did not fit the slot: the whole frame waits on the socket queue (read below).
                // Until then the batch slot counts as cut, in case that read fails.
                self.rx_copy[copies] = n as u8;
                copies += 1;
                *meta = RxMeta {
                    filtered: false,
                    len: 0,
                    vnet: VnetHeader::default(),
                    truncated: true,
                };
            } else {
                let mut vnet = if (VNET_HDR_LEN..=ring.frame).contains(&mac) {
                    let h = ring.bytes(i, mac - VNET_HDR_LEN, VNET_HDR_LEN);
                    VnetHeader::parse(h.try_into().expect("vnet header lies within the slot"))
                } else {
                    VnetHeader::default()
                };
                let data = ring.bytes(i, mac, snaplen);
                let (k, tagged) = copy_restoring_tag(slot, data, tag);
                // The frame as it was on the wire: the tag counts when it was put back.
                let wire_len = if tagged {
                    vnet = vnet_after_tag(vnet);
                    len + TAG_LEN
                } else {
                    len
                };
                *meta = RxMeta {
                    filtered: false,
                    len: k,
                    vnet,
                    truncated: k < wire_len,
                };
            }
            ring.release(i);
            ring.next = if i + 1 == ring.slots { 0 } else { i + 1 };
            n += 1;
        }
        // A small ring (small slots) not being replaced already grows when a whole batch left
        // more than a quarter of it waiting, or frames too large for its slots came in bulk (a
        // batch of them) or steadily (many a second): it is too small for this port's load.
        if ring.slots < RING_SLOTS_BUSY && self.successor.is_none() {
            let pressed = n == BATCH && ring.published((ring.next + ring.slots / 4) % ring.slots);
            if pressed || copies >= GROW_AFTER_COPIES || self.steady_copies(copies) {
                self.want_grow = true;
            }
        }
        let err = if copies > 0 {
            self.recv_copies(batch, copies)
        } else if n == start {
            // Nothing in the ring: the wake-up may have been an error (interface down or gone).
            self.take_socket_error()
        } else {
            None
        };
        if let Some(err) = err {
            match self.classify_recv_error(err) {
                Err(PortError::Gone(name)) => return Err(PortError::Gone(name)),
                Err(e) if n == 0 => return Err(e),
                _ => {}
            }
        }
        Ok(n)
    }
}

impl Drop for AfPacketPort {
    fn drop(&mut self) {
        // The sockets close right after, in this order, and the kernel unlinks them the same way.
        let group = self.group.clone();
        let mut g = Group::lock(&group);
        g.unlink(self.rx.member);
        if let Some(new) = &self.successor {
            g.unlink(new.member);
            g.swapping = false;
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
        Some(self.rx.fd.as_raw_fd())
    }

    fn moved_fd(&mut self) -> Option<RawFd> {
        // The successor's from the moment the group steers frames to it: the old socket gets
        // nothing more to wake the poller with, and a quiet port would never be read again.
        let new = self.successor.as_ref().unwrap_or(&self.rx);
        mem::take(&mut self.moved).then(|| new.fd.as_raw_fd())
    }

    fn mac(&self) -> Option<MacAddr> {
        self.mac
    }

    fn take_overruns(&mut self) -> u64 {
        // The successor's drops are read once it is `rx` (the counters are per socket).
        let dropped = kernel_drops(self.rx.fd.as_raw_fd());
        if dropped > 0 && self.rx.ring.slots < RING_SLOTS_BUSY && self.successor.is_none() {
            self.want_grow = true;
        }
        dropped + mem::take(&mut self.lost)
    }

    fn recv_batch(&mut self, batch: &mut RxBatch) -> Result<usize, PortError> {
        let mut n = self.read_ring(batch, 0)?;
        if n < BATCH && self.successor.is_some() {
            // The old ring is empty and stays so (the group steers nothing to it): on to the new.
            self.finish_growing();
            n = self.read_ring(batch, n)?;
        }
        if self.want_grow && !self.grow_failed && self.successor.is_none() {
            self.grow_ring();
        }
        Ok(n)
    }

    fn send_batch(&mut self, frames: &[TxRef<'_>]) -> Result<SendReport, PortError> {
        send_frames(&self.rx.fd, &self.name, self.ifindex, &mut self.tx, frames)
    }

    /// Another socket on the interface in this one's group, appended to it: with the group's
    /// `ret key` program the kernel gives each frame to the member at `key % members`, `key` the
    /// frame's flow's, so one worker reads a flow's frames and sends them on in order. (Steering
    /// by the receiving CPU saved a cross-CPU wake-up, but a sender moving between CPUs, as TCP
    /// does between its own context and the softirq of arriving ACKs, had one flow's frames sent
    /// on by two workers and overtake each other: bench/RESULTS.md.)
    fn receiver(&self) -> Option<Box<dyn Port>> {
        Some(Box::new(self.new_receiver()?))
    }

    fn sender(&self) -> Option<Box<dyn Port>> {
        Some(Box::new(SendOnly {
            name: self.name.clone(),
            kind: PortKind::AfPacket,
            mac: self.mac,
            send: AfPacketTx {
                fd: self.rx.fd.try_clone().ok()?,
                ifindex: self.ifindex,
                tx: TxArea::new(),
            },
        }))
    }
}

impl AfPacketPort {
    /// `Port::receiver`.
    fn new_receiver(&self) -> Option<AfPacketPort> {
        if !self.fanout {
            return None;
        }
        let mut g = Group::lock(&self.group);
        if !g.serves.is_empty() {
            // A ring was replaced already: the program no longer counts members.
            return None;
        }
        let mut rx = RxSocket::open(&self.name, self.ifindex, self.member_slots).ok()?;
        if let Err(e) = rx.join(g.id) {
            tracing::debug!(port = %self.name, "PACKET_FANOUT refused: {e}");
            return None;
        }
        rx.member = g.new_member();
        g.order.push(rx.member);
        Some(AfPacketPort::with(
            &self.name,
            self.ifindex,
            self.mac,
            rx,
            self.group.clone(),
            None,
            true,
        ))
    }
}

/// ENETDOWN is reported both when the link goes down (it may come back) and when the interface is
/// unregistered; only the latter removes the port.
fn still_exists(name: &str, ifindex: u32) -> bool {
    sys::ifindex(name) == Some(ifindex)
}

/// Sends `frames` through `fd` with `sendmmsg`, `BATCH` at a time, and reports what went out.
fn send_frames(
    fd: &OwnedFd,
    name: &str,
    ifindex: u32,
    tx: &mut TxArea,
    frames: &[TxRef<'_>],
) -> Result<SendReport, PortError> {
    let mut report = SendReport::default();
    for chunk in frames.chunks(BATCH) {
        for (i, f) in chunk.iter().enumerate() {
            f.vnet.emit(&mut tx.hdrs[i]);
            tx.iov[i][0] = libc::iovec {
                iov_base: tx.hdrs[i].as_mut_ptr().cast(),
                iov_len: VNET_HDR_LEN,
            };
            tx.iov[i][1] = libc::iovec {
                iov_base: f.data.as_ptr() as *mut libc::c_void,
                iov_len: f.data.len(),
            };
            let m = &mut tx.msgs[i];
            m.msg_hdr.msg_iov = tx.iov[i].as_mut_ptr();
            m.msg_hdr.msg_iovlen = 2;
            m.msg_len = 0;
        }
        let mut start = 0;
        while start < chunk.len() {
            // SAFETY: messages start..chunk.len() point at iovecs into `tx.hdrs` and into frame
            // data borrowed by `frames`, all alive for the call; the kernel only reads them.
            let rc = unsafe {
                libc::sendmmsg(
                    fd.as_raw_fd(),
                    tx.msgs.as_mut_ptr().add(start),
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
                Some(libc::ENETDOWN) if still_exists(name, ifindex) => {
                    report.link_down += chunk.len() - start;
                    break;
                }
                Some(libc::ENETDOWN) | Some(libc::ENXIO) | Some(libc::ENODEV) => {
                    return Err(PortError::Gone(name.to_string()))
                }
                _ => report.failed += 1,
            }
            start += 1;
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ethernet::EthernetFrame;
    use crate::wire::vnet::{flags, gso};

    /// Runs a classic BPF program as the kernel does on a received frame whose `skb->data` is at
    /// the network header (`l3`), with `protocol` and `rxhash` as the ancillary loads give them:
    /// `Err` where the kernel would end the program returning 0 (a load outside the frame).
    fn run_cbpf(
        prog: &[libc::sock_filter],
        l3: &[u8],
        protocol: u16,
        rxhash: u32,
    ) -> Result<u32, usize> {
        let (mut a, mut x, mut m, mut pc) = (0u32, 0u32, [0u32; 16], 0usize);
        let ad = |k: u32| match k.wrapping_sub((-0x1000i32) as u32) {
            0 => protocol as u32,
            32 => rxhash,
            other => panic!("ancillary load {other}"),
        };
        let load = |off: u32, size: usize| -> Option<u32> {
            let off = off as usize;
            let b = l3.get(off..off.checked_add(size)?)?;
            Some(b.iter().fold(0u32, |v, &x| v << 8 | x as u32))
        };
        loop {
            let i = prog[pc];
            let fail = Err(pc);
            pc += 1;
            match i.code {
                LD_IMM => a = i.k,
                LD_LEN => a = l3.len() as u32,
                LD_W_ABS if i.k >= (-0x1000i32) as u32 => a = ad(i.k),
                LD_W_ABS => a = load(i.k, 4).ok_or(pc - 1).or(fail)?,
                LD_H_ABS => a = load(i.k, 2).ok_or(pc - 1).or(fail)?,
                LD_B_ABS => a = load(i.k, 1).ok_or(pc - 1).or(fail)?,
                LD_H_IND => a = load(x.wrapping_add(i.k), 2).ok_or(pc - 1).or(fail)?,
                LDX_B_MSH => x = (load(i.k, 1).ok_or(pc - 1).or(fail)? & 0xf) * 4,
                LDX_MEM => x = m[i.k as usize],
                ST => m[i.k as usize] = a,
                TXA => a = x,
                ADD_K => a = a.wrapping_add(i.k),
                MUL_K => a = a.wrapping_mul(i.k),
                XOR_X => a ^= x,
                RSH_K => a >>= i.k,
                MOD_K => a %= i.k,
                JA => pc += i.k as usize,
                JEQ_K | JGE_K | JGE_X | JSET_K => {
                    let taken = match i.code {
                        JEQ_K => a == i.k,
                        JGE_K => a >= i.k,
                        JGE_X => a >= x,
                        _ => a & i.k != 0,
                    };
                    pc += if taken { i.jt } else { i.jf } as usize;
                }
                RET_A => return Ok(a),
                RET_K => return Ok(i.k),
                other => panic!("opcode {other:#x} at {}", pc - 1),
            }
        }
    }

    /// An IPv4 header (IHL 5) + 4 bytes of ports, of `proto`, `src:sport -> dst:dport`.
    fn ipv4_l4(proto: u8, src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
        let mut p = vec![0x45, 0, 0, 24, 0, 0, 0x40, 0, 64, proto, 0, 0];
        p.extend_from_slice(&src);
        p.extend_from_slice(&dst);
        p.extend_from_slice(&sport.to_be_bytes());
        p.extend_from_slice(&dport.to_be_bytes());
        p
    }

    #[test]
    fn flow_key_never_aborts() {
        let prog = steering_program(&[7, 9]);
        let members = |l3: &[u8], proto: u16| run_cbpf(&prog, l3, proto, 0x1234_5678);
        let udp = ipv4_l4(17, [10, 0, 0, 1], [10, 0, 0, 3], 1000, 53);
        // Every prefix of a packet, every IHL, fragments, other protocols: always a member of
        // the table, never the kernel's abort (position 0, past the table).
        for ihl in 0..16u8 {
            for frag in [0u16, 0x2000, 0x0001] {
                for proto in [6u8, 17, 1] {
                    let mut p = udp.clone();
                    p[0] = 0x40 | ihl;
                    p[6..8].copy_from_slice(&frag.to_be_bytes());
                    p[9] = proto;
                    p.resize(80, 0xab);
                    for len in 0..=p.len() {
                        let r = members(&p[..len], 0x0800);
                        assert!(matches!(r, Ok(7 | 9)), "ihl {ihl} len {len}: {r:?}");
                    }
                }
            }
        }
        assert!(matches!(members(&[], 0x86dd), Ok(7 | 9)));
        assert!(matches!(members(&[1, 2, 3], 0x0806), Ok(7 | 9)));
    }

    #[test]
    fn flow_key_is_one_per_flow_and_direction_blind() {
        let key = |l3: &[u8]| run_cbpf(&flow_key_program_ret(), l3, 0x0800, 0).unwrap();
        let a = [10, 0, 0, 1];
        let b = [10, 0, 0, 3];
        for proto in [6, 17] {
            let there = key(&ipv4_l4(proto, a, b, 40000, 80));
            assert_eq!(there, key(&ipv4_l4(proto, b, a, 80, 40000)));
            assert_ne!(there, key(&ipv4_l4(proto, a, b, 40001, 80)), "ports count");
        }
        // The growth tests' flows (`Sender::send_flow`): of two members, an even flow goes to
        // the first and an odd one to the second.
        for f in 0..8u16 {
            let k = key(&ipv4_l4(17, a, b, flow_port(f), 1000));
            assert_eq!(k % 2, u32::from(f % 2));
        }
        // A fragment keys by its addresses only, so all of a datagram's fragments go together.
        let mut frag = ipv4_l4(17, a, b, 40000, 80);
        frag[6] = 0x20;
        let mut later = ipv4_l4(17, a, b, 1, 2);
        later[7] = 0x10;
        assert_eq!(key(&frag), key(&later));
        // Not IPv4: the kernel's hash.
        assert_eq!(run_cbpf(&flow_key_program_ret(), &[], 0x86dd, 99), Ok(99));
    }

    /// `flow_key_program` returning its key.
    fn flow_key_program_ret() -> Vec<libc::sock_filter> {
        steering_program(&[])
    }

    /// The source port of the tests' flow `f` (10.0.0.1:port -> 10.0.0.3:1000, `Sender`): of two
    /// members an even flow goes to the first and an odd one to the second; each flow its own port.
    fn flow_port(f: u16) -> u16 {
        let key = |port: u16| {
            let l3 = ipv4_l4(17, [10, 0, 0, 1], [10, 0, 0, 3], port, 1000);
            run_cbpf(&flow_key_program_ret(), &l3, 0x0800, 0).unwrap()
        };
        (1000u16..)
            .filter(|&p| key(p) % 2 == u32::from(f % 2))
            .nth(usize::from(f / 2))
            .unwrap()
    }

    /// The connections one host opens to one server (Linux gives `connect()` even source ports)
    /// spread evenly over any number of members, and so do a host's to many servers: before the
    /// key was multiplied, its low bit was the same for all of them and one of two workers got
    /// every connection.
    #[test]
    fn one_hosts_connections_spread_over_the_members() {
        let prog = flow_key_program_ret();
        let key = |src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16| {
            run_cbpf(&prog, &ipv4_l4(6, src, dst, sport, dport), 0x0800, 0).unwrap()
        };
        let to_one: Vec<u32> = (0..1200)
            .map(|i| key([172, 17, 0, 3], [172, 17, 0, 2], 32768 + 2 * i, 80))
            .collect();
        let to_many: Vec<u32> = (0..1200u16)
            .map(|i| {
                let [hi, lo] = (i % 200).to_be_bytes();
                key([10, 0, 0, 7], [10, 1, hi, lo], 40000 + 2 * i, 443)
            })
            .collect();
        for (what, keys) in [("one server", &to_one), ("many servers", &to_many)] {
            for members in 2..=8u32 {
                let mut got = vec![0u32; members as usize];
                for k in keys {
                    got[(k % members) as usize] += 1;
                }
                let fair = keys.len() as u32 / members;
                assert!(
                    got.iter().all(|&g| g > fair * 3 / 4 && g < fair * 5 / 4),
                    "{what}, {members} members: {got:?}"
                );
            }
        }
    }

    // Untagged IPv4 frame head: dst, src, ethertype 0x0800, then payload bytes 0x45, 1, 2, 3.
    const FRAME: [u8; 18] = [
        0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01, 0x08, 0x00, 0x45, 1, 2, 3,
    ];
    const TAG10: StrippedTag = StrippedTag {
        tpid: 0x8100,
        tci: 0xa00a, // PCP 5, VLAN 10
    };

    fn tagged_frame(tag: StrippedTag) -> Vec<u8> {
        let mut v = FRAME[..12].to_vec();
        v.extend_from_slice(&tag.bytes());
        v.extend_from_slice(&FRAME[12..]);
        v
    }

    #[test]
    fn reported_follows_the_kernel_rule() {
        // No flag, TCI 0: untagged.
        assert_eq!(StrippedTag::reported(TP_STATUS_USER, 0, 0), None);
        // VLAN_VALID with TCI 0 is a priority tag of VLAN 0: still a tag.
        assert_eq!(
            StrippedTag::reported(TP_STATUS_USER | TP_STATUS_VLAN_VALID, 0, 0),
            Some(StrippedTag {
                tpid: 0x8100,
                tci: 0
            })
        );
        // Old kernels: no flags, but a TCI.
        assert_eq!(
            StrippedTag::reported(TP_STATUS_USER, 10, 0),
            Some(StrippedTag {
                tpid: 0x8100,
                tci: 10
            })
        );
        // The TPID counts only when the kernel flags it.
        let both = TP_STATUS_VLAN_VALID | TP_STATUS_VLAN_TPID_VALID;
        assert_eq!(
            StrippedTag::reported(both, 20, 0x88a8),
            Some(StrippedTag {
                tpid: 0x88a8,
                tci: 20
            })
        );
        assert_eq!(
            StrippedTag::reported(TP_STATUS_VLAN_VALID, 20, 0x88a8).map(|t| t.tpid),
            Some(0x8100)
        );
    }

    #[test]
    fn copy_puts_the_tag_after_the_mac_addresses() {
        let mut dst = [0u8; 64];
        let (k, tagged) = copy_restoring_tag(&mut dst, &FRAME, Some(TAG10));
        assert!(tagged);
        assert_eq!(&dst[..k], &tagged_frame(TAG10)[..]);
        assert_eq!(&dst[12..16], &[0x81, 0x00, 0xa0, 0x0a]);
        let eth = EthernetFrame::new_checked(&dst[..k]).unwrap();
        let tag = eth.vlan_tag().unwrap();
        assert_eq!((tag.vid, tag.pcp), (10, 5));
        assert_eq!(eth.inner_ethertype(), 0x0800);
        assert_eq!(eth.l3_offset(), 18);

        // Without a tag it is a plain copy.
        let mut dst = [0u8; 64];
        let (k, tagged) = copy_restoring_tag(&mut dst, &FRAME, None);
        assert!(!tagged);
        assert_eq!(&dst[..k], &FRAME[..]);

        // Clamped to the destination, the tag still first.
        let mut small = [0u8; 17];
        assert_eq!(
            copy_restoring_tag(&mut small, &FRAME, Some(TAG10)),
            (17, true)
        );
        assert_eq!(&small[..], &tagged_frame(TAG10)[..17]);

        // Too short to hold MAC addresses: copied as it is, no tag.
        let mut dst = [0u8; 64];
        assert_eq!(
            copy_restoring_tag(&mut dst, &FRAME[..11], Some(TAG10)),
            (11, false)
        );
    }

    #[test]
    fn insert_in_place_matches_the_copy() {
        let mut buf = [0u8; 64];
        buf[..FRAME.len()].copy_from_slice(&FRAME);
        let n = insert_tag(&mut buf, FRAME.len(), TAG10).unwrap();
        assert_eq!(&buf[..n], &tagged_frame(TAG10)[..]);

        // Not idempotent by design: a second call stacks a second tag in front (QinQ whose outer
        // tag was stripped: the outer one goes back in front of the inner one).
        let outer = StrippedTag {
            tpid: 0x88a8,
            tci: 100,
        };
        let n2 = insert_tag(&mut buf, n, outer).unwrap();
        assert_eq!(n2, FRAME.len() + 8);
        assert_eq!(&buf[12..20], &[0x88, 0xa8, 0, 100, 0x81, 0x00, 0xa0, 0x0a]);
        assert_eq!(&buf[20..n2], &FRAME[12..]);

        // No room for 4 more bytes, or no MAC addresses: refused, buffer untouched.
        let mut tight = FRAME;
        assert_eq!(insert_tag(&mut tight, FRAME.len(), TAG10), None);
        assert_eq!(tight, FRAME);
        let mut buf = [7u8; 64];
        assert_eq!(insert_tag(&mut buf, 11, TAG10), None);
        assert_eq!(buf, [7u8; 64]);
        assert_eq!(insert_tag(&mut buf, 65, TAG10), None);
    }

    #[test]
    fn vnet_offsets_move_with_the_tag() {
        // A TCPv4 GSO super-frame: checksum from the TCP header at 14 + 20.
        let gso = VnetHeader {
            flags: flags::NEEDS_CSUM,
            gso_type: gso::TCPV4,
            hdr_len: 66,
            gso_size: 1448,
            csum_start: 34,
            csum_offset: 16,
        };
        let moved = vnet_after_tag(gso);
        assert_eq!((moved.csum_start, moved.hdr_len), (38, 70));
        assert_eq!(
            (
                moved.flags,
                moved.gso_type,
                moved.gso_size,
                moved.csum_offset
            ),
            (gso.flags, gso.gso_type, gso.gso_size, gso.csum_offset)
        );
        // csum_start means nothing without NEEDS_CSUM, hdr_len 0 means "not given": both stay.
        let plain = VnetHeader {
            flags: flags::DATA_VALID,
            csum_start: 34,
            ..VnetHeader::default()
        };
        assert_eq!(vnet_after_tag(plain), plain);
        assert_eq!(vnet_after_tag(VnetHeader::default()), VnetHeader::default());
    }

    #[test]
    fn auxdata_cmsg_is_parsed() {
        let mut ctl = [0u64; CMSG_WORDS];
        // SAFETY: msghdr is plain old data; all-zero is valid.
        let mut msg: libc::msghdr = unsafe { mem::zeroed() };
        msg.msg_control = ctl.as_mut_ptr().cast();
        // SAFETY: CMSG_SPACE only computes a length.
        msg.msg_controllen = unsafe { libc::CMSG_SPACE(AUX_LEN as u32) } as _;
        assert!(msg.msg_controllen <= mem::size_of_val(&ctl) as _);
        let mut aux = [0u8; AUX_LEN];
        aux[AUX_STATUS..4].copy_from_slice(
            &(TP_STATUS_USER | TP_STATUS_VLAN_VALID | TP_STATUS_VLAN_TPID_VALID).to_ne_bytes(),
        );
        aux[AUX_VLAN_TCI..AUX_VLAN_TCI + 2].copy_from_slice(&0xa00au16.to_ne_bytes());
        aux[AUX_VLAN_TPID..AUX_VLAN_TPID + 2].copy_from_slice(&0x8100u16.to_ne_bytes());
        // SAFETY: msg_control points at `ctl`, large enough for one cmsg of AUX_LEN bytes (checked
        // above); the header and data pointers stay inside it.
        unsafe {
            let c = libc::CMSG_FIRSTHDR(&msg);
            assert!(!c.is_null());
            (*c).cmsg_level = libc::SOL_PACKET;
            (*c).cmsg_type = PACKET_AUXDATA;
            (*c).cmsg_len = libc::CMSG_LEN(AUX_LEN as u32) as _;
            std::ptr::copy_nonoverlapping(aux.as_ptr(), libc::CMSG_DATA(c), AUX_LEN);
        }
        // SAFETY: `msg` describes the live buffer `ctl` filled above.
        assert_eq!(unsafe { auxdata_tag(&msg) }, Some(TAG10));
        // No control message at all: no tag.
        msg.msg_controllen = 0;
        // SAFETY: as above; an empty control area.
        assert_eq!(unsafe { auxdata_tag(&msg) }, None);
    }

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

    /// `ip ARGS` in this thread's network namespace (a child inherits the thread's namespace).
    fn ip(args: &str) {
        let ok = std::process::Command::new("ip")
            .args(args.split_whitespace())
            .status()
            .unwrap()
            .success();
        assert!(ok, "ip {args}");
    }

    /// No IPv6 in this thread's namespace, so the kernel sends nothing of its own (neighbour
    /// discovery, MLD) between the test's frames.
    fn quiet_namespace() {
        let ok = std::process::Command::new("sysctl")
            .args(["-qw", "net.ipv6.conf.default.disable_ipv6=1"])
            .status()
            .unwrap()
            .success();
        assert!(ok, "sysctl");
    }

    /// A raw socket that sends frames out of `ifname`.
    struct Sender {
        fd: OwnedFd,
        ifindex: u32,
    }

    impl Sender {
        fn on(ifname: &str) -> Sender {
            // SAFETY: plain socket(2); checked below.
            let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
            assert!(raw >= 0, "AF_PACKET socket: {}", sys::last_err());
            // SAFETY: `raw` is a fresh descriptor we own.
            let fd = unsafe { OwnedFd::from_raw_fd(raw) };
            // Past the qdisc, which drops silently until the kernel has activated the new link.
            sys::setsockopt_int(raw, libc::SOL_PACKET, PACKET_QDISC_BYPASS, 1).unwrap();
            Sender {
                fd,
                ifindex: sys::ifindex(ifname).unwrap(),
            }
        }

        /// Sends `n` 64-byte frames numbered `first..first + n` (in their payload), of flow 0.
        fn send(&self, first: u32, n: u32) {
            self.send_flow(0, first, n);
        }

        /// Sends `n` 64-byte IPv4/UDP frames of one flow (10.0.0.1:`flow_port(flow)` ->
        /// 10.0.0.3:1000), numbered `first..first + n`: of two members, an even flow goes to the
        /// first and an odd one to the second.
        fn send_flow(&self, flow: u16, first: u32, n: u32) {
            self.send_sized(flow, first, n, 64);
        }

        /// As `send_flow`, with frames of `len` bytes (the rest of the payload zeros).
        fn send_sized(&self, flow: u16, first: u32, n: u32, len: usize) {
            let sport = flow_port(flow);
            for k in first..first + n {
                let mut f = FRAME[..14].to_vec();
                f.extend_from_slice(&[0x45, 0, 0, 50, 0, 0, 0, 0, 64, 17, 0, 0]);
                f.extend_from_slice(&[10, 0, 0, 1, 10, 0, 0, 3]);
                f.extend_from_slice(&sport.to_be_bytes());
                f.extend_from_slice(&1000u16.to_be_bytes());
                f.extend_from_slice(&[0, 30, 0, 0]);
                f.extend_from_slice(&k.to_be_bytes());
                f.resize(len, 0);
                // SAFETY: sockaddr_ll is plain old data.
                let mut sll: libc::sockaddr_ll = unsafe { mem::zeroed() };
                sll.sll_family = libc::AF_PACKET as libc::c_ushort;
                sll.sll_ifindex = self.ifindex as libc::c_int;
                sll.sll_halen = 6;
                // SAFETY: `f` and `sll` are valid for the call and their sizes are passed.
                let rc = unsafe {
                    libc::sendto(
                        self.fd.as_raw_fd(),
                        f.as_ptr().cast(),
                        f.len(),
                        0,
                        &sll as *const _ as *const libc::sockaddr,
                        mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
                    )
                };
                assert_eq!(rc, len as isize, "send: {}", sys::last_err());
            }
        }
    }

    /// Waits (up to 5 s) until the kernel has put `n` frames in the port's ring: a veth hands frames
    /// over through the receive backlog, which may run after `sendto` returns.
    fn wait_queued(port: &AfPacketPort, n: usize) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let queued = || {
            (0..port.rx.ring.slots)
                .filter(|&i| port.rx.ring.published(i))
                .count()
        };
        while queued() < n && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert_eq!(queued(), n, "frames in the ring");
    }

    /// The number `Sender::send` put in a frame.
    fn frame_number(f: &[u8]) -> u32 {
        u32::from_be_bytes(f[42..46].try_into().unwrap())
    }

    /// Reads everything the port has (`Sender::send`'s frames), returning their numbers in order.
    fn read_all(port: &mut AfPacketPort, batch: &mut RxBatch) -> Vec<u32> {
        read_sized(port, batch, 64)
    }

    #[test]
    fn the_ring_starts_small_and_grows_once_under_load_without_losing_what_it_read() {
        in_fresh_netns(|| {
            quiet_namespace();
            ip("link add syring0 type veth peer name syring1");
            ip("link set syring1 up");
            let mut port = AfPacketPort::open("syring0").unwrap();
            let tx = Sender::on("syring1");
            let mut batch = RxBatch::new();
            assert_eq!(
                port.ring_slots(),
                RING_SLOTS_IDLE,
                "an idle port has a small ring"
            );
            // A trickle keeps it small.
            tx.send(0, 20);
            wait_queued(&port, 20);
            assert_eq!(read_all(&mut port, &mut batch), (0..20).collect::<Vec<_>>());
            assert_eq!(port.ring_slots(), RING_SLOTS_IDLE);
            // A burst that fills most of it while the switch is busy elsewhere: every frame is
            // still read, in order, and the ring grows once the reads have emptied it.
            let most = RING_SLOTS_IDLE as u32 * 3 / 4;
            tx.send(20, most);
            wait_queued(&port, most as usize);
            assert_eq!(
                read_all(&mut port, &mut batch),
                (20..20 + most).collect::<Vec<_>>()
            );
            assert_eq!(port.ring_slots(), RING_SLOTS_BUSY);
            assert_eq!(
                port.take_overruns(),
                0,
                "nothing lost by growing an empty ring"
            );
            // The large ring takes a burst the small one could not hold.
            let more = RING_SLOTS_IDLE as u32 + 500;
            tx.send(10_000, more);
            wait_queued(&port, more as usize);
            assert_eq!(
                read_all(&mut port, &mut batch),
                (10_000..10_000 + more).collect::<Vec<_>>()
            );
            assert_eq!(port.take_overruns(), 0);
        });
    }

    /// Reads everything the port has, frames of `len` bytes that must arrive whole, returning their
    /// numbers in order.
    fn read_sized(port: &mut AfPacketPort, batch: &mut RxBatch, len: usize) -> Vec<u32> {
        let mut seen = Vec::new();
        loop {
            let n = port.recv_batch(batch).unwrap();
            for i in 0..n {
                let meta = batch.meta(i);
                assert!(!meta.truncated, "frame {i} of the batch cut");
                assert_eq!(batch.frame(i).len(), len);
                seen.push(frame_number(batch.frame(i)));
            }
            if n < BATCH {
                return seen;
            }
        }
    }

    /// An idle port's small slots hold small frames; a larger one comes whole through the socket
    /// queue, and a batch of them (bulk traffic) grows the ring to slots that hold them.
    #[test]
    fn frames_too_large_for_a_small_ring_arrive_whole_and_a_batch_of_them_grows_it() {
        in_fresh_netns(|| {
            quiet_namespace();
            ip("link add syringc type veth peer name syringd");
            ip("link set syringd up");
            let mut port = AfPacketPort::open("syringc").unwrap();
            let tx = Sender::on("syringd");
            let mut batch = RxBatch::new();
            let large = 1000;
            assert!(large > RING_SMALL_FRAME_SIZE && large < RING_FRAME_SIZE);
            // A few: read whole, and the ring stays small.
            let few = GROW_AFTER_COPIES as u32 - 1;
            tx.send_sized(0, 0, few, large);
            wait_queued(&port, few as usize);
            assert_eq!(
                read_sized(&mut port, &mut batch, large),
                (0..few).collect::<Vec<_>>()
            );
            assert_eq!(port.ring_slots(), RING_SLOTS_IDLE);
            // A batch of them: read whole, and the ring grows.
            let bulk = 2 * GROW_AFTER_COPIES as u32;
            tx.send_sized(0, 100, bulk, large);
            wait_queued(&port, bulk as usize);
            assert_eq!(
                read_sized(&mut port, &mut batch, large),
                (100..100 + bulk).collect::<Vec<_>>()
            );
            // The next read finds the old ring empty and moves on to the new one.
            assert_eq!(port.recv_batch(&mut batch).unwrap(), 0);
            assert_eq!(port.ring_slots(), RING_SLOTS_BUSY);
            // From then on they fit the slots (no socket queue), a burst of them too.
            tx.send_sized(0, 1_000, 1_500, large);
            wait_queued(&port, 1_500);
            assert_eq!(
                read_sized(&mut port, &mut batch, large),
                (1_000..2_500).collect::<Vec<_>>()
            );
            assert_eq!(port.take_overruns(), 0);
        });
    }

    /// Larger frames one a batch, as request-response traffic sends them, grow the ring once 32
    /// have come within a second: such a port should not pay the copy path's latency.
    #[test]
    fn larger_frames_one_at_a_time_but_steadily_grow_the_ring() {
        in_fresh_netns(|| {
            quiet_namespace();
            ip("link add syringe type veth peer name syringf");
            ip("link set syringf up");
            let mut port = AfPacketPort::open("syringe").unwrap();
            let tx = Sender::on("syringf");
            let mut batch = RxBatch::new();
            let steady = GROW_AFTER_COPIES_PER_WINDOW;
            for k in 0..steady {
                assert_eq!(port.ring_slots(), RING_SLOTS_IDLE, "grown after {k}");
                tx.send_sized(0, k, 1, 1000);
                wait_queued(&port, 1);
                assert_eq!(read_sized(&mut port, &mut batch, 1000), vec![k]);
            }
            // The next read finds the old ring empty and moves on to the new one.
            assert_eq!(port.recv_batch(&mut batch).unwrap(), 0);
            assert_eq!(port.ring_slots(), RING_SLOTS_BUSY);
            assert_eq!(port.take_overruns(), 0);
        });
    }

    /// A ring that starts growing in a read that emptied it, then traffic stops: the next frame
    /// reaches only the new socket, so the poller must be told of it at once, or a quiet port is
    /// never read again (an engine sleeping in `epoll_wait` on the old descriptor forwarded nothing
    /// more from a port that grew between two pings).
    #[test]
    fn the_new_socket_wakes_the_poller_as_soon_as_the_ring_starts_growing() {
        in_fresh_netns(|| {
            quiet_namespace();
            ip("link add syringg type veth peer name syringh");
            ip("link set syringh up");
            let mut port = AfPacketPort::open("syringg").unwrap();
            let tx = Sender::on("syringh");
            let mut batch = RxBatch::new();
            assert_eq!(port.moved_fd(), None);
            // One batch of larger frames starts the growth and leaves the old ring empty.
            let bulk = GROW_AFTER_COPIES as u32;
            tx.send_sized(0, 0, bulk, 1000);
            wait_queued(&port, bulk as usize);
            assert_eq!(
                read_sized(&mut port, &mut batch, 1000),
                (0..bulk).collect::<Vec<_>>()
            );
            let fd = port.moved_fd().expect("the new socket to poll");
            assert_ne!(Some(fd), port.raw_fd(), "a new descriptor");
            assert_eq!(port.moved_fd(), None, "told once");
            // Traffic resumes with one frame: the new descriptor wakes the poller, and the read
            // it leads to finds the frame.
            tx.send(100, 1);
            let mut pfd = libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd for the call.
            let ready = unsafe { libc::poll(&mut pfd, 1, 2000) };
            assert_eq!(ready, 1, "the new socket is readable");
            assert_eq!(read_all(&mut port, &mut batch), vec![100]);
            assert_eq!(port.ring_slots(), RING_SLOTS_BUSY);
            assert_eq!(port.raw_fd(), Some(fd));
            assert_eq!(port.moved_fd(), None, "nothing more to register");
        });
    }

    /// Sends frames `first..first + n` of `flow` while `port` is read, slowly
    /// at first (so that its small ring overflows and grows), and returns the frame numbers read,
    /// in order, and the drops the port counted. `others` are read too (fanout members).
    fn flood(
        ifname: &'static str,
        flow: u16,
        first: u32,
        n: u32,
        port: &mut AfPacketPort,
        others: &mut [&mut dyn Port],
    ) -> (Vec<u32>, u64) {
        let sender = std::thread::spawn(move || {
            Sender::on(ifname).send_flow(flow, first, n);
        });
        let mut batch = RxBatch::new();
        let (mut seen, mut dropped) = (Vec::new(), 0);
        // Nothing read until the small ring is full, so that it overflows whatever the sender's
        // pace: then it grows under load.
        if port.ring_slots() < RING_SLOTS_BUSY {
            wait_queued(port, port.ring_slots());
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while seen.len() as u64 + dropped < n as u64 && std::time::Instant::now() < deadline {
            if port.ring_slots() < RING_SLOTS_BUSY {
                // Slow while the ring is small.
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            seen.extend(read_all(port, &mut batch));
            dropped += port.take_overruns();
            for other in others.iter_mut() {
                let k = other.recv_batch(&mut batch).unwrap();
                seen.extend((0..k).map(|i| frame_number(batch.frame(i))));
                dropped += other.take_overruns();
            }
        }
        sender.join().unwrap();
        (seen, dropped)
    }

    #[test]
    fn frames_arriving_while_the_ring_grows_are_read_once_in_order_or_counted() {
        in_fresh_netns(|| {
            quiet_namespace();
            ip("link add syring6 type veth peer name syring7");
            ip("link set syring7 up");
            let mut port = AfPacketPort::open("syring6").unwrap();
            let n = 30_000;
            let (seen, dropped) = flood("syring7", 0, 0, n, &mut port, &mut []);
            assert_eq!(port.ring_slots(), RING_SLOTS_BUSY);
            assert!(
                seen.windows(2).all(|w| w[0] < w[1]),
                "every frame once, in order"
            );
            assert_eq!(seen.len() as u64 + dropped, n as u64, "{dropped} dropped");
            assert!(
                dropped > 0,
                "the small ring overflowed, so it grew under load"
            );
        });
    }

    #[test]
    fn fanout_members_grow_in_turn_and_lose_nothing_silently() {
        in_fresh_netns(|| {
            quiet_namespace();
            ip("link add syring4 type veth peer name syring5");
            ip("link set syring5 up");
            let mut port = AfPacketPort::open("syring4").unwrap();
            // A second socket in the group, as a second engine worker has. Frames of an even flow
            // go to the group's first member, `port`, and of an odd one to `member`.
            let mut member = port.new_receiver().expect("fanout group");
            let n = 20_000;
            let (seen, dropped) = flood("syring5", 0, 0, n, &mut port, &mut [&mut member]);
            assert_eq!(port.ring_slots(), RING_SLOTS_BUSY);
            assert_eq!(member.ring_slots(), RING_SLOTS_MEMBER);
            assert!(seen.windows(2).all(|w| w[0] < w[1]));
            assert_eq!(seen.len() as u64 + dropped, n as u64, "{dropped} dropped");
            // The new socket serves flow 0 in the old one's place: the member still gets nothing.
            let mut batch = RxBatch::new();
            Sender::on("syring5").send_flow(0, 100_000, 100);
            wait_queued(&port, 100);
            assert_eq!(
                read_all(&mut port, &mut batch),
                (100_000..100_100).collect::<Vec<_>>()
            );
            assert_eq!(member.recv_batch(&mut batch).unwrap(), 0);
            // Now the member's turn, with flow 1 (after the first swap moved sockets around in the
            // kernel's list), while flow 0 goes on to the port: the member's new socket joins the
            // group when the program still holds the value that steered flow 0 to the port's new
            // socket through its replacement, which only the old number of members maps right.
            let (started, start) = std::sync::mpsc::channel();
            let other = std::thread::spawn(move || {
                let tx = Sender::on("syring5");
                for k in 0..2_000 {
                    tx.send_flow(0, 400_000 + k * 10, 10);
                    if k == 0 {
                        started.send(()).unwrap();
                    }
                    std::thread::sleep(std::time::Duration::from_micros(100));
                }
            });
            start.recv().unwrap();
            let (mut seen, mut dropped) =
                flood("syring5", 1, 200_000, n, &mut member, &mut [&mut port]);
            other.join().unwrap();
            std::thread::sleep(std::time::Duration::from_millis(100));
            seen.extend(read_all(&mut port, &mut batch));
            seen.extend(read_all(&mut member, &mut batch));
            dropped += port.take_overruns() + member.take_overruns();
            assert_eq!(member.ring_slots(), RING_SLOTS_BUSY);
            let (flow1, flow0): (Vec<u32>, Vec<u32>) = seen.iter().partition(|&&f| f < 400_000);
            assert!(flow1.windows(2).all(|w| w[0] < w[1]));
            assert!(flow0.windows(2).all(|w| w[0] < w[1]));
            assert_eq!(
                seen.len() as u64 + dropped,
                n as u64 + 20_000,
                "{} of flow 1 and {} of flow 0 read, {dropped} dropped",
                flow1.len(),
                flow0.len()
            );
            Sender::on("syring5").send_flow(0, 300_000, 100);
            wait_queued(&port, 100);
            assert_eq!(read_all(&mut port, &mut batch).len(), 100);
            assert_eq!(member.recv_batch(&mut batch).unwrap(), 0);
        });
    }

    /// As two engine workers do: each member read by its own thread while both rings grow at
    /// once, each flow sent from both CPUs at the same time (so the kernel writes a ring from two
    /// CPUs at once). Every frame is read exactly once or counted as a kernel drop.
    #[test]
    fn members_growing_at_once_on_two_threads_lose_nothing_silently() {
        in_fresh_netns(|| {
            quiet_namespace();
            ip("link add syring8 type veth peer name syring9");
            ip("link set syring9 up");
            let port = AfPacketPort::open("syring8").unwrap();
            let member = port.new_receiver().expect("fanout group");
            let n = 25_000u32;
            let read = |mut p: AfPacketPort| {
                std::thread::spawn(move || {
                    let mut batch = RxBatch::new();
                    let (mut seen, mut dropped) = (Vec::new(), 0u64);
                    let start = std::time::Instant::now();
                    let deadline = start + std::time::Duration::from_secs(30);
                    while seen.len() as u64 + dropped < 2 * n as u64
                        && std::time::Instant::now() < deadline
                    {
                        if start.elapsed() < std::time::Duration::from_millis(100) {
                            // Slow at first, so that the small rings overflow and grow.
                            std::thread::sleep(std::time::Duration::from_millis(2));
                        }
                        let k = p.recv_batch(&mut batch).unwrap();
                        seen.extend((0..k).map(|i| frame_number(batch.frame(i))));
                        dropped += p.take_overruns();
                    }
                    // Late arrivals would show as too many.
                    std::thread::sleep(std::time::Duration::from_millis(200));
                    loop {
                        let k = p.recv_batch(&mut batch).unwrap();
                        seen.extend((0..k).map(|i| frame_number(batch.frame(i))));
                        dropped += p.take_overruns();
                        if k == 0 {
                            break;
                        }
                    }
                    (seen, dropped, p.ring_slots())
                })
            };
            let readers = [read(port), read(member)];
            let senders: Vec<_> = (0..4u32)
                .map(|s| {
                    std::thread::spawn(move || {
                        // Flows 0 and 1 (one per member), each from two threads.
                        Sender::on("syring9").send_flow((s % 2) as u16, s * n, n);
                    })
                })
                .collect();
            for s in senders {
                s.join().unwrap();
            }
            for (i, r) in readers.into_iter().enumerate() {
                let (mut seen, dropped, slots) = r.join().unwrap();
                assert_eq!(slots, RING_SLOTS_BUSY, "member {i} grew");
                let read = seen.len();
                seen.sort_unstable();
                seen.dedup();
                assert_eq!(seen.len(), read, "member {i}: a frame read twice");
                assert!(
                    seen.iter().all(|&f| (f / n) % 2 == seen[0] / n % 2),
                    "member {i} got both flows"
                );
                assert_eq!(
                    read as u64 + dropped,
                    2 * n as u64,
                    "member {i}: {read} read, {dropped} dropped"
                );
            }
        });
    }

    /// A port opened busy (the uplink) takes a burst larger than a small ring from the start,
    /// and so do the other workers' sockets on it.
    #[test]
    fn a_busy_port_takes_a_burst_from_the_start() {
        in_fresh_netns(|| {
            quiet_namespace();
            ip("link add syringa type veth peer name syringb");
            ip("link set syringb up");
            let mut port = AfPacketPort::open_busy("syringa").unwrap();
            let member = port.new_receiver().expect("fanout group");
            assert_eq!(port.ring_slots(), RING_SLOTS_BUSY);
            assert_eq!(member.ring_slots(), RING_SLOTS_BUSY);
            // More than a small ring holds, unread (one flow: all to `port`).
            let n = RING_SLOTS_BUSY * 3 / 4;
            assert!(n > RING_SLOTS_IDLE);
            Sender::on("syringb").send(0, n as u32);
            wait_queued(&port, n);
            let mut batch = RxBatch::new();
            assert_eq!(
                read_all(&mut port, &mut batch),
                (0..n as u32).collect::<Vec<_>>()
            );
            assert_eq!(port.take_overruns(), 0);
        });
    }

    #[test]
    fn kernel_drops_are_counted_and_grow_the_ring() {
        in_fresh_netns(|| {
            quiet_namespace();
            ip("link add syring2 type veth peer name syring3");
            ip("link set syring3 up");
            let mut port = AfPacketPort::open("syring2").unwrap();
            let tx = Sender::on("syring3");
            let mut batch = RxBatch::new();
            // More than the small ring holds, unread: the kernel drops the rest.
            tx.send(0, RING_SLOTS_IDLE as u32 + 50);
            wait_queued(&port, RING_SLOTS_IDLE);
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            let mut dropped = port.take_overruns();
            while dropped < 50 && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(1));
                dropped += port.take_overruns();
            }
            assert_eq!(dropped, 50);
            let seen = read_all(&mut port, &mut batch);
            assert_eq!(seen, (0..RING_SLOTS_IDLE as u32).collect::<Vec<_>>());
            assert_eq!(port.ring_slots(), RING_SLOTS_BUSY);
            tx.send(1000, 900);
            wait_queued(&port, 900);
            assert_eq!(read_all(&mut port, &mut batch).len(), 900);
            assert_eq!(port.take_overruns(), 0);
        });
    }
}
