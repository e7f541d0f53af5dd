//! Architecture invariants that the compiler cannot check, checked over the source tree.
//!
//! Each test names the ARCHITECTURE.md invariant it holds true. They read the workspace's `.rs`
//! files; "code" means a file's text before its first `#[cfg(test)]` (tests sit at the end of a file
//! in this tree, or in files of their own, which these checks skip by name).

use std::fs;
use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("control/ has a parent")
        .to_path_buf()
}

/// Every `.rs` file under `dir` (relative to the workspace), sorted.
fn rust_files(dir: &str) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                if p.file_name().is_some_and(|n| n != "target") {
                    walk(&p, out);
                }
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(&workspace().join(dir), &mut out);
    out.sort();
    assert!(
        !out.is_empty(),
        "no .rs files under {dir}: the check would pass vacuously"
    );
    out
}

fn is_test_file(p: &Path) -> bool {
    let name = p.file_name().unwrap().to_string_lossy();
    name == "tests.rs"
        || name.ends_with("_tests.rs")
        || p.components().any(|c| c.as_os_str() == "testdata")
}

/// A line without its string literals' contents and without a trailing `//` comment.
fn strip(line: &str) -> String {
    let mut out = String::new();
    let (mut in_str, mut escaped) = (false, false);
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if in_str {
            match (escaped, c) {
                (false, '\\') => escaped = true,
                (false, '"') => {
                    in_str = false;
                    out.push('"');
                }
                _ => escaped = false,
            }
        } else if c == '"' {
            in_str = true;
            out.push('"');
        } else if c == '/' && chars.peek() == Some(&'/') {
            break;
        } else {
            out.push(c);
        }
    }
    out
}

/// The file's code (string contents and comments removed) before its test module, with line
/// numbers.
fn code_lines(p: &Path) -> Vec<(usize, String)> {
    let text = fs::read_to_string(p).unwrap();
    text.lines()
        .enumerate()
        .take_while(|(_, l)| l.trim() != "#[cfg(test)]")
        .map(|(i, l)| (i + 1, strip(l)))
        .collect()
}

fn rel(p: &Path) -> String {
    p.strip_prefix(workspace()).unwrap().display().to_string()
}

/// **Architecture Invariant:** every `unsafe` block and impl carries a `// SAFETY:` comment just
/// above it (or on its line).
#[test]
fn every_unsafe_block_says_why_it_is_sound() {
    let mut missing = Vec::new();
    for dir in ["dataplane", "control", "bench", "tests"] {
        for p in rust_files(dir) {
            let text = fs::read_to_string(&p).unwrap();
            let lines: Vec<&str> = text.lines().collect();
            for (i, l) in lines.iter().enumerate() {
                let code = strip(l);
                if !(code.contains("unsafe {") || code.contains("unsafe impl")) {
                    continue;
                }
                // The comment may sit on the line itself or on the few lines above it (a
                // multi-line comment, or `let x =` wrapped by rustfmt before the block).
                let window = &lines[i.saturating_sub(6)..=i];
                if !window.iter().any(|w| w.contains("SAFETY:")) {
                    missing.push(format!("{}:{}: {}", rel(&p), i + 1, l.trim()));
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "unsafe without a SAFETY comment:\n{}",
        missing.join("\n")
    );
}

/// **Architecture Invariant:** `unsafe` lives only where the OS interface needs it: ports, engine
/// thread placement, the tables' huge pages (madvise) and
/// prefetch hints, namespaces, process signals, the state file
/// lock, the test and benchmark allocators, and the benchmarks' own sockets (connrate, txpath).
#[test]
fn unsafe_only_at_the_os_interface() {
    let allowed = [
        "dataplane/src/port/",
        "dataplane/src/engine/affinity.rs",
        "dataplane/src/table/huge_pages.rs",
        "dataplane/src/table/prefetch.rs",
        "control/src/netns/",
        "control/src/process.rs",
        "control/src/store.rs",
        "control/src/daemon/",
        "control/src/cli/",
        "bench/src/bin/connrate.rs",
        "bench/src/bin/txpath.rs",
        "bench/src/bin/relay.rs",
        "bench/benches/scale.rs",
        "tests/common/",
    ];
    let mut outside = Vec::new();
    for dir in ["dataplane/src", "control/src", "bench", "tests"] {
        for p in rust_files(dir) {
            let r = rel(&p);
            if allowed.iter().any(|a| r.starts_with(a)) {
                continue;
            }
            for (n, l) in code_lines(&p) {
                if l.contains("unsafe ") {
                    outside.push(format!("{r}:{n}: {}", l.trim()));
                }
            }
        }
    }
    assert!(
        outside.is_empty(),
        "unsafe outside the OS interface:\n{}",
        outside.join("\n")
    );
}

/// Lines of code under `dir` (files named as tests skipped) that contain any of `needles`.
fn find_in_code(dir: &str, needles: &[&str]) -> Vec<String> {
    let mut hits = Vec::new();
    for p in rust_files(dir) {
        if is_test_file(&p) {
            continue;
        }
        for (n, l) in code_lines(&p) {
            if let Some(needle) = needles.iter().find(|x| l.contains(*x)) {
                hits.push(format!("{}:{n}: `{needle}` in: {}", rel(&p), l.trim()));
            }
        }
    }
    hits
}

/// **Architecture Invariant:** stages do no I/O, no logging and no allocation.
#[test]
fn stages_do_no_io_no_logging_no_allocation() {
    let hits = find_in_code(
        "dataplane/src/stage",
        &[
            "std::fs",
            "std::io",
            "std::net::Tcp",
            "std::net::Udp",
            "libc::",
            "tracing::",
            "println!",
            "eprintln!",
            "format!",
            "vec!",
            "Vec::",
            "Box::",
            "String",
            ".to_string()",
            ".to_owned()",
            ".push(",
            "HashMap",
            "Rc::",
            "Arc::",
        ],
    );
    assert!(
        hits.is_empty(),
        "stage/ must stay pure:\n{}",
        hits.join("\n")
    );
}

/// **Architecture Invariant:** `wire/` is the vocabulary of the packet path: EtherTypes, IP
/// protocol numbers and ARP codes are defined once, there (`wire::ethernet::ethertype`,
/// `wire::ipv4::protocol`, `wire::arp`), and everything else imports them.
#[test]
fn protocol_constants_are_defined_only_in_wire() {
    let needles = [
        "const ETHERTYPE",
        "const ETH_P_",
        "const PROTO_",
        "const IPPROTO",
        "const ARPHRD",
        "const ARPOP",
    ];
    let mut hits = Vec::new();
    for dir in ["dataplane/src", "control/src", "bench"] {
        hits.extend(
            find_in_code(dir, &needles)
                .into_iter()
                .filter(|h| !h.starts_with("dataplane/src/wire/")),
        );
    }
    assert!(
        hits.is_empty(),
        "protocol constants belong in dataplane/src/wire:\n{}",
        hits.join("\n")
    );
}

/// **Architecture Invariant:** no lock on the per-packet path that a worker waits for. A blocking
/// `lock()` in the data plane is taken only by the control plane's calls (placing and removing
/// ports, opening a port's receivers, a port's drop) or in the in-memory test ports; the packet
/// path only ever `try_lock`s, and the data plane has no `RwLock`, `Condvar` or `Barrier` at all.
///
/// Read from the syntax tree (`syn`), not the text: a lock is charged to the function whose body
/// holds it, a nested `fn` being a function of its own (a closure belongs to the function that
/// writes it); `#[cfg(test)]` items are skipped.
#[test]
fn the_packet_path_never_waits_for_a_lock() {
    // (file, function): where a blocking lock is allowed, and why.
    let allowed: &[(&str, &str)] = &[
        // The engine handle's port placement: control plane calls.
        ("dataplane/src/engine/command.rs", "place_port"),
        ("dataplane/src/engine/command.rs", "remove_port"),
        // A fanout group's members: the helper itself, a port's drop, a new receiver.
        ("dataplane/src/port/afpacket.rs", "lock"),
        ("dataplane/src/port/afpacket.rs", "drop"),
        ("dataplane/src/port/afpacket.rs", "new_receiver"),
        // The VXLAN socket's registry: a port added, a port dropped.
        ("dataplane/src/port/vxlan.rs", "port"),
        ("dataplane/src/port/vxlan.rs", "drop"),
        // The in-memory port's queues, shared with the test that feeds it (module docs).
        ("dataplane/src/port/memory.rs", "*"),
    ];
    let mut waits = Vec::new();
    for p in rust_files("dataplane/src") {
        let file = rel(&p);
        if is_test_file(&p) {
            continue;
        }
        for w in lock_waits(&fs::read_to_string(&p).unwrap()) {
            if !allowed.contains(&(file.as_str(), w.function.as_str()))
                && !allowed.contains(&(file.as_str(), "*"))
            {
                waits.push(format!(
                    "{file}:{}: in fn {}: {}",
                    w.line, w.function, w.what
                ));
            }
        }
    }
    assert!(
        waits.is_empty(),
        "a blocking lock outside the control plane's calls (use try_lock, or say why here):\n{}",
        waits.join("\n")
    );
}

/// The scan itself, on code written to trip it: a nested function is charged with its own lock,
/// closures and `Mutex::lock(&m)` are seen, `try_lock` and test modules are not.
#[test]
fn the_lock_scan_charges_the_function_that_waits() {
    let found = lock_waits(
        "struct Port;
         impl Port {
             fn place(&self, m: &Mutex<u8>) {
                 let _ = m.lock();
                 fn on_packet(m: &Mutex<u8>) { let _g = m.lock().unwrap(); }
                 let f = |m: &Mutex<u8>| Mutex::lock(m).is_ok();
             }
             fn poll(&self, m: &Mutex<u8>) { let _ = m.try_lock(); }
         }
         static SHARED: std::sync::RwLock<u8> = std::sync::RwLock::new(0);
         #[cfg(test)]
         mod tests { fn t(m: &Mutex<u8>) { let _ = m.lock(); } }",
    );
    let got: Vec<(&str, usize)> = found
        .iter()
        .map(|w| (w.function.as_str(), w.line))
        .collect();
    assert_eq!(
        got,
        [
            ("place", 4),
            ("on_packet", 5),
            ("place", 6),
            ("", 10),
            ("", 10)
        ],
        "{found:?}"
    );
}

/// One blocking wait found by [`lock_waits`].
#[derive(Debug)]
struct LockWait {
    /// The innermost named function around it ("" outside any).
    function: String,
    line: usize,
    what: &'static str,
}

/// Every blocking wait on a lock in `source` outside `#[cfg(test)]` items: `x.lock()`,
/// `Mutex::lock(x)`, and any mention of `RwLock`, `Condvar` or `Barrier`.
fn lock_waits(source: &str) -> Vec<LockWait> {
    use syn::spanned::Spanned;
    use syn::visit::{self, Visit};

    fn is_cfg_test(attrs: &[syn::Attribute]) -> bool {
        attrs.iter().any(|a| {
            a.path().is_ident("cfg") && a.parse_args::<syn::Ident>().is_ok_and(|i| i == "test")
        })
    }

    struct Scan {
        functions: Vec<String>,
        found: Vec<LockWait>,
    }
    impl Scan {
        fn found(&mut self, span: proc_macro2::Span, what: &'static str) {
            self.found.push(LockWait {
                function: self.functions.last().cloned().unwrap_or_default(),
                line: span.start().line,
                what,
            });
        }
        fn in_function(&mut self, name: &syn::Ident, visit: impl FnOnce(&mut Self)) {
            self.functions.push(name.to_string());
            visit(self);
            self.functions.pop();
        }
    }
    impl<'ast> Visit<'ast> for Scan {
        fn visit_item_fn(&mut self, f: &'ast syn::ItemFn) {
            if !is_cfg_test(&f.attrs) {
                self.in_function(&f.sig.ident, |s| visit::visit_item_fn(s, f));
            }
        }
        fn visit_impl_item_fn(&mut self, f: &'ast syn::ImplItemFn) {
            if !is_cfg_test(&f.attrs) {
                self.in_function(&f.sig.ident, |s| visit::visit_impl_item_fn(s, f));
            }
        }
        fn visit_trait_item_fn(&mut self, f: &'ast syn::TraitItemFn) {
            self.in_function(&f.sig.ident, |s| visit::visit_trait_item_fn(s, f));
        }
        fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
            if !is_cfg_test(&m.attrs) {
                visit::visit_item_mod(self, m);
            }
        }
        fn visit_item_impl(&mut self, i: &'ast syn::ItemImpl) {
            if !is_cfg_test(&i.attrs) {
                visit::visit_item_impl(self, i);
            }
        }
        fn visit_expr_method_call(&mut self, c: &'ast syn::ExprMethodCall) {
            if c.method == "lock" && c.args.is_empty() {
                self.found(c.method.span(), "x.lock()");
            }
            visit::visit_expr_method_call(self, c);
        }
        fn visit_expr_call(&mut self, c: &'ast syn::ExprCall) {
            if let syn::Expr::Path(p) = &*c.func {
                if p.path.segments.last().is_some_and(|s| s.ident == "lock") {
                    self.found(p.span(), "Mutex::lock(x)");
                }
            }
            visit::visit_expr_call(self, c);
        }
        fn visit_path_segment(&mut self, s: &'ast syn::PathSegment) {
            if ["RwLock", "Condvar", "Barrier"]
                .iter()
                .any(|t| s.ident == t)
            {
                self.found(s.ident.span(), "RwLock, Condvar or Barrier");
            }
            visit::visit_path_segment(self, s);
        }
    }
    let file = syn::parse_file(source).expect("the data plane's sources parse");
    let mut scan = Scan {
        functions: Vec::new(),
        found: Vec::new(),
    };
    scan.visit_file(&file);
    scan.found
}
