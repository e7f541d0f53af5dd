//! These tests need root: they create throwaway named namespaces (`nsx<pid>-*`)
//! and do all interface, address and route work inside them, never in the
//! namespace the tests run in. Drop guards remove what they made even when an
//! assertion fails.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::mem;
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::*;
use dataplane::MacAddr;

/// These tests need root, as CI has: fail loudly rather than pass without testing anything.
fn assert_root() {
    // SAFETY: geteuid has no arguments and cannot fail.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "network namespace tests need root (run them as CI does, via sudo tools/test.sh)"
    );
}

fn uniq(tag: &str) -> String {
    format!("nsx{}-{tag}", std::process::id())
}

/// Deletes the named namespace when dropped.
struct NameGuard(String);
impl Drop for NameGuard {
    fn drop(&mut self) {
        let _ = delete_named(&self.0);
    }
}

/// A named namespace that is deleted when dropped.
struct TestNs {
    ns: NetNs,
    _guard: NameGuard,
    name: String,
}
impl TestNs {
    fn new(tag: &str) -> TestNs {
        let name = uniq(tag);
        let _ = delete_named(&name); // leftovers of a crashed run with the same pid
        let guard = NameGuard(name.clone());
        let ns = create_named(&name).unwrap_or_else(|e| panic!("{e}"));
        TestNs {
            ns,
            _guard: guard,
            name,
        }
    }
}

/// Removes a directory tree when dropped.
struct DirGuard(PathBuf);
impl Drop for DirGuard {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn path_id(p: &str) -> (u64, u64) {
    let fd = sys::open(Path::new(p), libc::O_RDONLY, 0).unwrap();
    sys::fstat_id(fd.as_fd()).unwrap()
}

#[test]
fn name_validation() {
    for ok in ["web", "a.b-c_D9", "a..b", &"x".repeat(64)] {
        validate_name(ok).unwrap_or_else(|e| panic!("{ok:?}: {e}"));
    }
    for bad in [
        "",
        ".",
        "..",
        "a/b",
        "/etc",
        "sp ace",
        "-x",
        "ünï",
        "a\0b",
        &"x".repeat(65),
    ] {
        let err = validate_name(bad).expect_err(bad);
        assert!(
            matches!(err, NetnsError::InvalidName { .. }),
            "{bad:?}: {err}"
        );
        assert!(!exists_named(bad));
    }
    let msg = validate_name("a/b").unwrap_err().to_string();
    assert!(msg.contains("\"a/b\"") && msg.contains("'/'"), "{msg}");
    // Invalid names are refused before anything touches /run/netns.
    assert!(matches!(
        create_named("../x"),
        Err(NetnsError::InvalidName { .. })
    ));
    assert!(matches!(
        open_named(".."),
        Err(NetnsError::InvalidName { .. })
    ));
    assert!(matches!(
        delete_named("a/b"),
        Err(NetnsError::InvalidName { .. })
    ));
}

#[test]
fn named_round_trip() {
    assert_root();
    let name = uniq("rt");
    let _ = delete_named(&name);
    let _guard = NameGuard(name.clone());
    let before = NetNs::current().unwrap();
    assert!(!exists_named(&name));
    assert!(open_named(&name).unwrap().is_none());

    let ns = create_named(&name).unwrap();
    // The caller's thread stayed where it was; the new namespace is a different one.
    assert!(NetNs::current().unwrap().same_as(&before));
    assert!(!ns.same_as(&before));
    assert!(exists_named(&name));
    let opened = open_named(&name).unwrap().expect("just created");
    assert!(opened.same_as(&ns));
    assert!(ns
        .run_in(|| NetNs::current().unwrap())
        .unwrap()
        .same_as(&ns));

    // Creating it again fails, names the name, and leaves the existing one alone.
    let err = create_named(&name).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("creating network namespace '{name}': /run/netns/{name} already exists")
    );
    assert!(open_named(&name)
        .unwrap()
        .expect("still there")
        .same_as(&ns));

    // It is a real mount point, like `ip netns add` makes.
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        mountinfo.contains(&format!(" /run/netns/{name} ")),
        "not mounted"
    );

    delete_named(&name).unwrap();
    assert!(!exists_named(&name));
    assert!(open_named(&name).unwrap().is_none());
    delete_named(&name).unwrap(); // absent: still Ok
                                  // Our handle keeps the namespace itself alive.
    assert!(ns
        .run_in(|| NetNs::current().unwrap())
        .unwrap()
        .same_as(&ns));
}

#[test]
fn from_path_rejects_non_netns_files() {
    let err = NetNs::from_path(Path::new("/proc/self/ns/mnt")).unwrap_err();
    assert!(matches!(err, NetnsError::NotNetns { .. }), "{err}");
    let err = NetNs::from_path(Path::new("/proc/self/status")).unwrap_err();
    assert!(
        err.to_string()
            .contains("/proc/self/status is not a network namespace"),
        "{err}"
    );
    let err = NetNs::from_path(Path::new("/nonexistent/ns")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOENT));
    assert!(
        err.to_string()
            .starts_with("opening network namespace file /nonexistent/ns: "),
        "{err}"
    );
}

#[test]
fn run_in_propagates_panics() {
    let ns = NetNs::current().unwrap();
    let r = std::panic::catch_unwind(|| ns.run_in(|| panic!("boom")));
    assert!(r.is_err());
    assert_eq!(ns.run_in(|| 42).unwrap(), 42);
}

/// The daemon may run under `ip netns exec`, in a private mount namespace that is a slave of the
/// host's. A thread can have such a namespace of its own (unshare(CLONE_NEWNS) on a thread), which
/// reproduces that situation inside this test process: the thread creates the namespace, exits,
/// and the namespace must still be visible and usable from the test's own mount namespace.
#[test]
fn create_from_private_mount_namespace() {
    assert_root();
    let name = uniq("priv");
    let _ = delete_named(&name);
    let _guard = NameGuard(name.clone());

    let child_name = name.clone();
    std::thread::spawn(move || {
        // SAFETY: unshare only changes this thread's mount namespace (and fs attributes).
        assert_eq!(unsafe { libc::unshare(libc::CLONE_NEWNS) }, 0, "unshare");
        // What `ip netns exec` does next: stop propagation back to the host.
        // SAFETY: the arguments are valid C strings or null, as mount(2) allows for MS_SLAVE.
        let rc = unsafe {
            libc::mount(
                c"none".as_ptr(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_SLAVE | libc::MS_REC,
                std::ptr::null(),
            )
        };
        assert_eq!(rc, 0, "making / a slave");
        assert_ne!(
            path_id("/proc/thread-self/ns/mnt"),
            path_id("/proc/self/ns/mnt"),
            "the thread has a mount namespace of its own"
        );
        let ns = create_named(&child_name).unwrap_or_else(|e| panic!("{e}"));
        Netlink::in_ns(&ns).unwrap().set_up("lo").unwrap();
    })
    .join()
    .expect("creating from a private mount namespace");

    // The thread and its mount namespace are gone; the name must still be there,
    // visible from our own mount namespace without any help ...
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        mountinfo.contains(&format!(" /run/netns/{name} ")),
        "mount not visible here:\n{mountinfo}"
    );
    let direct = NetNs::from_path(&Path::new(NETNS_RUN_DIR).join(&name)).unwrap();
    // ... and still be the namespace the child configured (lo up).
    let ns = open_named(&name)
        .unwrap()
        .expect("namespace vanished with the child");
    assert!(ns.same_as(&direct));
    let lo = Netlink::in_ns(&ns).unwrap().link("lo").unwrap().unwrap();
    assert!(lo.up, "lo is down: not the namespace the child made");
    delete_named(&name).unwrap();
    assert!(!exists_named(&name));
}

#[test]
fn run_dir_becomes_a_shared_mount_point() {
    assert_root();
    // Done on a helper thread with a mount namespace of its own, on a temp dir, so
    // neither the real /run/netns nor anyone else's mounts are touched.
    let dir = std::env::temp_dir().join(uniq("rundir"));
    let _guard = DirGuard(dir.clone());
    let mountinfo = on_helper_thread(|| {
        sys::unshare(libc::CLONE_FS | libc::CLONE_NEWNS).unwrap();
        sys::mount(
            Path::new(""),
            Path::new("/"),
            "none",
            libc::MS_PRIVATE | libc::MS_REC,
        )
        .unwrap();
        ensure_shared_dir(&dir, "test").unwrap();
        ensure_shared_dir(&dir, "test").unwrap(); // again: already a mount point, no stacking
        let info = fs::read_to_string("/proc/thread-self/mountinfo").unwrap();
        let _ = sys::umount2(&dir, libc::MNT_DETACH);
        Ok(info)
    })
    .unwrap();
    let lines: Vec<_> = mountinfo
        .lines()
        .filter(|l| l.split(' ').nth(4) == Some(dir.to_str().unwrap()))
        .collect();
    assert_eq!(
        lines.len(),
        1,
        "exactly one mount on {}: {lines:?}",
        dir.display()
    );
    assert!(lines[0].contains(" shared:"), "not shared: {}", lines[0]);
}

#[test]
fn netlink_in_fresh_namespaces() {
    assert_root();
    let a = TestNs::new("nla");
    let b = TestNs::new("nlb");
    let nl = Netlink::in_ns(&a.ns).unwrap();
    let nlb = Netlink::in_ns(&b.ns).unwrap();

    nl.create_veth("a0", "b0", &b.ns).unwrap();
    // The peer was born in B and never appeared in A.
    assert!(nl.link_index("a0").unwrap().is_some());
    assert!(nl.link_index("b0").unwrap().is_none());
    let b0 = nlb.link("b0").unwrap().expect("peer in B");
    assert_eq!(b0.kind.as_deref(), Some("veth"));

    let err = nl.create_veth("a0", "b1", &b.ns).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("'a0'") && msg.contains("'b1'") && msg.contains("exists"),
        "{msg}"
    );
    let err = nl
        .create_veth("a-name-that-is-too-long", "b2", &b.ns)
        .unwrap_err();
    assert!(matches!(err, NetnsError::InvalidArgument { .. }), "{err}");

    let mac = MacAddr([0x02, 0x00, 0x5e, 0x00, 0x53, 0x01]);
    nl.set_mac("a0", mac).unwrap();
    nl.set_mtu("a0", 1400).unwrap();
    nl.set_up("a0").unwrap();
    nl.set_up("lo").unwrap();
    nlb.set_up("b0").unwrap();
    let a0 = nl.link("a0").unwrap().unwrap();
    assert_eq!(a0.mac, Some(mac));
    assert_eq!(a0.mtu, 1400);
    assert!(a0.up);
    assert_eq!(a0.kind.as_deref(), Some("veth"));

    let links = nl.links().unwrap();
    let names: BTreeSet<_> = links.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, BTreeSet::from(["lo", "a0"]));
    assert!(links
        .iter()
        .any(|l| l.name == "a0" && l.kind.as_deref() == Some("veth") && l.index == a0.index));
    assert!(links.iter().any(|l| l.name == "lo" && l.kind.is_none()));

    // Documentation prefixes (RFC 5737), inside the throwaway namespace only.
    let ip = Ipv4Addr::new(192, 0, 2, 1);
    nl.add_address("a0", ip, 24).unwrap();
    nl.add_address("a0", ip, 24).unwrap(); // idempotent
    assert_eq!(nl.addresses("a0").unwrap(), vec![(ip, 24)]);
    assert_eq!(nl.addresses("lo").unwrap(), vec![(Ipv4Addr::LOCALHOST, 8)]);

    let gw = Ipv4Addr::new(192, 0, 2, 254);
    nl.replace_default_route(gw).unwrap();
    nl.replace_default_route(Ipv4Addr::new(192, 0, 2, 253))
        .unwrap(); // replace, not add
    nl.replace_default_route(gw).unwrap();
    let routes = nl.routes_v4().unwrap();
    assert!(
        routes.contains(&(Ipv4Addr::new(192, 0, 2, 0), 24)),
        "{routes:?}"
    );
    assert!(
        !routes.iter().any(|r| r.1 == 0),
        "default route listed: {routes:?}"
    );
    assert!(
        !routes.iter().any(|r| r.0.is_loopback()),
        "local table listed: {routes:?}"
    );

    // Cross-check against iproute2 (reading only, inside the throwaway namespace).
    let ip_route = Command::new("ip")
        .args(["-n", &a.name, "-4", "route", "show"])
        .output()
        .unwrap();
    let ip_route = String::from_utf8_lossy(&ip_route.stdout);
    assert!(
        ip_route.contains("default via 192.0.2.254 dev a0"),
        "{ip_route}"
    );
    assert_eq!(ip_route.matches("default").count(), 1, "{ip_route}");
    let ip_addr = Command::new("ip")
        .args(["-n", &a.name, "-4", "addr", "show", "a0"])
        .output()
        .unwrap();
    let ip_addr = String::from_utf8_lossy(&ip_addr.stdout);
    assert!(
        ip_addr.contains("inet 192.0.2.1/24 brd 192.0.2.255"),
        "{ip_addr}"
    );

    // Errors name the missing interface.
    let err = nl.set_up("nope0").unwrap_err();
    assert!(matches!(err, NetnsError::NoSuchLink { .. }));
    assert_eq!(
        err.to_string(),
        "setting interface 'nope0' up: no interface named 'nope0' in this namespace"
    );
    let err = nl
        .replace_default_route(Ipv4Addr::new(198, 51, 100, 1))
        .unwrap_err();
    assert!(
        err.raw_os_error().is_some() && err.to_string().contains("198.51.100.1"),
        "{err}"
    );

    nl.delete_link("a0").unwrap();
    assert!(nl.link("a0").unwrap().is_none());
    assert!(nlb.link("b0").unwrap().is_none(), "peer should go with it");
    nl.delete_link("a0").unwrap(); // absent: Ok
    nl.delete_link("never-was").unwrap();
}

#[test]
fn netlink_current_lists_links_read_only() {
    let nl = Netlink::current().unwrap();
    let lo = nl.link("lo").unwrap().expect("lo");
    assert_eq!(nl.link_index("lo").unwrap(), Some(lo.index));
    assert!(nl.links().unwrap().iter().any(|l| l.name == "lo"));
    assert!(nl.link("does-not-exist").unwrap().is_none());
}

/// An AF_PACKET socket receiving ARP frames on `ifname`, opened inside `ns`.
fn arp_capture(ns: &NetNs, ifname: &str) -> OwnedFd {
    let ifname = std::ffi::CString::new(ifname).unwrap();
    ns.run_in(|| {
        // SAFETY: valid NUL-terminated string, only read.
        let ifindex = unsafe { libc::if_nametoindex(ifname.as_ptr()) };
        assert_ne!(ifindex, 0);
        let proto = 0x0806u16.to_be();
        // SAFETY: plain socket(2) call.
        let raw = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                i32::from(proto),
            )
        };
        assert!(raw >= 0, "{}", io::Error::last_os_error());
        // SAFETY: fresh descriptor owned by nobody else.
        let sock = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: sockaddr_ll is plain old data.
        let mut addr: libc::sockaddr_ll = unsafe { mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = proto;
        addr.sll_ifindex = ifindex as i32;
        // SAFETY: `addr` is initialised and its size is passed; bind only reads it.
        let rc = unsafe {
            libc::bind(
                sock.as_raw_fd(),
                (&raw const addr).cast(),
                mem::size_of_val(&addr) as libc::socklen_t,
            )
        };
        assert_eq!(rc, 0, "{}", io::Error::last_os_error());
        let tv = libc::timeval {
            tv_sec: 0,
            tv_usec: 200_000,
        };
        // SAFETY: `tv` is a valid timeval whose size is passed; setsockopt only reads it.
        let rc = unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&raw const tv).cast(),
                mem::size_of_val(&tv) as libc::socklen_t,
            )
        };
        assert_eq!(rc, 0, "{}", io::Error::last_os_error());
        sock
    })
    .unwrap()
}

#[test]
fn gratuitous_arp_is_seen_by_the_peer() {
    assert_root();
    let a = TestNs::new("ga");
    let b = TestNs::new("gb");
    let nl = Netlink::in_ns(&a.ns).unwrap();
    nl.create_veth("a0", "b0", &b.ns).unwrap();
    nl.set_up("a0").unwrap();
    Netlink::in_ns(&b.ns).unwrap().set_up("b0").unwrap();
    let cap = arp_capture(&b.ns, "b0");

    let mac = MacAddr([0x02, 0x00, 0x5e, 0x00, 0x53, 0x42]);
    let ip = Ipv4Addr::new(192, 0, 2, 42);
    send_gratuitous_arp(&a.ns, "a0", mac, ip).unwrap();

    let deadline = Instant::now() + Duration::from_secs(5);
    let frame = loop {
        assert!(Instant::now() < deadline, "no gratuitous ARP seen on b0");
        let mut buf = [0u8; 2048];
        // SAFETY: `buf` is writable for its full length; recv writes at most that.
        let n = unsafe { libc::recv(cap.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            continue; // timeout tick
        }
        let f = buf[..n as usize].to_vec();
        if f.len() >= 42 && f[28..32] == ip.octets() {
            break f;
        }
    };
    assert_eq!(frame.len(), 60, "padded to the Ethernet minimum");
    assert_eq!(frame[0..6], [0xff; 6], "broadcast destination");
    assert_eq!(frame[6..12], mac.0, "Ethernet source");
    assert_eq!(frame[12..14], [0x08, 0x06], "ethertype ARP");
    assert_eq!(frame[14..16], [0, 1], "htype Ethernet");
    assert_eq!(frame[16..18], [0x08, 0x00], "ptype IPv4");
    assert_eq!((frame[18], frame[19]), (6, 4), "address lengths");
    assert_eq!(frame[20..22], [0, 1], "ARP request");
    assert_eq!(frame[22..28], mac.0, "sender MAC");
    assert_eq!(frame[28..32], ip.octets(), "sender IP");
    assert_eq!(frame[32..38], [0; 6], "target MAC unknown");
    assert_eq!(frame[38..42], ip.octets(), "target IP = sender IP");
    assert!(frame[42..].iter().all(|&b| b == 0), "zero padding");

    let err = send_gratuitous_arp(&a.ns, "nope0", mac, ip).unwrap_err();
    assert!(matches!(err, NetnsError::NoSuchLink { .. }), "{err}");
}

#[test]
fn enter_for_exec_shows_the_namespace() {
    assert_root();
    let t = TestNs::new("ex");
    let etc_netns = Path::new("/etc/netns");
    let created_etc_netns = !etc_netns.exists();
    let dir = etc_netns.join(&t.name);
    fs::create_dir_all(&dir).unwrap();
    let _dir_guard = DirGuard(dir.clone());
    let _parent_guard = created_etc_netns.then(|| DirGuard(etc_netns.to_owned()));
    let hosts = format!("192.0.2.7 switchyard-netns-test-{}\n", std::process::id());
    fs::write(dir.join("hosts"), &hosts).unwrap();

    // Give the namespace interfaces the host does not have.
    Netlink::in_ns(&t.ns)
        .unwrap()
        .create_veth("xv0", "xv1", &t.ns)
        .unwrap();
    let real_hosts = fs::read_to_string("/etc/hosts").unwrap();

    let name = t.name.clone();
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "cat /etc/hosts; echo ---; ls /sys/class/net"]);
    // SAFETY: the closure runs in the forked child before exec; it only makes
    // syscalls and allocates (glibc's malloc is fork-safe), touching no state the
    // parent's other threads could have left locked besides malloc's.
    unsafe {
        cmd.pre_exec(move || enter_for_exec(&name).map_err(|e| io::Error::other(e.to_string())));
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (seen_hosts, seen_links) = stdout.split_once("---\n").unwrap();
    assert_eq!(seen_hosts, hosts);
    let seen_links: BTreeSet<_> = seen_links.split_whitespace().collect();
    assert_eq!(seen_links, BTreeSet::from(["lo", "xv0", "xv1"]));

    // Nothing leaked into our mount namespace.
    assert_eq!(fs::read_to_string("/etc/hosts").unwrap(), real_hosts);
    assert!(!Path::new("/sys/class/net/xv0").exists());
    assert!(Path::new("/sys/class/net/lo").exists());

    // A missing namespace fails before changing anything, and says which. (Run on a
    // throwaway thread: pre_exec only reports an errno back to the parent.)
    let err = std::thread::spawn(|| enter_for_exec("nsx-does-not-exist"))
        .join()
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, NetnsError::NotFound { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "network namespace 'nsx-does-not-exist' not found: /run/netns/nsx-does-not-exist does not exist"
    );
}

#[test]
fn run_dir_propagation_reads_mountinfo_tags() {
    let host = "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n\
                45 27 254:0 /run/netns /run/netns rw,relatime shared:1 - ext4 /dev/vda rw\n";
    assert_eq!(
        super::run_dir_propagation(host),
        Some(super::Propagation {
            shared: Some(1),
            master: None
        })
    );
    let under_ip_netns_exec = "48 47 254:0 / / rw,relatime - ext4 /dev/vda rw\n\
        68 48 254:0 /run/netns /run/netns rw,relatime master:1 - ext4 /dev/vda rw\n\
        69 68 0:4 net:[4026532178] /run/netns/x rw master:2 - nsfs nsfs rw\n";
    assert_eq!(
        super::run_dir_propagation(under_ip_netns_exec),
        Some(super::Propagation {
            shared: None,
            master: Some(1)
        })
    );
    let both = "68 48 254:0 /run/netns /run/netns rw shared:7 master:1 - ext4 /dev/vda rw\n";
    assert_eq!(
        super::run_dir_propagation(both),
        Some(super::Propagation {
            shared: Some(7),
            master: Some(1)
        })
    );
    assert_eq!(
        super::run_dir_propagation("27 1 254:0 / / rw - ext4 x rw\n"),
        None
    );
}

/// A name file with nothing mounted on it, as a daemon killed inside `delete_named` (between
/// unmounting and removing) or `create_named` (between creating the file and mounting) leaves,
/// is made a namespace again by `open_or_create_named`; one that is mounted is opened, not made
/// anew; a file holding another kind of namespace is refused and left as it is.
#[test]
fn open_or_create_named_remakes_a_name_with_nothing_mounted() {
    assert_root();
    let name = uniq("stale");
    let _ = delete_named(&name);
    let _guard = NameGuard(name.clone());
    let path = named_path(&name);
    let first = create_named(&name).unwrap();
    sys::umount2(&path, libc::MNT_DETACH).unwrap();
    assert!(path.exists(), "the name file stays after the unmount");
    assert!(
        matches!(open_named(&name), Err(NetnsError::NotNetns { .. })),
        "a plain file is no namespace"
    );
    let made = open_or_create_named(&name).unwrap_or_else(|e| panic!("{e}"));
    assert_ne!(made.id, first.id, "a new namespace");
    let again = open_or_create_named(&name).unwrap();
    assert_eq!(again.id, made.id, "a mounted name is opened, not replaced");

    // Another kind of namespace under a name: an error, and still there afterwards.
    let other = uniq("uts");
    let _ = delete_named(&other);
    let _other_guard = NameGuard(other.clone());
    let other_path = named_path(&other);
    fs::File::create(&other_path).unwrap();
    sys::mount(
        Path::new("/proc/self/ns/uts"),
        &other_path,
        "none",
        libc::MS_BIND,
    )
    .unwrap();
    let refused = open_or_create_named(&other).expect_err("refused");
    assert!(refused.to_string().contains("another type"), "{refused}");
    assert_eq!(
        sys::ns_type(fs::File::open(&other_path).unwrap().as_fd()).ok(),
        Some(libc::CLONE_NEWUTS)
    );
}
