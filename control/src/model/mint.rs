//! What the model cannot make by itself: random bytes (identifiers, MACs) and the time (creation
//! stamps). The daemon mints from the kernel (`getrandom`, the real-time clock); tests from a
//! counter and a fixed time, so every rule runs without I/O and the same way twice.

use std::time::Duration;

use dataplane::MacAddr;

use super::mac::random_mac;

/// Where new identifiers, MACs and creation times come from.
pub trait Mint {
    /// Fills `buf` with random bytes.
    fn fill(&mut self, buf: &mut [u8]);

    /// The time since the Unix epoch.
    fn now(&mut self) -> Duration;

    /// A 64-hex-digit identifier, as Docker's network, container and endpoint IDs. As Docker's
    /// (`stringid.GenerateRandomID`), never one whose 12-digit short form is all decimal digits:
    /// that short form is a container's default host name, and glibc's resolver takes an
    /// all-digit name for a malformed address and never looks it up (`getent hosts 365986477475`
    /// fails even with the name in /etc/hosts).
    fn id(&mut self) -> String {
        loop {
            let mut b = [0u8; 32];
            self.fill(&mut b);
            let id: String = b.iter().map(|x| format!("{x:02x}")).collect();
            if !id[..12].bytes().all(|c| c.is_ascii_digit()) {
                return id;
            }
        }
    }

    /// A random locally administered unicast MAC, as current Docker gives containers.
    fn mac(&mut self) -> MacAddr {
        let mut b = [0u8; 6];
        self.fill(&mut b);
        random_mac(b)
    }

    /// The current time as inspect shows `Created`.
    fn created(&mut self) -> String {
        rfc3339(self.now())
    }
}

/// RFC 3339 UTC with nanoseconds, as Docker prints `Created`.
pub fn rfc3339(now: Duration) -> String {
    let secs = now.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        now.subsec_nanos()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes from a list, then 0xab.
    struct Script(Vec<u8>);

    impl Mint for Script {
        fn fill(&mut self, buf: &mut [u8]) {
            for b in buf {
                *b = if self.0.is_empty() {
                    0xab
                } else {
                    self.0.remove(0)
                };
            }
        }
        fn now(&mut self) -> Duration {
            Duration::ZERO
        }
    }

    #[test]
    fn an_id_whose_short_form_is_all_digits_is_minted_again() {
        // 0x36 0x59 ... as hex is "3659...": the first draw's short form is all digits.
        let mut draws = vec![0x36, 0x59, 0x86, 0x47, 0x74, 0x75];
        draws.resize(32, 0x12);
        let id = Script(draws).id();
        assert_eq!(id, "ab".repeat(32));
        // Digits past the short form are fine.
        let mut draws = vec![0x36, 0x59, 0x86, 0x47, 0x74, 0x7e];
        draws.resize(32, 0x12);
        assert!(Script(draws).id().starts_with("36598647747e1212"));
    }

    #[test]
    fn rfc3339_timestamps() {
        assert_eq!(rfc3339(Duration::ZERO), "1970-01-01T00:00:00.000000000Z");
        // 2024-02-29 (a leap day) 13:14:15.5 UTC.
        let t = rfc3339(Duration::new(1_709_212_455, 500_000_000));
        assert_eq!(t, "2024-02-29T13:14:15.500000000Z");
        assert_eq!(t.len(), 30, "{t}");
    }
}
