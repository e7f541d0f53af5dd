//! `switchyard container ...`: lightweight containers (named network namespaces), as clients of
//! the daemon. `exec` enters the namespace itself, as `ip netns exec` does.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::ExitCode;

use clap::Subcommand;

use super::{client_fail, finish, print_table, unexpected};
use crate::api::{self, ContainerCreate, Request, Response};
use crate::process::fail;

// Parsed once per process: the size of `Create` costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
pub enum ContainerCommand {
    /// Create a container: a network namespace named NAME with eth0 on NETWORK.
    Create {
        name: String,
        /// A network, or a mode: `none` (only lo), `host` (the daemon's namespace), or
        /// `container:OTHER` (OTHER's namespace: same interfaces and addresses).
        #[arg(long, value_name = "NETWORK", default_value = "bridge")]
        network: String,
        /// A fixed address (default: the next free one of the network).
        #[arg(long, value_name = "IP")]
        ip: Option<String>,
        /// A fixed MAC (default: random, locally administered).
        #[arg(long, value_name = "MAC")]
        mac: Option<String>,
        /// Set an environment variable of the container (a bare KEY takes this shell's value, as
        /// Docker's does). Repeat.
        #[arg(long = "env", short = 'e', value_name = "KEY[=VALUE]")]
        env: Vec<String>,
        /// Read environment variables from a file: KEY=VALUE lines, `#` comments, a bare KEY
        /// from this shell (Docker's format; -e given later wins). Repeat.
        #[arg(long = "env-file", value_name = "FILE")]
        env_file: Vec<std::path::PathBuf>,
        /// A port the container offers to linked containers: PORT[/tcp|udp] or START-END[/PROTO]. Repeat.
        #[arg(long, value_name = "PORT[/PROTO]")]
        expose: Vec<String>,
        /// Reach CONTAINER's exposed ports under ALIAS (env vars, /etc/hosts, and on an icc=false
        /// network, the only traffic allowed between the two). Repeat.
        #[arg(long = "link", value_name = "CONTAINER[:ALIAS]")]
        links: Vec<String>,
        /// Let the container send from any MAC and address (for router-like containers).
        #[arg(long)]
        allow_spoofing: bool,
        /// Publish a port on the uplink address (Docker's syntax: [IP:][HOSTPORT:]CONTAINERPORT[/PROTO],
        /// ranges allowed). Repeat.
        #[arg(long = "publish", short = 'p', value_name = "SPEC")]
        publish: Vec<String>,
        /// Publish every exposed port on a free host port of the ephemeral range.
        #[arg(long = "publish-all", short = 'P')]
        publish_all: bool,
        /// Make no namespace: leave the veth's container end in the daemon's namespace under
        /// this name (MAC and MTU set, no address, down) for another tool to move, as Docker's
        /// plugin and CNI runtimes do. Deleting the container deletes the veth wherever it is.
        #[arg(long, value_name = "IFNAME")]
        handoff: Option<String>,
        /// The container's host name (default: its short ID, as Docker's).
        #[arg(long, value_name = "NAME")]
        hostname: Option<String>,
        /// Another DNS name of the container on its network (Docker's --network-alias). Repeat.
        #[arg(long = "alias", alias = "network-alias", value_name = "NAME")]
        aliases: Vec<String>,
        /// An upstream DNS server for this container's names that are not local. Repeat.
        #[arg(long = "dns", value_name = "IP")]
        dns: Vec<String>,
        /// A search domain for the container's resolv.conf. Repeat.
        #[arg(long = "dns-search", value_name = "DOMAIN")]
        dns_search: Vec<String>,
        /// A resolv.conf option (ndots:2, timeout:1, ...). Repeat.
        #[arg(long = "dns-option", alias = "dns-opt", value_name = "OPTION")]
        dns_options: Vec<String>,
        /// A line of the container's /etc/hosts: NAME:IP (IP may be host-gateway). Repeat.
        #[arg(long = "add-host", value_name = "NAME:IP")]
        add_hosts: Vec<String>,
    },
    /// Print the environment variables Docker would give the container for its links.
    Env { name: String },
    /// Add a link to an existing container (takes effect at once).
    Link {
        name: String,
        #[arg(value_name = "CONTAINER[:ALIAS]")]
        link: String,
    },
    /// Remove a link (takes effect at once, also for established connections).
    Unlink { name: String, alias: String },
    /// Remove containers: their namespace, veths and addresses.
    #[command(alias = "remove")]
    Rm {
        #[arg(required = true)]
        names: Vec<String>,
        /// Also remove containers that joined this one's namespace (--network container:NAME).
        #[arg(long, short = 'f')]
        force: bool,
    },
    /// List containers, one line per network attachment.
    #[command(alias = "list", alias = "ps")]
    Ls {
        /// Only the containers' short IDs, one per line (`docker ps -q`).
        #[arg(short, long)]
        quiet: bool,
        /// One line per container from a template, as `docker ps --format`: `{{.ID}}`,
        /// `{{.Names}}`, `{{.Networks}}`, `{{.Ports}}`, `{{.State}}`, `{{.Status}}`, `{{json .}}`;
        /// `table ...` prints headers.
        #[arg(long, value_name = "TEMPLATE", conflicts_with = "quiet")]
        format: Option<String>,
    },
    /// Show containers as JSON, with Docker's field names.
    Inspect {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Run a command inside the container's namespace (its /etc/netns/NAME files shown in /etc).
    Exec {
        name: String,
        #[arg(required = true, last = true, value_name = "CMD")]
        command: Vec<String>,
    },
}

pub fn run(cmd: ContainerCommand, socket: &Path) -> ExitCode {
    let request = match cmd {
        ContainerCommand::Create {
            name,
            network,
            ip,
            mac,
            env,
            env_file,
            expose,
            links,
            allow_spoofing,
            publish,
            publish_all,
            handoff,
            hostname,
            aliases,
            dns,
            dns_search,
            dns_options,
            add_hosts,
        } => {
            let env = match environment(&env_file, &env, |k| std::env::var(k).ok()) {
                Ok(env) => env,
                Err(e) => return fail(crate::process::EXIT_BAD_INPUT, &e),
            };
            Request::ContainerCreate(ContainerCreate {
                name,
                network,
                ip,
                mac,
                env,
                expose,
                links,
                allow_spoofing,
                publish,
                publish_all,
                handoff,
                id: None,
                hostname,
                aliases,
                dns,
                dns_search,
                dns_options,
                add_hosts,
            })
        }
        ContainerCommand::Env { name } => Request::ContainerEnv { name },
        ContainerCommand::Link { name, link } => Request::ContainerLink { name, link },
        ContainerCommand::Unlink { name, alias } => Request::ContainerUnlink { name, alias },
        ContainerCommand::Rm { names, force } => Request::ContainerRm { names, force },
        ContainerCommand::Ls { quiet, format } => {
            let template = match format.as_deref().map(super::format::Template::parse) {
                Some(Err(e)) => return fail(crate::process::EXIT_BAD_INPUT, &anyhow::anyhow!(e)),
                Some(Ok(t)) => Some(t),
                None => quiet
                    .then(|| super::format::Template::parse("{{.ID}}").expect("a valid template")),
            };
            if let Some(t) = template {
                return finish(api::call(socket, Request::ContainerLs), &[], |r| match r {
                    Response::Containers(list) => {
                        for line in t.render(&list) {
                            println!("{line}");
                        }
                        Ok(())
                    }
                    other => Err(other),
                });
            }
            Request::ContainerLs
        }
        ContainerCommand::Inspect { names } => Request::ContainerInspect { names },
        ContainerCommand::Exec { name, command } => return exec(socket, &name, &command),
    };
    let removed = match &request {
        Request::ContainerRm { names, .. } => names.clone(),
        _ => Vec::new(),
    };
    finish(api::call(socket, request), &removed, |response| {
        let list = match response {
            Response::Containers(list) => list,
            Response::Env(vars) => {
                for (k, v) in vars {
                    println!("{k}={v}");
                }
                return Ok(());
            }
            other => return Err(other),
        };
        let mut rows = Vec::new();
        for c in list {
            if c.endpoints.is_empty() {
                rows.push(vec![c.id[..12].to_string(), c.name.clone()]);
            }
            for e in c.endpoints {
                rows.push(vec![
                    c.id[..12].to_string(),
                    c.name.clone(),
                    e.network,
                    e.interface,
                    e.address,
                    e.mac,
                ]);
            }
        }
        print_table(
            &[
                "CONTAINER ID",
                "NAME",
                "NETWORK",
                "INTERFACE",
                "ADDRESS",
                "MAC",
            ],
            &rows,
        );
        Ok(())
    })
}

/// Asks the daemon that the container exists, enters its namespace and replaces this process
/// with the command, so its exit code is the command's. The command runs as `docker exec` runs
/// it: with the container's environment (not the caller's) and its host name (in a UTS
/// namespace of its own, made for this command).
fn exec(socket: &Path, name: &str, command: &[String]) -> ExitCode {
    let names = vec![name.to_string()];
    let (sandbox, hostname) = match api::call(socket, Request::ContainerInspect { names }) {
        Ok(Response::ContainerDetails(d)) if !d.is_empty() => (
            d[0].network_settings.sandbox_key.clone(),
            d[0].config.hostname.clone(),
        ),
        Ok(other) => return unexpected(other),
        Err(e) => return client_fail(e),
    };
    let env = match api::call(
        socket,
        Request::ContainerEnv {
            name: name.to_string(),
        },
    ) {
        Ok(Response::Env(env)) => env,
        Ok(other) => return unexpected(other),
        Err(e) => return client_fail(e),
    };
    // A named namespace (its own, or the one it joined) shows its /etc/netns files, as
    // `ip netns exec` does; `--network host` runs in the daemon's namespace as it is.
    let entered = match sandbox.strip_prefix("/run/netns/") {
        Some(ns) => crate::netns::enter_for_exec(ns),
        None => crate::netns::enter_path_for_exec(std::path::Path::new(&sandbox), None),
    }
    .and_then(|()| match hostname.as_str() {
        "" => Ok(()),
        h => crate::netns::enter_uts_for_exec(h),
    });
    if let Err(e) = entered {
        return fail(1, &anyhow::Error::new(e));
    }
    let err = std::process::Command::new(&command[0])
        .args(&command[1..])
        .env_clear()
        .envs(env)
        .exec();
    fail(127, &anyhow::anyhow!("cannot run '{}': {err}", command[0]))
}

/// The container's variables from `--env-file`s then `-e`s, as Docker's client reads them: a
/// file's lines are `KEY=VALUE`, blank, or `#` comments (leading whitespace ignored); a bare
/// `KEY` (in a file or after `-e`) takes `lookup(KEY)` and is left out when that has none.
fn environment(
    files: &[std::path::PathBuf],
    flags: &[String],
    lookup: impl Fn(&str) -> Option<String>,
) -> anyhow::Result<Vec<String>> {
    let resolve = |entry: &str| -> Option<String> {
        match entry.split_once('=') {
            Some(_) => Some(entry.to_string()),
            None => lookup(entry).map(|v| format!("{entry}={v}")),
        }
    };
    let mut env = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(file)
            .map_err(|e| anyhow::anyhow!("--env-file {}: {e}", file.display()))?;
        for (n, line) in text.lines().enumerate() {
            let line = line.trim_start_matches('\u{feff}').trim_start();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let key = line.split_once('=').map_or(line, |(k, _)| k);
            if key.chars().any(char::is_whitespace) {
                anyhow::bail!(
                    "--env-file {} line {}: variable '{key}' contains whitespaces",
                    file.display(),
                    n + 1
                );
            }
            env.extend(resolve(line));
        }
    }
    env.extend(flags.iter().filter_map(|f| resolve(f)));
    Ok(env)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_files_then_flags_with_bare_keys_from_the_shell() {
        let dir = std::env::temp_dir().join(format!("sy-envfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("env");
        std::fs::write(
            &file,
            "\u{feff}# a comment\n\nA=1\n  B=two words \nFROM_SHELL\nUNSET\nC=x=y\n",
        )
        .unwrap();
        let lookup = |k: &str| (k == "FROM_SHELL").then(|| "shell".to_string());
        let env = environment(
            std::slice::from_ref(&file),
            &["A=3".into(), "FROM_SHELL".into(), "UNSET".into()],
            lookup,
        )
        .unwrap();
        assert_eq!(
            env,
            [
                "A=1",
                "B=two words ",
                "FROM_SHELL=shell",
                "C=x=y",
                "A=3",
                "FROM_SHELL=shell"
            ]
        );
        std::fs::write(&file, "GOOD=1\nBAD KEY=2\n").unwrap();
        let err = environment(std::slice::from_ref(&file), &[], lookup).unwrap_err();
        assert!(
            err.to_string()
                .contains("line 2: variable 'BAD KEY' contains whitespaces"),
            "{err}"
        );
        let err = environment(&[dir.join("missing")], &[], lookup).unwrap_err();
        assert!(err.to_string().contains("--env-file"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
