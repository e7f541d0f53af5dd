//! Test harness for integration tests: network namespaces as hosts, a switch namespace, and
//! `switchyard` processes, all cleaned up on drop (also when a test panics).
//!
//! Every lab gets a tag unique to the test and the process (`<short><pid hex>`, at most 8 characters),
//! used as prefix for namespace and interface names, so tests run in parallel and interface names stay
//! within 15 characters. Nothing here touches the root namespace's addresses or routes: the switch runs
//! inside its own namespace through `ip netns exec`.
#![allow(dead_code)]

pub mod docker;
pub mod probe;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn switchyard_bin() -> &'static str {
    env!("CARGO_BIN_EXE_switchyard")
}

/// `--workers N` for every switch and daemon the lab starts when `SWITCHYARD_TEST_WORKERS` is
/// set (`tools/test.sh` runs the suite with 1 and with the default) and the test does not choose
/// itself (`extra`); nothing otherwise, so the default (one worker per CPU) is what runs.
pub fn workers_args(extra: &[&str]) -> Vec<String> {
    match std::env::var("SWITCHYARD_TEST_WORKERS") {
        Ok(n) if !n.is_empty() && !extra.contains(&"--workers") => vec!["--workers".into(), n],
        _ => Vec::new(),
    }
}

/// Runs a command, returning its output; panics with the command line if it cannot start.
pub fn run(args: &[&str]) -> Output {
    Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"))
}

/// Runs a command that must succeed.
pub fn must(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "{args:?} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub struct Lab {
    pub tag: String,
    namespaces: Vec<String>,
    children: Vec<Child>,
    pub dir: PathBuf,
}

impl Lab {
    /// `short` must be unique among tests (2-3 letters).
    pub fn new(short: &str) -> Lab {
        assert!(short.len() <= 4);
        let tag = format!("{short}{:x}", std::process::id() & 0xffff);
        let dir = std::env::temp_dir().join(format!("switchyard-test-{tag}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut lab = Lab {
            tag,
            namespaces: Vec::new(),
            children: Vec::new(),
            dir,
        };
        lab.add_ns("sw");
        lab
    }

    /// Full namespace name of a host.
    pub fn ns(&self, host: &str) -> String {
        format!("{}-{host}", self.tag)
    }

    /// Interface name in the switch namespace for `host` (at most 15 characters).
    pub fn port(&self, host: &str) -> String {
        let name = format!("{}{host}", self.tag);
        assert!(name.len() <= 15, "{name} too long");
        name
    }

    fn add_ns(&mut self, host: &str) {
        let ns = self.ns(host);
        let _ = run(&["ip", "netns", "del", &ns]);
        must(&["ip", "netns", "add", &ns]);
        self.namespaces.push(ns.clone());
        must(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
    }

    /// A host namespace with `eth0` at `addr` (CIDR), whose veth peer sits in the switch namespace as
    /// `port(host)`. Offloads are left at the kernel's defaults.
    pub fn host(&mut self, host: &str, addr: &str) {
        self.add_ns(host);
        let ns = self.ns(host);
        let sw = self.ns("sw");
        let port = self.port(host);
        must(&[
            "ip", "-n", &sw, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns",
            &ns,
        ]);
        must(&["ip", "-n", &ns, "addr", "add", addr, "dev", "eth0"]);
        must(&["ip", "-n", &ns, "link", "set", "eth0", "up"]);
    }

    /// An "outside" host `out` at 192.0.2.2/24 wired to the switch namespace (which gets
    /// 192.0.2.1), routing `back_to` via the switch namespace: the world beyond the daemon's host.
    pub fn outside(&mut self, back_to: &str) {
        self.host("out", "192.0.2.2/24");
        let uplink = self.port("out");
        self.exec_ok("sw", &["ip", "addr", "add", "192.0.2.1/24", "dev", &uplink]);
        self.exec_ok("sw", &["ip", "link", "set", &uplink, "up"]);
        self.exec_ok("out", &["ip", "route", "add", back_to, "via", "192.0.2.1"]);
    }

    /// Hosts `names[i]` at `<prefix>.<i+1>/24`; returns their switch-side port names in order.
    pub fn hosts(&mut self, prefix: &str, names: &[&str]) -> Vec<String> {
        for (i, h) in names.iter().enumerate() {
            self.host(h, &format!("{prefix}.{}/24", i + 1));
        }
        names.iter().map(|h| self.port(h)).collect()
    }

    /// A command inside a namespace.
    pub fn exec(&self, host: &str, args: &[&str]) -> Output {
        let ns = self.ns(host);
        let mut full = vec!["ip", "netns", "exec", ns.as_str()];
        full.extend_from_slice(args);
        run(&full)
    }

    pub fn exec_ok(&self, host: &str, args: &[&str]) -> String {
        let out = self.exec(host, args);
        assert!(
            out.status.success(),
            "in {host}: {args:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Starts a background process in a namespace; stdout and stderr go to `<dir>/<label>.{out,err}`.
    /// It is killed when the lab drops.
    pub fn spawn(&mut self, host: &str, label: &str, args: &[&str]) -> usize {
        let ns = self.ns(host);
        let out = std::fs::File::create(self.dir.join(format!("{label}.out"))).unwrap();
        let err = std::fs::File::create(self.dir.join(format!("{label}.err"))).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &ns])
            .args(args)
            .stdout(out)
            .stderr(err)
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {args:?}: {e}"));
        self.children.push(child);
        self.children.len() - 1
    }

    /// Starts `switchyard bridge` in the switch namespace over the given ports.
    pub fn switch(&mut self, label: &str, ports: &[String], extra: &[&str]) -> usize {
        let mut args = vec![switchyard_bin().to_string(), "bridge".into()];
        for p in ports {
            args.push("--port".into());
            args.push(p.clone());
        }
        args.extend(workers_args(extra));
        args.extend(extra.iter().map(|s| s.to_string()));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let i = self.spawn("sw", label, &refs);
        self.wait_log(label, "forwarding", Duration::from_secs(10));
        i
    }

    pub fn log(&self, label: &str, stream: &str) -> String {
        std::fs::read_to_string(self.dir.join(format!("{label}.{stream}"))).unwrap_or_default()
    }

    /// Waits until `<label>.err` contains `needle`.
    pub fn wait_log(&self, label: &str, needle: &str, timeout: Duration) {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if self.log(label, "err").contains(needle) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "'{needle}' not seen in {label} within {timeout:?}; stderr: {}",
            self.log(label, "err")
        );
    }

    pub fn children_len(&self) -> usize {
        self.children.len()
    }

    pub fn pid(&self, child: usize) -> u32 {
        self.children[child].id()
    }

    /// Sends a signal to a child. Children are `ip netns exec` processes, which exec the command,
    /// so the pid is the command's own.
    pub fn signal(&self, child: usize, sig: libc::c_int) {
        // SAFETY: kill(2) with a pid we spawned and still own.
        unsafe { libc::kill(self.pid(child) as i32, sig) };
    }

    pub fn running(&mut self, child: usize) -> bool {
        matches!(self.children[child].try_wait(), Ok(None))
    }

    /// Kills `child` with SIGKILL (a crash: nothing cleaned up) and waits until it is gone.
    pub fn kill_9(&mut self, child: usize) {
        self.signal(child, libc::SIGKILL);
        while self.running(child) {
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn stop(&mut self, child: usize) -> std::process::ExitStatus {
        self.signal(child, libc::SIGTERM);
        let start = Instant::now();
        loop {
            if let Some(status) = self.children[child].try_wait().unwrap() {
                return status;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "child did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Pings `addr` from `host` until it answers (the switch may still be learning) or times out.
    pub fn ping_ok(&self, host: &str, addr: &str) {
        let start = Instant::now();
        loop {
            let out = self.exec(host, &["ping", "-c", "1", "-W", "1", addr]);
            if out.status.success() {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "{host} cannot ping {addr}: {}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
    }

    /// Asserts that `host` cannot reach `addr` (three tries).
    pub fn ping_fails(&self, host: &str, addr: &str) {
        let out = self.exec(host, &["ping", "-c", "3", "-i", "0.2", "-W", "1", addr]);
        assert!(!out.status.success(), "{host} unexpectedly reached {addr}");
    }

    /// Runs iperf3 (one TCP stream, `secs` seconds) from `client` to a server in `server` bound to
    /// `addr`, and returns the bytes the server received. Retries while the server is starting.
    pub fn iperf(&mut self, server: &str, client: &str, addr: &str, secs: u32) -> f64 {
        self.iperf_to(server, Some(addr), client, addr, secs)
    }

    /// iperf3 with a server in `server` (bound to `bind` if given) and a client in `client`
    /// connecting to `connect` (differs from `bind` through NAT).
    pub fn iperf_to(
        &mut self,
        server: &str,
        bind: Option<&str>,
        client: &str,
        connect: &str,
        secs: u32,
    ) -> f64 {
        let addr = connect;
        let mut args = vec!["iperf3", "-s", "-1"];
        if let Some(b) = bind {
            args.extend(["-B", b]);
        }
        self.spawn(server, &format!("iperf-{server}-{addr}"), &args);
        let start = Instant::now();
        let secs = secs.to_string();
        let json = loop {
            let out = self.exec(client, &["iperf3", "-c", addr, "-t", &secs, "-J"]);
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            // iperf3 3.12 exits 0 with -J even when it could not connect; the JSON says so.
            if out.status.success() && !text.contains("\"error\":") {
                break text;
            }
            let refused = text.contains("Connection refused") || text.contains("unable to connect");
            assert!(
                refused && start.elapsed() < Duration::from_secs(5),
                "iperf3 {client} -> {addr} failed: {text}"
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        json.split("\"sum_received\"")
            .nth(1)
            .and_then(|s| s.split("\"bytes\":").nth(1))
            .and_then(|s| s.split([',', '\n']).next())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or_else(|| panic!("no sum_received in iperf3 output: {json}"))
    }

    /// Registers a namespace someone else creates (a switchyard container named `ns(host)`), so
    /// the lab deletes it on drop even when the test fails before `container rm`.
    pub fn adopt(&mut self, host: &str) -> String {
        let ns = self.ns(host);
        if !self.namespaces.contains(&ns) {
            self.namespaces.push(ns.clone());
        }
        ns
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.join("switchyard.sock")
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.join("state")
    }

    /// Starts `switchyard daemon` inside the switch namespace (through `ip netns exec`, so in a
    /// private mount namespace too), with its state and socket in the lab's directory, and waits
    /// until it serves.
    pub fn daemon(&mut self, label: &str, extra: &[&str]) -> usize {
        let args = self.daemon_command(extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let i = self.spawn("sw", label, &args);
        self.wait_log(label, "daemon ready", Duration::from_secs(20));
        i
    }

    /// Starts the daemon with an uplink toward the host `out` (at 192.0.2.1/24, also the
    /// uplink's gateway): switchyard owns 192.0.2.10 there.
    pub fn daemon_uplinked(&mut self, label: &str, extra: &[&str]) -> usize {
        let uplink = self.port("out");
        let mut args = vec![
            "--uplink",
            uplink.as_str(),
            "--uplink-ip",
            "192.0.2.10/24",
            "--uplink-gateway",
            "192.0.2.1",
        ];
        args.extend_from_slice(extra);
        self.daemon(label, &args)
    }

    /// `switchyard daemon` with the lab's state directory and socket, and `extra`.
    pub fn daemon_command(&self, extra: &[&str]) -> Vec<String> {
        let mut args = vec![
            switchyard_bin().to_string(),
            "daemon".into(),
            "--state-dir".into(),
            self.state_dir().display().to_string(),
            "--socket".into(),
            self.socket().display().to_string(),
        ];
        args.extend(workers_args(extra));
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    }

    /// Runs a daemon in the switch namespace in the foreground until it exits (a start-up
    /// refusal).
    pub fn daemon_run(&self, extra: &[&str]) -> Output {
        let args = self.daemon_command(extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.exec("sw", &args)
    }

    /// Runs a `switchyard` client command against the lab's daemon.
    pub fn cli(&self, args: &[&str]) -> Output {
        client(&self.socket(), args)
    }

    /// A client command that must succeed; returns its stdout.
    pub fn cli_ok(&self, args: &[&str]) -> String {
        client_ok(&self.socket(), args)
    }

    /// A client command that must succeed and print JSON.
    pub fn cli_json(&self, args: &[&str]) -> serde_json::Value {
        let text = self.cli_ok(args);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("switchyard {args:?}: {e}: {text}"))
    }

    /// `switchyard network|container inspect NAME`: the one object.
    pub fn inspect(&self, kind: &str, name: &str) -> serde_json::Value {
        self.cli_json(&[kind, "inspect", name])[0].clone()
    }

    /// `container create` of `ns(host)` with extra arguments; returns the namespace name.
    pub fn container(&mut self, host: &str, extra: &[&str]) -> String {
        let ns = self.adopt(host);
        let mut args = vec!["container", "create", ns.as_str()];
        args.extend_from_slice(extra);
        self.cli_ok(&args);
        ns
    }

    pub fn mac(&self, host: &str, ifname: &str) -> String {
        self.exec_ok(host, &["cat", &format!("/sys/class/net/{ifname}/address")])
            .trim()
            .to_string()
    }
}

/// A daemon of another "host": its own namespace, state and socket in the lab's directory.
pub struct OtherDaemon {
    pub socket: String,
}

impl OtherDaemon {
    pub fn cli(&self, args: &[&str]) -> Output {
        client(Path::new(&self.socket), args)
    }

    /// A client command that must succeed; returns its stdout.
    pub fn cli_ok(&self, args: &[&str]) -> String {
        client_ok(Path::new(&self.socket), args)
    }

    /// `container create` of `lab.ns(host)` on this daemon with extra arguments; returns the
    /// namespace name (the lab deletes it on drop).
    pub fn container(&self, lab: &mut Lab, host: &str, extra: &[&str]) -> String {
        let ns = lab.adopt(host);
        let mut args = vec!["container", "create", ns.as_str()];
        args.extend_from_slice(extra);
        self.cli_ok(&args);
        ns
    }
}

/// A `switchyard` client command against the daemon at `socket`.
fn client(socket: &Path, args: &[&str]) -> Output {
    Command::new(switchyard_bin())
        .args(args)
        .env("SWITCHYARD_SOCKET", socket)
        .output()
        .unwrap_or_else(|e| panic!("cannot run switchyard {args:?}: {e}"))
}

/// A client command that must succeed; returns its stdout.
fn client_ok(socket: &Path, args: &[&str]) -> String {
    let out = client(socket, args);
    assert!(
        out.status.success(),
        "switchyard {args:?} ({}) failed ({}): {}{}",
        socket.display(),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl Lab {
    /// Starts a second daemon in namespace `host` (a second "host" of a two-host lab) with
    /// `extra` arguments, and waits until it serves.
    pub fn other_daemon(&mut self, host: &str, extra: &[&str]) -> OtherDaemon {
        let socket = self.dir.join(format!("{host}.sock")).display().to_string();
        let state = self.dir.join(format!("{host}-state")).display().to_string();
        let label = format!("daemon-{host}");
        let mut args = vec![
            switchyard_bin(),
            "daemon",
            "--state-dir",
            &state,
            "--socket",
            &socket,
        ];
        args.extend_from_slice(extra);
        self.spawn(host, &label, &args);
        self.wait_log(&label, "daemon ready", Duration::from_secs(20));
        OtherDaemon { socket }
    }
}

impl Lab {
    /// A lab whose daemon owns an uplink toward host `out` (192.0.2.1/24, also the uplink's
    /// gateway); switchyard owns 192.0.2.10 on it.
    pub fn uplinked(short: &str) -> (Lab, usize) {
        let mut lab = Lab::new(short);
        lab.host("out", "192.0.2.1/24");
        let d = lab.uplink_daemon("d");
        (lab, d)
    }

    /// Starts a daemon (again) with the uplink toward `out`.
    pub fn uplink_daemon(&mut self, label: &str) -> usize {
        self.daemon_uplinked(label, &[])
    }
}

/// Retries `f` until it gives a value, for up to 10 seconds.
pub fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out: {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Kills a process that is not a child of the test (a daemon started by a shell that exited)
/// on drop, also when the test fails.
pub struct KillOnDrop(pub Option<u32>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            // SAFETY: kill(2) with a pid the process reported for itself.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        for ns in self.namespaces.iter().rev() {
            let _ = run(&["ip", "netns", "del", ns]);
            let _ = std::fs::remove_dir_all(format!("/etc/netns/{ns}"));
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// `dir/rootfs`: Debian's static busybox (`apt-get install busybox-static`) with one link per
/// applet in `/bin`, the image tests import into dockerd and podman (there is no registry here).
pub fn busybox_rootfs(dir: &Path) -> PathBuf {
    let rootfs = dir.join("rootfs");
    let bin = rootfs.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for d in ["etc", "proc", "sys", "dev", "tmp"] {
        std::fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", bin.join("busybox"))
        .expect("/bin/busybox (apt-get install busybox-static)");
    let list = Command::new("/bin/busybox").arg("--list").output().unwrap();
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet != "busybox" {
            let _ = std::os::unix::fs::symlink("busybox", bin.join(applet));
        }
    }
    rootfs
}

/// SIGKILLs processes whose command line names `dir` (never this test process).
pub fn kill_processes_naming(dir: &Path) {
    let needle = dir.display().to_string();
    let me = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    for e in entries.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if pid == me {
            continue;
        }
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(&needle) {
            // SAFETY: kill(2) on a process that names our test directory: one we started.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
    }
}

/// Lazily unmounts every mount below `dir`, deepest first (shm of containers, netns files).
pub fn unmount_below(dir: &Path) {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let prefix = dir.display().to_string();
    let mut points: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter(|p| p.starts_with(&prefix))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        let _ = Command::new("umount").args(["-l", p]).output();
    }
}

/// `dig` from a container; returns (status, or `(no answer)`, and the last field of each answer
/// line).
pub fn dig(lab: &Lab, host: &str, args: &[&str]) -> (String, Vec<String>) {
    let mut full = vec![
        "dig",
        "+time=2",
        "+tries=1",
        "+noall",
        "+comments",
        "+answer",
    ];
    full.extend_from_slice(args);
    let out = lab.exec(host, &full);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let status = text
        .split("status: ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .unwrap_or("(no answer)")
        .to_string();
    let answers = text
        .lines()
        .filter(|l| !l.starts_with(';') && !l.trim().is_empty())
        .map(|l| l.split_whitespace().last().unwrap_or("").to_string())
        .collect();
    (status, answers)
}
