//! Architecture invariants of `control/` that a test can check by reading the source: no import
//! circles between its modules, `model/` does no I/O, and the daemon reaches the engine only
//! through `System`. Test code (`tests.rs` files and `#[cfg(test)] mod tests` blocks) is not
//! read: it may use anything.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file below `dir` except test files, with its path relative to `dir`.
fn sources(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("reading the source tree") {
            let path = entry.expect("reading the source tree").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs")
                && path.file_name().is_none_or(|n| n != "tests.rs")
            {
                let text = std::fs::read_to_string(&path).expect("reading a source file");
                let rel = path.strip_prefix(dir).expect("below dir").to_string_lossy();
                out.push((rel.into_owned(), code_only(&text)));
            }
        }
    }
    out.sort();
    out
}

/// The text without comments and without the trailing `#[cfg(test)] mod tests` block.
fn code_only(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => text,
    };
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The top-level modules `code` names through `crate::`, grouped imports included
/// (`use crate::{api::X, model::{Y, Z}}`).
fn crate_refs(code: &str) -> BTreeSet<String> {
    let mut refs = BTreeSet::new();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // Names at the group's first level only.
            let mut depth = 1;
            let mut at_start = true;
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    ',' if depth == 1 => at_start = true,
                    c if c.is_whitespace() => {}
                    _ if depth == 1 && at_start => {
                        refs.insert(ident(&group[j..]));
                        at_start = false;
                    }
                    _ => {}
                }
            }
        } else {
            refs.insert(ident(rest));
        }
    }
    refs.retain(|r| !r.is_empty());
    refs
}

/// `api.rs` and `api/x.rs` are both module `api`.
fn top_module(rel: &str) -> String {
    rel.split('/')
        .next()
        .expect("a path")
        .trim_end_matches(".rs")
        .to_string()
}

/// A circle in `graph`, if any, as the modules along it.
fn find_circle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|n| n == node) {
            let mut circle = path[i..].to_vec();
            circle.push(node.to_string());
            return Some(circle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(c) = visit(next, graph, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        if let Some(c) = visit(node, graph, &mut Vec::new(), &mut done) {
            return Some(c);
        }
    }
    None
}

/// Which top-level module of `control/src` uses which.
fn module_graph() -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (rel, code) in sources(&src()) {
        let from = top_module(&rel);
        // This file names modules in its strings; it is test code.
        if from == "lib" || from == "main" || from == "layering" {
            continue;
        }
        let uses = graph.entry(from.clone()).or_default();
        uses.extend(crate_refs(&code).into_iter().filter(|to| *to != from));
    }
    graph
}

#[test]
fn no_import_circles_between_modules() {
    let graph = module_graph();
    assert!(graph.contains_key("daemon") && graph["cli"].contains("daemon"));
    if let Some(circle) = find_circle(&graph) {
        panic!(
            "import circle in control/src: {}\nmodule graph: {graph:#?}",
            circle.join(" -> ")
        );
    }
}

/// The protocol is plain data that names nothing else of the crate; renderers read the API's and
/// the model's types, and neither the API nor the model knows a renderer.
#[test]
fn renderers_depend_on_the_api_never_the_reverse() {
    let graph = module_graph();
    assert!(graph["render"].contains("api"), "{graph:#?}");
    assert_eq!(graph["api"], BTreeSet::new(), "api names other modules");
    assert!(!graph["model"].contains("render"), "model names render");
}

/// Front ends other than the CLI are thin: the CNI plugin speaks to the daemon only through the
/// API (it cannot reach the model, the daemon or the system).
#[test]
fn the_cni_plugin_speaks_only_the_api() {
    let graph = module_graph();
    assert_eq!(
        graph["cni"],
        BTreeSet::from(["api".to_string()]),
        "{graph:#?}"
    );
}

#[test]
fn the_checks_see_what_they_look_for() {
    assert_eq!(
        crate_refs("use crate::{api::{self, X}, model::Y};\nlet a = crate::netns::open();"),
        ["api", "model", "netns"].map(String::from).into()
    );
    let mut graph = BTreeMap::new();
    graph.insert("a".to_string(), BTreeSet::from(["b".to_string()]));
    graph.insert("b".to_string(), BTreeSet::from(["c".to_string()]));
    assert_eq!(find_circle(&graph), None);
    graph.insert("c".to_string(), BTreeSet::from(["a".to_string()]));
    assert_eq!(
        find_circle(&graph),
        Some(["a", "b", "c", "a"].map(String::from).to_vec())
    );
    assert_eq!(code_only("let x = 1; // std::fs\n"), "let x = 1; ");
}

/// What `model/` must not name: files, sockets, processes, the environment, the clock, the
/// random pool, system calls, and the modules that do those.
const IO: &[&str] = &[
    "std::fs",
    "std::net::Tcp",
    "std::net::Udp",
    "std::os::unix::net",
    "std::process",
    "std::env",
    "std::io::std",
    "File::",
    "OpenOptions",
    "SystemTime",
    "Instant::now",
    "getrandom",
    "libc::",
    "println!",
    "eprintln!",
    "crate::netns",
    "crate::store",
    "crate::daemon",
    "dataplane::engine",
    "dataplane::port",
];

#[test]
fn model_does_no_io() {
    let mut found = Vec::new();
    for (rel, code) in sources(&src().join("model")) {
        for word in IO {
            if code.contains(word) {
                found.push(format!("model/{rel}: {word}"));
            }
        }
    }
    assert!(found.is_empty(), "model/ does I/O: {found:#?}");
}

#[test]
fn the_daemon_reaches_the_engine_only_through_system() {
    for (rel, code) in sources(&src().join("daemon")) {
        if !rel.starts_with("system") {
            assert!(
                !code.contains("system.engine") && !code.contains("EngineHandle"),
                "daemon/{rel} reaches around System into the engine"
            );
        }
    }
}

/// Front ends turn their protocol into `api` requests sent over the daemon's socket; the daemon's
/// request handling knows none of them (only its start-up, `server.rs`, starts the Docker plugin).
#[test]
fn front_ends_speak_only_the_api() {
    let graph = module_graph();
    assert_eq!(
        graph["docker"],
        BTreeSet::from(["api".to_string()]),
        "docker/ names more than the api"
    );
    for (rel, code) in sources(&src().join("daemon")) {
        if rel != "server.rs" {
            assert!(
                !code.contains("crate::docker") && !code.to_lowercase().contains("docker plugin"),
                "daemon/{rel} knows the Docker front end"
            );
        }
    }
}

#[test]
fn the_dns_resolver_is_a_front_end() {
    // It answers from the name table the daemon hands it; it never reaches into the daemon, the
    // store or the namespaces.
    let graph = module_graph();
    let uses = &graph["dns"];
    for inner in ["daemon", "store", "netns", "cli", "render"] {
        assert!(!uses.contains(inner), "dns/ names {inner}: {uses:?}");
    }
}
