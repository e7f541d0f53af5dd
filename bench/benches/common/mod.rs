//! Frames and addresses shared by the criterion benches.

use dataplane::MacAddr;

/// A 60-byte IPv4-typed Ethernet frame from `src` to `dst`, zero payload.
pub fn frame(dst: MacAddr, src: MacAddr) -> Vec<u8> {
    let mut f = Vec::with_capacity(60);
    f.extend_from_slice(dst.as_bytes());
    f.extend_from_slice(src.as_bytes());
    f.extend_from_slice(&[0x08, 0x00]);
    f.resize(60, 0);
    f
}

/// The locally administered MAC number `i` (02:42 and `i`, as Docker's).
pub fn mac(i: u32) -> MacAddr {
    let b = i.to_be_bytes();
    MacAddr([0x02, 0x42, b[0], b[1], b[2], b[3]])
}
