//! Transmit path experiment (issue 17, item 3): sends frames through an AF_PACKET socket as the
//! engine does (`sendmmsg`, a `virtio_net_hdr` + frame per message, `PACKET_QDISC_BYPASS`), or
//! through a `PACKET_TX_RING` (frames copied into ring slots, one `send` per batch, the kernel
//! attaching ring pages to the skb instead of copying), and reports frames/s for a fixed time.
//! `bench/txpath.sh` runs both side by side against a veth whose peer namespace drops or delivers.
//!
//! Usage: `txpath send IFNAME sendmmsg|txring SIZE SECONDS DST_MAC` (SIZE 60..65000; above 1514 the
//! frame is a UDP GSO super-frame the kernel segments) or `txpath sink PORT SECONDS` (counts UDP
//! datagrams received).

use std::io::Write;
use std::mem;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

const BATCH: usize = 32;
const VNET_HDR_LEN: usize = 10;
const PACKET_VNET_HDR: libc::c_int = 15;
const PACKET_VERSION: libc::c_int = 10;
const PACKET_TX_RING: libc::c_int = 13;
const PACKET_QDISC_BYPASS: libc::c_int = 20;
const TPACKET_V2: libc::c_int = 1;
/// `struct tpacket2_hdr` is 32 bytes; a V2 TX slot's data starts at TPACKET2_HDRLEN -
/// sizeof(sockaddr_ll) = 32.
const TX_DATA_OFF: usize = 32;
const TP_STATUS_AVAILABLE: u32 = 0;
const TP_STATUS_SEND_REQUEST: u32 = 1;
const TP_STATUS_WRONG_FORMAT: u32 = 4;

fn die(what: &str) -> ! {
    eprintln!("txpath: {what}: {}", std::io::Error::last_os_error());
    std::process::exit(1)
}

fn setopt(fd: libc::c_int, level: libc::c_int, opt: libc::c_int, val: &impl Sized, what: &str) {
    // SAFETY: `val` is a live value of the option's type; the kernel copies size_of_val bytes.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            opt,
            val as *const _ as *const libc::c_void,
            mem::size_of_val(val) as libc::socklen_t,
        )
    };
    if rc < 0 {
        die(what);
    }
}

/// An IPv4/UDP frame of `size` bytes from 10.9.0.1:9000 to 10.9.0.2:9000, and its vnet header
/// (GSO UDP_L4 segments of 1472 bytes above an Ethernet MTU).
fn frame(size: usize, dst: [u8; 6]) -> ([u8; VNET_HDR_LEN], Vec<u8>) {
    let mut f = Vec::with_capacity(size);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&[0x02, 0, 0, 0, 0x09, 0x01]);
    f.extend_from_slice(&0x0800u16.to_be_bytes());
    let ip_len = (size - 14) as u16;
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&ip_len.to_be_bytes());
    ip[6] = 0x40;
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&[10, 9, 0, 1]);
    ip[16..20].copy_from_slice(&[10, 9, 0, 2]);
    let sum: u32 = ip
        .chunks(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]) as u32)
        .sum();
    let folded = (sum & 0xffff) + (sum >> 16);
    let csum = !(((folded & 0xffff) + (folded >> 16)) as u16);
    ip[10..12].copy_from_slice(&csum.to_be_bytes());
    f.extend_from_slice(&ip);
    let udp_len = ip_len - 20;
    f.extend_from_slice(&9000u16.to_be_bytes());
    f.extend_from_slice(&9000u16.to_be_bytes());
    f.extend_from_slice(&udp_len.to_be_bytes());
    let mut vnet = [0u8; VNET_HDR_LEN];
    if size > 1514 {
        // NEEDS_CSUM, GSO UDP_L4, hdr_len 42, gso_size 1472, csum_start 34, csum_offset 6; the
        // UDP checksum field holds the pseudo-header sum, as for CHECKSUM_PARTIAL.
        vnet[0] = 1;
        vnet[1] = 5;
        vnet[2..4].copy_from_slice(&42u16.to_le_bytes());
        vnet[4..6].copy_from_slice(&1472u16.to_le_bytes());
        vnet[6..8].copy_from_slice(&34u16.to_le_bytes());
        vnet[8..10].copy_from_slice(&6u16.to_le_bytes());
        let pseudo: u32 = 0x0a09 + 0x0001 + 0x0a09 + 0x0002 + 17 + udp_len as u32;
        let p = ((pseudo & 0xffff) + (pseudo >> 16)) as u16;
        f.extend_from_slice(&p.to_be_bytes());
    } else {
        f.extend_from_slice(&0u16.to_be_bytes());
    }
    f.resize(size, 0x5a);
    (vnet, f)
}

fn packet_socket(ifname: &str) -> (OwnedFd, libc::sockaddr_ll) {
    // SAFETY: plain socket(2), checked.
    let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
    if raw < 0 {
        die("socket");
    }
    // SAFETY: a fresh descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let name = std::ffi::CString::new(ifname).unwrap();
    // SAFETY: a NUL-terminated name.
    let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if ifindex == 0 {
        die("no such interface");
    }
    // SAFETY: sockaddr_ll is plain data.
    let mut sll: libc::sockaddr_ll = unsafe { mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_ifindex = ifindex as i32;
    (fd, sll)
}

fn bind(fd: &OwnedFd, sll: &libc::sockaddr_ll) {
    // SAFETY: `sll` is a valid sockaddr_ll; protocol 0 receives nothing.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            sll as *const _ as *const libc::sockaddr,
            mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    if rc < 0 {
        die("bind");
    }
}

/// Sends for `secs` with sendmmsg; returns frames sent and frames refused (EAGAIN/ENOBUFS).
fn run_sendmmsg(ifname: &str, vnet: &[u8; VNET_HDR_LEN], f: &[u8], secs: f64) -> (u64, u64) {
    let (fd, sll) = packet_socket(ifname);
    let one: libc::c_int = 1;
    setopt(
        fd.as_raw_fd(),
        libc::SOL_PACKET,
        PACKET_VNET_HDR,
        &one,
        "vnet",
    );
    setopt(
        fd.as_raw_fd(),
        libc::SOL_PACKET,
        PACKET_QDISC_BYPASS,
        &one,
        "bypass",
    );
    bind(&fd, &sll);
    let mut hdr = *vnet;
    let mut iov = [[libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }; 2]; BATCH];
    // SAFETY: mmsghdr is plain data.
    let mut msgs: [libc::mmsghdr; BATCH] = unsafe { mem::zeroed() };
    for i in 0..BATCH {
        iov[i][0] = libc::iovec {
            iov_base: hdr.as_mut_ptr().cast(),
            iov_len: VNET_HDR_LEN,
        };
        iov[i][1] = libc::iovec {
            iov_base: f.as_ptr() as *mut libc::c_void,
            iov_len: f.len(),
        };
        msgs[i].msg_hdr.msg_iov = iov[i].as_mut_ptr();
        msgs[i].msg_hdr.msg_iovlen = 2;
    }
    let (mut sent, mut refused) = (0u64, 0u64);
    let end = Instant::now() + Duration::from_secs_f64(secs);
    while Instant::now() < end {
        // SAFETY: msgs point at `iov`, `hdr` and `f`, alive for the call; the kernel reads them.
        let rc = unsafe {
            libc::sendmmsg(
                fd.as_raw_fd(),
                msgs.as_mut_ptr(),
                BATCH as u32,
                libc::MSG_DONTWAIT,
            )
        };
        if rc > 0 {
            sent += rc as u64;
        } else {
            refused += 1;
        }
    }
    (sent, refused)
}

/// Sends for `secs` through a TX ring of `slots`; returns frames sent and times the ring was full.
fn run_txring(ifname: &str, vnet: &[u8; VNET_HDR_LEN], f: &[u8], secs: f64) -> (u64, u64) {
    let (fd, sll) = packet_socket(ifname);
    let raw = fd.as_raw_fd();
    let one: libc::c_int = 1;
    setopt(raw, libc::SOL_PACKET, PACKET_VNET_HDR, &one, "vnet");
    setopt(
        raw,
        libc::SOL_PACKET,
        PACKET_VERSION,
        &TPACKET_V2,
        "version",
    );
    setopt(raw, libc::SOL_PACKET, PACKET_QDISC_BYPASS, &one, "bypass");
    let need = TX_DATA_OFF + VNET_HDR_LEN + f.len();
    let frame_size = need.next_multiple_of(4096);
    let slots = (4 << 20) / frame_size.max(2048);
    let req = libc::tpacket_req {
        tp_block_size: frame_size as u32,
        tp_block_nr: slots as u32,
        tp_frame_size: frame_size as u32,
        tp_frame_nr: slots as u32,
    };
    setopt(
        raw,
        libc::SOL_PACKET,
        PACKET_TX_RING,
        &req,
        "PACKET_TX_RING",
    );
    let len = frame_size * slots;
    // SAFETY: maps the ring the kernel just made for `raw`; unmapped when the process exits.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            raw,
            0,
        )
    };
    if base == libc::MAP_FAILED {
        die("mmap");
    }
    bind(&fd, &sll);
    let base = base as *mut u8;
    let status = |i: usize| {
        // SAFETY: slot i's header lies in the mapping; its first word is the status the kernel
        // and we hand over with atomic accesses.
        unsafe { &*(base.add(i * frame_size) as *const std::sync::atomic::AtomicU32) }
    };
    let (mut sent, mut full, mut head) = (0u64, 0u64, 0usize);
    let end = Instant::now() + Duration::from_secs_f64(secs);
    let mut wrong = 0u64;
    while Instant::now() < end {
        let mut queued = 0;
        while queued < BATCH {
            let st = status(head).load(std::sync::atomic::Ordering::Acquire);
            if st == TP_STATUS_WRONG_FORMAT {
                wrong += 1;
            } else if st != TP_STATUS_AVAILABLE {
                full += 1;
                break;
            }
            // SAFETY: the slot is ours (AVAILABLE); data and header lie within it.
            unsafe {
                let slot = base.add(head * frame_size);
                let data = slot.add(TX_DATA_OFF);
                std::ptr::copy_nonoverlapping(vnet.as_ptr(), data, VNET_HDR_LEN);
                std::ptr::copy_nonoverlapping(f.as_ptr(), data.add(VNET_HDR_LEN), f.len());
                *(slot.add(4) as *mut u32) = (VNET_HDR_LEN + f.len()) as u32;
            }
            status(head).store(TP_STATUS_SEND_REQUEST, std::sync::atomic::Ordering::Release);
            head = (head + 1) % slots;
            queued += 1;
        }
        // SAFETY: flushes the ring's SEND_REQUEST slots; no buffer is passed.
        let rc = unsafe { libc::send(raw, std::ptr::null(), 0, libc::MSG_DONTWAIT) };
        if rc >= 0 {
            sent += queued as u64;
        } else if queued > 0 {
            // EAGAIN: the kernel takes them at the next send.
            sent += queued as u64;
        }
    }
    if wrong > 0 {
        eprintln!("txpath: {wrong} frames refused by the kernel as malformed");
    }
    (sent, full)
}

fn sink(port: u16, secs: f64) {
    let s = std::net::UdpSocket::bind(("0.0.0.0", port)).unwrap_or_else(|_| die("bind sink"));
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut buf = vec![0u8; 65536];
    let (mut n, mut bytes) = (0u64, 0u64);
    let end = Instant::now() + Duration::from_secs_f64(secs);
    while Instant::now() < end {
        if let Ok(k) = s.recv(&mut buf) {
            n += 1;
            bytes += k as u64;
        }
    }
    println!("{n} {bytes}");
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    match a.get(1).map(String::as_str) {
        Some("sink") if a.len() == 4 => sink(a[2].parse().unwrap(), a[3].parse().unwrap()),
        Some("send") if a.len() == 7 => {
            let size: usize = a[4].parse().unwrap_or_else(|_| die("bad size"));
            if !(60..=65000).contains(&size) {
                eprintln!("txpath: size must be 60..65000");
                std::process::exit(2);
            }
            let secs: f64 = a[5].parse().unwrap_or_else(|_| die("bad seconds"));
            let mac: Vec<u8> = a[6]
                .split(':')
                .map(|h| u8::from_str_radix(h, 16).unwrap_or_else(|_| die("bad MAC")))
                .collect();
            let dst: [u8; 6] = mac.try_into().unwrap_or_else(|_| die("bad MAC"));
            let (vnet, f) = frame(size, dst);
            let started = Instant::now();
            let (sent, busy) = match a[3].as_str() {
                "sendmmsg" => run_sendmmsg(&a[2], &vnet, &f, secs),
                "txring" => run_txring(&a[2], &vnet, &f, secs),
                _ => die("mode is sendmmsg or txring"),
            };
            let t = started.elapsed().as_secs_f64();
            // SAFETY: rusage is plain data; RUSAGE_THREAD reports this thread.
            let mut ru: libc::rusage = unsafe { mem::zeroed() };
            // SAFETY: `ru` is a valid out-pointer.
            unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) };
            let cpu = ru.ru_utime.tv_sec as f64
                + ru.ru_utime.tv_usec as f64 / 1e6
                + ru.ru_stime.tv_sec as f64
                + ru.ru_stime.tv_usec as f64 / 1e6;
            let mut out = std::io::stdout().lock();
            writeln!(
                out,
                "{} {} {:.0} {:.3} {} {:.1}",
                a[3],
                size,
                sent as f64 / t,
                sent as f64 * size as f64 * 8.0 / t / 1e9,
                busy,
                cpu * 1e9 / sent.max(1) as f64
            )
            .unwrap();
        }
        _ => {
            eprintln!("usage: txpath send IFNAME sendmmsg|txring SIZE SECONDS DST_MAC | txpath sink PORT SECONDS");
            std::process::exit(2);
        }
    }
}
