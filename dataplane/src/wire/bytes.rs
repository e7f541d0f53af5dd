//! Big-endian field access shared by every wire view and by `offload`. Callers have checked lengths
//! (a view's `check_len`, offload's layout parse), so these index directly.

pub fn read_u16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

pub fn read_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

pub fn write_u16(b: &mut [u8], at: usize, value: u16) {
    b[at..at + 2].copy_from_slice(&value.to_be_bytes());
}

pub fn write_u32(b: &mut [u8], at: usize, value: u32) {
    b[at..at + 4].copy_from_slice(&value.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_big_endian() {
        let mut b = [0u8; 6];
        write_u16(&mut b, 0, 0x0102);
        write_u32(&mut b, 2, 0x0304_0506);
        assert_eq!(b, [1, 2, 3, 4, 5, 6]);
        assert_eq!((read_u16(&b, 0), read_u32(&b, 2)), (0x0102, 0x0304_0506));
    }
}
