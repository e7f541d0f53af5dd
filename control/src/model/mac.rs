//! MAC addresses as the model holds them: `dataplane::MacAddr` (the one MAC type of the project),
//! written `aa:bb:cc:dd:ee:ff` in the state file and the API, and the rule for an address an
//! interface may be given.

use dataplane::MacAddr;

use super::ipam::one_line;

/// A MAC address an interface cannot have, with the text given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid MAC address '{}': {reason}", one_line(.input))]
pub struct MacError {
    pub input: String,
    pub reason: &'static str,
}

/// Parses "aa:bb:cc:dd:ee:ff" (or with '-' separators, as Go's `net.ParseMAC`, which Docker uses,
/// accepts: two hex digits a byte, one kind of separator). Multicast, broadcast and all-zero
/// addresses cannot be an interface's address.
pub fn parse_interface_mac(s: &str) -> Result<MacAddr, MacError> {
    let err = |reason| MacError {
        input: s.to_string(),
        reason,
    };
    let sep = if s.contains('-') { b'-' } else { b':' };
    // Six bytes, five separators, 17 characters: every byte has exactly two digits.
    let docker_form = s.len() == 17 && s.bytes().all(|b| b.is_ascii_hexdigit() || b == sep);
    let mac: MacAddr = match s.parse() {
        Ok(m) if docker_form => m,
        _ => return Err(err("expected six hex bytes like 02:42:ac:11:00:02")),
    };
    if mac.is_broadcast() {
        return Err(err(
            "the broadcast address cannot be assigned to an interface",
        ));
    }
    if mac.is_multicast() {
        return Err(err(
            "multicast address (lowest bit of the first byte set) cannot be assigned to an interface",
        ));
    }
    if mac.is_zero() {
        return Err(err(
            "the all-zero address cannot be assigned to an interface",
        ));
    }
    Ok(mac)
}

/// Turns random bytes (supplied by the caller) into a locally administered unicast MAC, as newer
/// Docker versions use instead of deriving the MAC from the IP.
pub fn random_mac(seed_bytes: [u8; 6]) -> MacAddr {
    let mut mac = seed_bytes;
    mac[0] = (mac[0] | 0x02) & !0x01;
    MacAddr(mac)
}

/// `#[serde(with = "mac::text")]`: a MAC as its text, read back under the interface rule.
pub mod text {
    use dataplane::MacAddr;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(mac: &MacAddr, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(mac)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<MacAddr, D::Error> {
        let s = String::deserialize(d)?;
        super::parse_interface_mac(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn msg<T: std::fmt::Debug>(r: Result<T, MacError>) -> String {
        r.unwrap_err().to_string()
    }

    #[test]
    fn macs() {
        assert_eq!(
            random_mac([0xff; 6]).0,
            [0xfe, 0xff, 0xff, 0xff, 0xff, 0xff]
        );
        assert_eq!(random_mac([0; 6]).0, [0x02, 0, 0, 0, 0, 0]);
        assert_eq!(
            parse_interface_mac("02:42:AC:11:00:02").unwrap().0,
            [0x02, 0x42, 0xac, 0x11, 0x00, 0x02]
        );
        assert_eq!(
            parse_interface_mac("02-42-ac-11-00-02").unwrap().0,
            [0x02, 0x42, 0xac, 0x11, 0x00, 0x02]
        );
        for bad in [
            "",
            "02:42:ac:11:00",
            "02:42:ac:11:00:02:03",
            "02:42:ac:11:0:02",
            "02:42:ac:11:00:gg",
            "02:42-ac:11:00:02",
        ] {
            assert_eq!(
                msg(parse_interface_mac(bad)),
                format!(
                    "invalid MAC address '{bad}': expected six hex bytes like 02:42:ac:11:00:02"
                )
            );
        }
        assert_eq!(
            msg(parse_interface_mac("01:00:5e:00:00:01")),
            "invalid MAC address '01:00:5e:00:00:01': multicast address (lowest bit of the first \
             byte set) cannot be assigned to an interface"
        );
        assert_eq!(
            msg(parse_interface_mac("ff:ff:ff:ff:ff:ff")),
            "invalid MAC address 'ff:ff:ff:ff:ff:ff': the broadcast address cannot be assigned to an interface"
        );
        assert_eq!(
            msg(parse_interface_mac("00:00:00:00:00:00")),
            "invalid MAC address '00:00:00:00:00:00': the all-zero address cannot be assigned to an interface"
        );
    }

    proptest! {
        #[test]
        fn random_mac_is_local_unicast(seed in any::<[u8; 6]>()) {
            let mac = random_mac(seed).0;
            prop_assert_eq!(mac[0] & 0x03, 0x02);
            prop_assert_eq!(&mac[1..], &seed[1..]);
            let text = mac.map(|b| format!("{b:02x}")).join(":");
            prop_assert!(parse_interface_mac(&text).is_ok());
        }
    }

    #[test]
    fn state_file_text_round_trips() {
        #[derive(serde::Serialize, serde::Deserialize)]
        struct Holder {
            #[serde(with = "text")]
            mac: MacAddr,
        }
        let json = r#"{"mac":"02:42:ac:11:00:02"}"#;
        let h: Holder = serde_json::from_str(json).unwrap();
        assert_eq!(h.mac, MacAddr([0x02, 0x42, 0xac, 0x11, 0x00, 0x02]));
        assert_eq!(serde_json::to_string(&h).unwrap(), json);
        let bad = serde_json::from_str::<Holder>(r#"{"mac":"ff:ff:ff:ff:ff:ff"}"#);
        assert!(bad.is_err());
    }
}
