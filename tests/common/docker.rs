//! A real dockerd (Debian's docker.io) for a test: started with `nsenter --net` in the lab's switch
//! namespace (so it finds the veths switchyard hands off, and `ip netns exec`'s remount of /sys
//! does not hide the cgroups from it), with its own data root, exec root, socket and pidfile under
//! the lab's directory, no bridge, no iptables, and `--live-restore` (a restart keeps containers
//! running). An image `local/busybox` is imported from Debian's busybox-static (no registry here).
//!
//! Dropping it removes every container, stops dockerd (its containerd goes with it), kills any
//! shim left behind by a killed dockerd, unmounts what it mounted and deletes its directories,
//! also when the test panicked.

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::{busybox_rootfs, kill_processes_naming, unmount_below, Lab};

pub struct Dockerd {
    /// Data root, exec root, socket, pidfile and log live below this.
    pub dir: PathBuf,
    netns: String,
    child: Option<Child>,
    starts: usize,
}

/// Debian's docker CLI, the dockerd's own version (a newer CLI elsewhere on PATH refuses some
/// options against API 1.41, e.g. --mac-address), told the API version anyway.
const DOCKER: &str = "/usr/bin/docker";
const API_VERSION: &str = "1.41";

impl Dockerd {
    /// Starts dockerd in the namespace of the lab's `host` and waits until it answers.
    pub fn start(lab: &Lab, host: &str) -> Dockerd {
        let dir = lab.dir.join("docker");
        std::fs::create_dir_all(&dir).unwrap();
        let mut d = Dockerd {
            dir,
            netns: format!("/run/netns/{}", lab.ns(host)),
            child: None,
            starts: 0,
        };
        d.spawn();
        d
    }

    /// Where the lab's dockerd serves its API (known before it starts).
    pub fn socket_of(lab: &Lab) -> PathBuf {
        lab.dir.join("docker").join("dk.sock")
    }

    pub fn host(&self) -> String {
        format!("unix://{}", self.dir.join("dk.sock").display())
    }

    fn spawn(&mut self) {
        self.starts += 1;
        let log =
            std::fs::File::create(self.dir.join(format!("dockerd.{}.log", self.starts))).unwrap();
        let dir = |sub: &str| self.dir.join(sub).display().to_string();
        let child = Command::new("nsenter")
            .arg(format!("--net={}", self.netns))
            .args([
                "dockerd",
                "--storage-driver=vfs",
                "--bridge=none",
                "--iptables=false",
                "--ip-masq=false",
                "--live-restore",
                "--data-root",
                &dir("data"),
                "--exec-root",
                &dir("exec"),
                "--pidfile",
                &dir("dk.pid"),
                "-H",
                &self.host(),
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting dockerd (apt-get install docker.io)");
        self.child = Some(child);
        let start = Instant::now();
        while !self.docker(&["version"]).status.success() {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "dockerd did not answer within 60 s: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// All of dockerd's logs so far.
    pub fn log(&self) -> String {
        (1..=self.starts)
            .map(|i| {
                std::fs::read_to_string(self.dir.join(format!("dockerd.{i}.log")))
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Stops dockerd with SIGTERM and starts it again (containers keep running: live restore).
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // SAFETY: kill(2) on the nsenter process we spawned (it execs dockerd: same pid).
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let start = Instant::now();
        while matches!(child.try_wait(), Ok(None)) {
            if start.elapsed() > Duration::from_secs(20) {
                let _ = child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.wait();
    }

    /// A docker CLI command against this dockerd.
    pub fn docker(&self, args: &[&str]) -> Output {
        Command::new(DOCKER)
            .args(args)
            .env("DOCKER_HOST", self.host())
            .env("DOCKER_API_VERSION", API_VERSION)
            .stdin(Stdio::null())
            .output()
            .expect("running the docker CLI")
    }

    /// A docker command that must succeed; its stdout, trimmed.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(
            out.status.success(),
            "docker {args:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// A docker command that must fail; its stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(
            !out.status.success(),
            "docker {args:?} should have failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// Imports `local/busybox`: Debian's static busybox with one link per applet, PATH=/bin.
    pub fn import_busybox(&self) {
        let rootfs = busybox_rootfs(&self.dir);
        let script = format!(
            "tar -C {} -c . | {DOCKER} import --change 'ENV PATH=/bin' - local/busybox",
            rootfs.display()
        );
        let out = Command::new("sh")
            .args(["-c", &script])
            .env("DOCKER_HOST", self.host())
            .env("DOCKER_API_VERSION", API_VERSION)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "importing busybox: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `docker run -d --name NAME OPTS... local/busybox CMD...`; returns the container ID.
    pub fn run(&self, name: &str, opts: &[&str], cmd: &[&str]) -> String {
        let mut args = vec!["run", "-d", "--name", name];
        args.extend_from_slice(opts);
        args.push("local/busybox");
        args.extend_from_slice(cmd);
        self.ok(&args)
    }

    /// `docker exec NAME CMD...`.
    pub fn exec(&self, name: &str, cmd: &[&str]) -> Output {
        let mut args = vec!["exec", name];
        args.extend_from_slice(cmd);
        self.docker(&args)
    }

    /// A `docker inspect -f` field of a container.
    pub fn field(&self, name: &str, template: &str) -> String {
        self.ok(&["inspect", "-f", template, name])
    }

    /// The container's address and endpoint ID on `network`.
    pub fn endpoint(&self, name: &str, network: &str) -> (String, String) {
        let f = |key: &str| {
            self.field(
                name,
                &format!("{{{{(index .NetworkSettings.Networks \"{network}\").{key}}}}}"),
            )
        };
        (f("IPAddress"), f("EndpointID"))
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        if self.child.is_some() {
            let ids = self.docker(&["ps", "-aq"]);
            let ids = String::from_utf8_lossy(&ids.stdout).into_owned();
            let ids: Vec<&str> = ids.split_whitespace().collect();
            if !ids.is_empty() {
                let mut args = vec!["rm", "-f"];
                args.extend_from_slice(&ids);
                let _ = self.docker(&args);
            }
        }
        self.stop();
        // A dockerd killed along the way may leave containerd and shims behind: ours name our
        // exec root on their command line.
        kill_processes_naming(&self.dir);
        unmount_below(&self.dir);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
