//! Docker's everyday habits: the container's own environment in `container exec`, its host
//! name, and its /etc/hosts and /etc/hostname as Docker writes them. Real clients (`env`,
//! `hostname`, `cat`, `getent`) run inside the containers.

mod common;

use std::process::Command;

use common::*;

fn short_id(lab: &Lab, name: &str) -> String {
    lab.inspect("container", name)["Id"].as_str().unwrap()[..12].to_string()
}

fn exec(lab: &Lab, name: &str, cmd: &[&str]) -> String {
    let mut args = vec!["container", "exec", name, "--"];
    args.extend_from_slice(cmd);
    lab.cli_ok(&args)
}

#[test]
fn exec_has_the_containers_environment_host_name_and_files() {
    let mut lab = Lab::new("hb");
    lab.daemon("d", &[]);
    let env_file = lab.dir.join("db.env");
    std::fs::write(
        &env_file,
        "# the database\nPOSTGRES_USER=app\n\nGREETING=hello world\n",
    )
    .unwrap();
    let env_file = env_file.display().to_string();
    let db = lab.container(
        "db",
        &[
            "--expose",
            "5432",
            "--env-file",
            &env_file,
            "-e",
            "LEVEL=3",
            "--hostname",
            "dbhost",
        ],
    );
    let web = lab.container(
        "web",
        &[
            "--link",
            &format!("{db}:db"),
            "-e",
            "A=1",
            "-e",
            "PATH=/usr/bin:/bin",
        ],
    );
    let web_id = short_id(&lab, &web);

    // `container exec` runs with the container's variables, not the caller's.
    let out = Command::new(switchyard_bin())
        .args(["container", "exec", &web, "--", "env"])
        .env("SWITCHYARD_SOCKET", lab.socket())
        .env("CALLER_SECRET", "leaked")
        .output()
        .unwrap();
    assert!(out.status.success());
    let env = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<&str> = env.lines().collect();
    for want in [
        "PATH=/usr/bin:/bin".to_string(),
        format!("HOSTNAME={web_id}"),
        "A=1".to_string(),
        format!("DB_NAME=/{web}/db"),
        "DB_PORT_5432_TCP=tcp://172.17.0.2:5432".to_string(),
        "DB_ENV_POSTGRES_USER=app".to_string(),
        "DB_ENV_GREETING=hello world".to_string(),
        "DB_ENV_LEVEL=3".to_string(),
        "HOME=/root".to_string(),
    ] {
        assert!(lines.contains(&want.as_str()), "missing {want} in:\n{env}");
    }
    assert!(!env.contains("CALLER_SECRET"), "{env}");
    let mut listed: Vec<String> = lab
        .cli_ok(&["container", "env", &web])
        .lines()
        .map(String::from)
        .collect();
    listed.sort();
    assert_eq!(
        listed, lines,
        "container env says the same (exec's is sorted)"
    );
    // Docker's default PATH when the container sets none.
    let db_env = exec(&lab, &db, &["env"]);
    assert!(
        db_env.contains("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"),
        "{db_env}"
    );
    assert!(db_env.contains("HOSTNAME=dbhost\n"), "{db_env}");

    // IPv6 is off, as Docker has it on networks without IPv6: no ::1, no link-local address.
    for c in [&web, &db] {
        assert_eq!(
            exec(
                &lab,
                c,
                &["/usr/sbin/sysctl", "-n", "net.ipv6.conf.all.disable_ipv6"]
            ),
            "1\n"
        );
        assert_eq!(exec(&lab, c, &["ip", "-6", "addr", "show"]), "", "{c}");
    }

    // Host names: --hostname, else the short ID; /etc/hostname agrees.
    assert_eq!(exec(&lab, &db, &["hostname"]), "dbhost\n");
    assert_eq!(exec(&lab, &web, &["hostname"]), format!("{web_id}\n"));
    assert_eq!(
        exec(&lab, &web, &["cat", "/etc/hostname"]),
        format!("{web_id}\n")
    );
    assert_eq!(
        lab.inspect("container", &web)["Config"]["Hostname"],
        web_id.as_str()
    );
    assert_eq!(
        lab.inspect("container", &db)["Config"]["Env"],
        serde_json::json!([
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "POSTGRES_USER=app",
            "GREETING=hello world",
            "LEVEL=3"
        ])
    );
    // The host's own name is untouched.
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_ne!(host.trim(), web_id);

    // /etc/hosts exactly as Docker writes it, and resolvers read it.
    let hosts = exec(&lab, &web, &["cat", "/etc/hosts"]);
    assert_eq!(
        hosts,
        format!(
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n\
             ff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n\
             172.17.0.2\tdb dbhost {db}\n172.17.0.3\t{web_id}\n"
        )
    );
    assert!(exec(&lab, &web, &["getent", "hosts", "dbhost"]).starts_with("172.17.0.2"));
    assert!(exec(&lab, &web, &["getent", "hosts", &web_id]).starts_with("172.17.0.3"));

    // A container joining db's namespace has db's host name.
    let joiner = lab.container("j", &["--network", &format!("container:{db}")]);
    assert_eq!(exec(&lab, &joiner, &["hostname"]), "dbhost\n");
    assert!(exec(&lab, &joiner, &["env"]).contains("HOSTNAME=dbhost\n"));

    // Bad input: one line, exit 2, nothing created.
    let x = lab.adopt("x");
    let missing = lab.dir.join("missing.env").display().to_string();
    for (args, expected) in [
        (vec!["-e", "=1"], "the name is empty"),
        (vec!["--hostname", "no_underscores"], "invalid hostname"),
        (vec!["--env-file", missing.as_str()], "--env-file"),
        (
            vec!["--network", &format!("container:{db}"), "--hostname", "h"],
            "conflicting options",
        ),
    ] {
        let before = lab.cli_ok(&["container", "ls"]);
        let mut full = vec!["container", "create", x.as_str()];
        full.extend_from_slice(&args);
        let out = lab.cli(&full);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(expected), "{args:?}: {err}");
        assert_eq!(lab.cli_ok(&["container", "ls"]), before);
    }
}

/// Starts `switchyard daemon` in the lab's switch namespace from `sh -c '... &'` wrapped in
/// `shell` (a format string with `{}` for the daemon's command line), so the shell exits at once
/// and the daemon is re-parented; the daemon runs in network namespace `netns`. Returns the
/// daemon's stderr path.
fn start_detached(lab: &Lab, netns: &str, shell: &str) -> std::path::PathBuf {
    let err = lab.dir.join("detached.err");
    let daemon = format!(
        "setsid ip netns exec {netns} {} daemon --state-dir {} --socket {} </dev/null >/dev/null 2>{}",
        switchyard_bin(),
        lab.state_dir().display(),
        lab.socket().display(),
        err.display()
    );
    must(&["sh", "-c", &shell.replace("{}", &daemon)]);
    err
}

/// Waits for the detached daemon to say it is ready (returns its pid) or to stop (`None`).
fn detached_outcome(err: &std::path::Path) -> (Option<u32>, String) {
    let start = std::time::Instant::now();
    loop {
        let log = std::fs::read_to_string(err).unwrap_or_default();
        if let Some(pid) = log
            .lines()
            .find(|l| l.contains("daemon ready"))
            .and_then(|l| l.split("pid=").nth(1))
            .and_then(|p| p.trim().parse().ok())
        {
            return (Some(pid), log);
        }
        if log.contains("error:") || start.elapsed() > std::time::Duration::from_secs(20) {
            return (None, log);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn a_daemon_started_from_a_shell_that_exits_makes_usable_containers() {
    let mut lab = Lab::new("hx");
    let err = start_detached(&lab, &lab.ns("sw"), "{} &");
    let (pid, log) = detached_outcome(&err);
    let _daemon = KillOnDrop(pid);
    assert!(pid.is_some(), "{log}");
    let c = lab.container("c", &[]);
    // The namespace is visible outside the daemon: to `ip netns exec` here, and to
    // `container exec`.
    let addrs = must(&[
        "ip", "netns", "exec", &c, "ip", "-br", "addr", "show", "eth0",
    ]);
    assert!(addrs.contains("172.17.0.2/16"), "{addrs}");
    let addrs = exec(&lab, &c, &["ip", "-br", "addr", "show", "eth0"]);
    assert!(addrs.contains("172.17.0.2/16"), "{addrs}");
}

#[test]
fn a_daemon_whose_namespaces_no_one_could_see_refuses_to_start() {
    let mut lab = Lab::new("hy");
    // A mount namespace with a /run/netns of its own where the daemon's network namespace is
    // named, gone once its shell exits: names the daemon mounts would reach no one. (The name's
    // file, created in the same directory, stays behind empty; the lab removes it.)
    let hidden = lab.adopt("hidden");
    let shell = format!(
        "unshare --mount --propagation unchanged sh -c \
         'mount --make-private /run/netns && mount --make-shared /run/netns && \
          ip netns add {hidden} && (sleep 0.5; exec {{}}) &'"
    );
    let err = start_detached(&lab, &hidden, &shell);
    let (pid, log) = detached_outcome(&err);
    let _daemon = KillOnDrop(pid);
    assert!(pid.is_none(), "started: {log}");
    assert!(log.contains("nsenter --net="), "{log}");
    assert_eq!(log.lines().count(), 1, "{log}");
}

fn default_route(lab: &Lab, host: &str) -> String {
    lab.exec_ok(host, &["ip", "route", "show", "default"])
        .trim()
        .to_string()
}

#[test]
fn dockerd_bridge_flags_routes_after_connect_and_ip_only_on_user_subnets() {
    let mut lab = Lab::new("hf");
    let flags = [
        "--bip",
        "10.123.0.1/24",
        "--fixed-cidr",
        "10.123.0.128/25",
        "--default-gateway",
        "10.123.0.254",
        "--mtu",
        "1400",
        "--icc=false",
        "--ip-masq=false",
    ];
    let d = lab.daemon("d", &flags);
    let a = lab.container("a", &[]);
    lab.container("b", &[]);
    let addr = lab.exec_ok("a", &["ip", "-o", "addr", "show", "eth0"]);
    assert!(addr.contains("inet 10.123.0.128/24"), "{addr}");
    let link = lab.exec_ok("a", &["ip", "-o", "link", "show", "eth0"]);
    assert!(link.contains("mtu 1400"), "{link}");
    assert!(default_route(&lab, "a").starts_with("default via 10.123.0.254 dev eth0"));
    let bridge = lab.inspect("network", "bridge");
    let ipam = &bridge["IPAM"]["Config"][0];
    assert_eq!(ipam["Subnet"], "10.123.0.0/24");
    assert_eq!(ipam["Gateway"], "10.123.0.1");
    assert_eq!(ipam["IPRange"], "10.123.0.128/25");
    assert_eq!(
        bridge["Options"]["com.docker.network.bridge.enable_icc"],
        "false"
    );
    // --icc=false: containers on the default network do not talk; the gateway is reachable.
    lab.ping_ok("a", "10.123.0.1");
    lab.ping_fails("a", "10.123.0.129");

    // Started again without the flags, the default network stays as it is.
    lab.stop(d);
    let d = lab.daemon("d2", &[]);
    assert_eq!(lab.inspect("network", "bridge")["IPAM"], bridge["IPAM"]);
    // Other flags while containers are on it: refused, one line, nothing changed.
    lab.stop(d);
    let out = lab.daemon_run(&["--bip", "10.124.0.1/24"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("is on it"), "{err}");
    lab.daemon("d3", &[]);
    assert_eq!(lab.inspect("network", "bridge")["IPAM"], bridge["IPAM"]);

    // After `network connect`, the default route follows Docker's rule: the non-internal network
    // whose name sorts first.
    for (name, subnet) in [("alpha", "10.31.0.0/24"), ("zeta", "10.32.0.0/24")] {
        lab.cli_ok(&["network", "create", name, "--subnet", subnet]);
    }
    lab.cli_ok(&["network", "connect", "alpha", &a]);
    assert!(default_route(&lab, "a").starts_with("default via 10.31.0.1 dev eth1"));
    lab.cli_ok(&["network", "connect", "zeta", &a]);
    assert!(default_route(&lab, "a").starts_with("default via 10.31.0.1 dev eth1"));
    lab.cli_ok(&["network", "disconnect", "alpha", &a]);
    assert!(default_route(&lab, "a").starts_with("default via 10.123.0.254 dev eth0"));

    // --ip only where the user chose the subnet, as in Docker.
    lab.cli_ok(&["network", "create", "auto"]);
    let subnet = lab.inspect("network", "auto")["IPAM"]["Config"][0]["Subnet"]
        .as_str()
        .unwrap()
        .to_string();
    let ip = subnet.replace(".0/16", ".9").replace(".0/20", ".9");
    let x = lab.adopt("x");
    let out = lab.cli(&["container", "create", &x, "--network", "auto", "--ip", &ip]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("user configured subnets"), "{err}");
    lab.cli_ok(&["container", "create", &x, "--network", "auto"]);
}

#[test]
fn inspect_and_ls_show_what_docker_shows() {
    let mut lab = Lab::new("hi");
    lab.daemon("d", &[]);
    lab.cli_ok(&["network", "create", "back", "--subnet", "10.41.0.0/24"]);
    let web = lab.container(
        "web",
        &[
            "--network",
            "back",
            "--expose",
            "5432",
            "-p",
            "18080:80",
            "-p",
            "127.0.0.1:15353:53/udp",
        ],
    );
    let db = lab.container("db", &[]);
    let v = lab.inspect("container", &web);
    assert_eq!(
        v["HostConfig"]["NetworkMode"], "back",
        "the network it was made on"
    );
    assert_eq!(
        lab.inspect("container", &db)["HostConfig"]["NetworkMode"],
        "bridge"
    );
    assert_eq!(
        v["NetworkSettings"]["Ports"],
        serde_json::json!({
            "5432/tcp": null,
            "53/udp": [{"HostIp": "127.0.0.1", "HostPort": "15353"}],
            "80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "18080"}]
        })
    );
    assert_eq!(
        v["HostConfig"]["PortBindings"],
        serde_json::json!({
            "53/udp": [{"HostIp": "127.0.0.1", "HostPort": "15353"}],
            "80/tcp": [{"HostIp": "", "HostPort": "18080"}]
        })
    );
    let bridge = lab.inspect("network", "bridge");
    assert_eq!(bridge["ConfigFrom"], serde_json::json!({"Network": ""}));
    assert_eq!(bridge["ConfigOnly"], false);
    assert_eq!(
        bridge["Options"]["com.docker.network.bridge.default_bridge"],
        "true"
    );
    let back = lab.inspect("network", "back");
    assert!(back["Options"]
        .get("com.docker.network.bridge.default_bridge")
        .is_none());

    // `container ls -q` and `--format`, as `docker ps`.
    let quiet = lab.cli_ok(&["container", "ls", "-q"]);
    let mut ids: Vec<&str> = quiet.lines().collect();
    ids.sort();
    let mut want = vec![short_id(&lab, &web), short_id(&lab, &db)];
    want.sort();
    assert_eq!(ids, want);
    let lines = lab.cli_ok(&[
        "container",
        "ls",
        "--format",
        r"{{.Names}}\t{{.Networks}}\t{{.Ports}}",
    ]);
    let web_line = lines.lines().find(|l| l.starts_with(&web)).unwrap();
    assert_eq!(
        web_line,
        format!("{web}\tback\t127.0.0.1:15353->53/udp, 5432/tcp, 0.0.0.0:18080->80/tcp")
    );
    let table = lab.cli_ok(&["container", "ls", "--format", "table {{.ID}}\t{{.Names}}"]);
    assert!(table.starts_with("CONTAINER ID   NAMES\n"), "{table}");
    let out = lab.cli(&["container", "ls", "--format", "{{.Image}}"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}
