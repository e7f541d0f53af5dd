//! `Ipv4Net`: an IPv4 network as Docker's `--subnet` means it (host bits zero, prefix 0-32),
//! parsed strictly or leniently, split, compared, and written `10.0.0.0/24`.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::ipam::IpamError;

fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    }
}

/// An IPv4 network: a network address (host bits zero) and a prefix length 0-32.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Ipv4Net {
    addr: Ipv4Addr,
    prefix: u8,
}

fn cidr_error(input: &str, reason: impl Into<String>) -> IpamError {
    IpamError::InvalidCidr {
        input: input.to_string(),
        reason: reason.into(),
    }
}

/// Splits "ADDRESS/PREFIX" into its parts, without any check of host bits.
fn parse_cidr_parts(s: &str) -> Result<(Ipv4Addr, u8), IpamError> {
    let Some((addr, prefix)) = s.split_once('/') else {
        return Err(cidr_error(s, "expected ADDRESS/PREFIX"));
    };
    let addr: Ipv4Addr = addr
        .parse()
        .map_err(|_| cidr_error(s, format!("'{addr}' is not an IPv4 address")))?;
    // Digits only: `u8::from_str` would also take "+24".
    let prefix = if !prefix.is_empty() && prefix.bytes().all(|b| b.is_ascii_digit()) {
        prefix.parse::<u8>().ok().filter(|p| *p <= 32)
    } else {
        None
    };
    let prefix = prefix.ok_or_else(|| cidr_error(s, "prefix length must be 0-32"))?;
    Ok((addr, prefix))
}

impl Ipv4Net {
    /// The network `addr/prefix`; refuses a prefix above 32 and an address with host bits set.
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Result<Ipv4Net, IpamError> {
        let input = format!("{addr}/{prefix}");
        if prefix > 32 {
            return Err(cidr_error(&input, "prefix length must be 0-32"));
        }
        Self::checked(&input, addr, prefix)
    }

    fn checked(input: &str, addr: Ipv4Addr, prefix: u8) -> Result<Ipv4Net, IpamError> {
        let net = Self::truncating(addr, prefix);
        if net.addr != addr {
            return Err(IpamError::HostBitsSet {
                input: input.to_string(),
                suggestion: net,
            });
        }
        Ok(net)
    }

    /// The network of `prefix` bits that holds `addr` (a route's destination), if `prefix` is at
    /// most 32.
    pub fn containing(addr: Ipv4Addr, prefix: u8) -> Option<Ipv4Net> {
        (prefix <= 32).then(|| Self::truncating(addr, prefix))
    }

    /// `prefix` must be at most 32.
    fn truncating(addr: Ipv4Addr, prefix: u8) -> Ipv4Net {
        debug_assert!(prefix <= 32);
        Ipv4Net {
            addr: Ipv4Addr::from(u32::from(addr) & mask(prefix)),
            prefix,
        }
    }

    /// Parses "10.0.0.0/24"; host bits set is an error, as for Docker's `--subnet`.
    pub fn parse_strict(s: &str) -> Result<Ipv4Net, IpamError> {
        let (addr, prefix) = parse_cidr_parts(s)?;
        Self::checked(s, addr, prefix)
    }

    /// Parses an interface-style address: "10.0.0.5/24" -> (10.0.0.5, 10.0.0.0/24).
    pub fn parse_any(s: &str) -> Result<(Ipv4Addr, Ipv4Net), IpamError> {
        let (addr, prefix) = parse_cidr_parts(s)?;
        Ok((addr, Self::truncating(addr, prefix)))
    }

    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    pub(super) fn first(&self) -> u32 {
        u32::from(self.addr)
    }

    pub(super) fn last(&self) -> u32 {
        self.first() | !mask(self.prefix)
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & mask(self.prefix) == self.first()
    }

    /// True if `other` lies entirely inside `self` (a network contains itself).
    pub fn contains_net(&self, other: &Ipv4Net) -> bool {
        other.prefix >= self.prefix && self.contains(other.addr)
    }

    pub fn overlaps(&self, other: &Ipv4Net) -> bool {
        self.contains(other.addr) || other.contains(self.addr)
    }

    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.last())
    }

    /// Number of addresses, network and broadcast included (2^32 for /0).
    pub fn size(&self) -> u64 {
        1u64 << (32 - u32::from(self.prefix))
    }

    /// The subnets of length `prefix`, in address order. Empty if `prefix` is shorter than this
    /// network's prefix or longer than 32.
    pub fn split(&self, prefix: u8) -> impl Iterator<Item = Ipv4Net> {
        let count = if prefix < self.prefix || prefix > 32 {
            0
        } else {
            1u64 << (prefix - self.prefix)
        };
        let step = if prefix > 32 {
            0
        } else {
            1u64 << (32 - u32::from(prefix))
        };
        let base = u64::from(self.first());
        (0..count).map(move |i| Ipv4Net {
            // base + i * step stays below 2^32 because all subnets lie inside self.
            addr: Ipv4Addr::from((base + i * step) as u32),
            prefix,
        })
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for Ipv4Net {
    type Err = IpamError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ipv4Net::parse_strict(s)
    }
}

impl Serialize for Ipv4Net {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Ipv4Net {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Ipv4Net::parse_strict(&s).map_err(serde::de::Error::custom)
    }
}

/// `a.b.0.0/prefix`, for constant tables.
pub(super) const fn net(a: u8, b: u8, prefix: u8) -> Ipv4Net {
    Ipv4Net {
        addr: Ipv4Addr::new(a, b, 0, 0),
        prefix,
    }
}
