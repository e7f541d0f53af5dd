//! The daemon's `Mint`: the kernel's random pool and the real-time clock.

use std::time::{Duration, SystemTime};

use crate::model::Mint;

pub(super) struct OsMint;

impl Mint for OsMint {
    /// `getrandom(2)`.
    fn fill(&mut self, buf: &mut [u8]) {
        let mut done = 0;
        while done < buf.len() {
            // SAFETY: the pointer and length describe the unfilled tail of `buf`.
            let n =
                unsafe { libc::getrandom(buf[done..].as_mut_ptr().cast(), buf.len() - done, 0) };
            if n > 0 {
                done += n as usize;
            } else if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
                panic!("getrandom failed: {}", std::io::Error::last_os_error());
            }
        }
    }

    fn now(&mut self) -> Duration {
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
    }
}
