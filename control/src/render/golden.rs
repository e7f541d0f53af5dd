//! Golden files: renderings kept byte for byte in `src/render/testdata/`, so that a refactoring of
//! a renderer shows any change in its output.

use std::path::Path;

/// Compares `actual` with `src/render/testdata/NAME`; `SWITCHYARD_BLESS=1` writes it instead.
pub(crate) fn golden(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/render/testdata")
        .join(name);
    if std::env::var_os("SWITCHYARD_BLESS").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (SWITCHYARD_BLESS=1 writes it)", path.display()));
    if expected != actual {
        let line = expected
            .lines()
            .zip(actual.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(expected.lines().count().min(actual.lines().count()));
        panic!(
            "{name} differs from {} at line {}:\n  expected {:?}\n  actual   {:?}",
            path.display(),
            line + 1,
            expected.lines().nth(line),
            actual.lines().nth(line)
        );
    }
}
