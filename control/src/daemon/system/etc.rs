//! The files the daemon keeps under `/etc/netns/NAME` (hosts, hostname, resolv.conf), written only
//! when their text changes.
//!
//! Every request that may change the state rewrites what the whole state implies, and these files
//! were written for every container each time: 3 files (write + rename each) per container per
//! request made creating the 1,000th container cost 1,000 times the first one's file I/O, so
//! creating N containers took O(N^2) (bench/RESULTS.md). The daemon now remembers the text it last
//! wrote at each path and writes only what differs; a container's directory is forgotten when it
//! is removed. A file changed behind the daemon's back is put right the next time its text changes
//! (before, at the next request of any kind), and after a restart every file is written once.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

#[derive(Default)]
pub(super) struct EtcFiles {
    /// The text last written, by directory and file name.
    written: HashMap<PathBuf, HashMap<&'static str, String>>,
}

impl EtcFiles {
    /// Makes `dir/name` hold `text` (atomically: a temporary file renamed over it), unless it was
    /// the last thing written there.
    pub(super) fn write(
        &mut self,
        dir: &Path,
        name: &'static str,
        text: String,
    ) -> std::io::Result<()> {
        let files = self.written.entry(dir.to_path_buf()).or_default();
        if files.get(name) == Some(&text) {
            return Ok(());
        }
        // Forgotten first: a failed write must be tried again next time.
        files.remove(name);
        std::fs::create_dir_all(dir)?;
        let tmp = dir.join(format!(".{name}.switchyard"));
        std::fs::write(&tmp, &text)?;
        std::fs::rename(&tmp, dir.join(name))?;
        files.insert(name, text);
        Ok(())
    }

    /// `dir` was removed: what it held is no longer there.
    pub(super) fn forget(&mut self, dir: &Path) {
        self.written.remove(dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(test: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("sy-etc-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn writes_only_what_changed() {
        let d = dir("changed");
        let mut etc = EtcFiles::default();
        etc.write(&d, "hosts", "a\n".into()).unwrap();
        assert_eq!(std::fs::read_to_string(d.join("hosts")).unwrap(), "a\n");
        // The same text again is not written: a file changed behind the daemon's back stays.
        std::fs::write(d.join("hosts"), "edited\n").unwrap();
        etc.write(&d, "hosts", "a\n".into()).unwrap();
        assert_eq!(
            std::fs::read_to_string(d.join("hosts")).unwrap(),
            "edited\n"
        );
        // New text is.
        etc.write(&d, "hosts", "b\n".into()).unwrap();
        assert_eq!(std::fs::read_to_string(d.join("hosts")).unwrap(), "b\n");
        // Other names in the same directory are apart.
        etc.write(&d, "hostname", "b\n".into()).unwrap();
        assert_eq!(std::fs::read_to_string(d.join("hostname")).unwrap(), "b\n");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_forgotten_directory_is_written_again() {
        let d = dir("forget");
        let mut etc = EtcFiles::default();
        etc.write(&d, "resolv.conf", "nameserver 10.0.0.1\n".into())
            .unwrap();
        std::fs::remove_dir_all(&d).unwrap();
        etc.forget(&d);
        etc.write(&d, "resolv.conf", "nameserver 10.0.0.1\n".into())
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(d.join("resolv.conf")).unwrap(),
            "nameserver 10.0.0.1\n"
        );
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_failed_write_is_tried_again() {
        let d = dir("failed");
        // A file where the directory should be: the write fails.
        std::fs::write(&d, "").unwrap();
        let mut etc = EtcFiles::default();
        assert!(etc.write(&d, "hosts", "a\n".into()).is_err());
        std::fs::remove_file(&d).unwrap();
        etc.write(&d, "hosts", "a\n".into()).unwrap();
        assert_eq!(std::fs::read_to_string(d.join("hosts")).unwrap(), "a\n");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
