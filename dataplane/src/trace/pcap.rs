//! Classic pcap output (the libpcap "savefile" format) with nanosecond timestamps.
//!
//! Captures are written as plain bytes so the control plane can stream them to a file or a pipe
//! (`switchyard ... | tshark -r -`) without a libpcap dependency. The classic format rather than
//! pcapng: it is all tcpdump, tshark and Wireshark need for one Ethernet link, and a record is a
//! fixed 16-byte header plus the bytes, which the engine can produce without formatting. The magic
//! 0xa1b23c4d marks nanosecond timestamps, so the engine's clock is kept at full precision. Every
//! field is written little-endian explicitly, whatever the host.

/// Link type for Ethernet frames (LINKTYPE_ETHERNET / DLT_EN10MB).
pub const LINKTYPE_ETHERNET: u32 = 1;
/// The nanosecond-resolution pcap magic number.
pub const MAGIC_NANOS: u32 = 0xa1b2_3c4d;
/// Length of the file header.
pub const FILE_HEADER_LEN: usize = 24;
/// Length of each record header.
pub const RECORD_HEADER_LEN: usize = 16;

const NANOS_PER_SEC: u64 = 1_000_000_000;

/// The 24-byte file header: magic 0xa1b23c4d (nanosecond resolution), version 2.4, zone and
/// accuracy 0, `snaplen`, LINKTYPE_ETHERNET; little-endian.
pub fn file_header(snaplen: u32) -> [u8; FILE_HEADER_LEN] {
    let mut h = [0u8; FILE_HEADER_LEN];
    h[0..4].copy_from_slice(&MAGIC_NANOS.to_le_bytes());
    h[4..6].copy_from_slice(&2u16.to_le_bytes());
    h[6..8].copy_from_slice(&4u16.to_le_bytes());
    // 8..12 thiszone and 12..16 sigfigs stay 0.
    h[16..20].copy_from_slice(&snaplen.to_le_bytes());
    h[20..24].copy_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
    h
}

/// Append one record (16-byte header, then the data cut to `snaplen`) to `out`.
///
/// `ts_ns` is nanoseconds since the Unix epoch (the seconds field is 32 bits, so this holds until
/// 2106). `orig_len` is the frame's real length on the wire; it is raised to the captured length
/// if smaller, so the record stays valid. A `snaplen` of 0 means "no limit", as with `tcpdump -s 0`.
/// `out` is only appended to: the caller reuses and clears it.
pub fn write_record(out: &mut Vec<u8>, ts_ns: u64, data: &[u8], orig_len: u32, snaplen: u32) {
    let limit = if snaplen == 0 { u32::MAX } else { snaplen };
    let incl = data.len().min(limit as usize);
    let incl_len = incl as u32;
    out.reserve(RECORD_HEADER_LEN + incl);
    out.extend_from_slice(&((ts_ns / NANOS_PER_SEC) as u32).to_le_bytes());
    out.extend_from_slice(&((ts_ns % NANOS_PER_SEC) as u32).to_le_bytes());
    out.extend_from_slice(&incl_len.to_le_bytes());
    out.extend_from_slice(&orig_len.max(incl_len).to_le_bytes());
    out.extend_from_slice(&data[..incl]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::path::PathBuf;
    use std::process::{Command, Stdio};

    const TS: u64 = 1_700_000_000_123_456_789;

    fn frame(len: usize) -> Vec<u8> {
        // dst 02:00:00:00:00:02, src 02:00:00:00:00:01, EtherType IPv4, then a 20-byte IPv4
        // header (UDP 10.0.0.1 -> 10.0.0.2) and an 8-byte UDP header 1234 -> 4000, then zeros.
        let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
        let total = (len - 14) as u16;
        let mut ip = [
            0x45, 0, 0, 0, 0, 1, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        ip[2..4].copy_from_slice(&total.to_be_bytes());
        let mut sum: u32 = ip
            .chunks(2)
            .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
            .sum();
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        ip[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
        f.extend_from_slice(&ip);
        f.extend_from_slice(&[0x04, 0xd2, 0x0f, 0xa0]);
        f.extend_from_slice(&(total - 20).to_be_bytes());
        f.extend_from_slice(&[0, 0]);
        f.resize(len, 0);
        f
    }

    fn capture(frames: &[(u64, Vec<u8>)], snaplen: u32) -> Vec<u8> {
        let mut file = file_header(snaplen).to_vec();
        let mut rec = Vec::new();
        for (ts, f) in frames {
            rec.clear();
            write_record(&mut rec, *ts, f, f.len() as u32, snaplen);
            file.extend_from_slice(&rec);
        }
        file
    }

    fn temp_file(name: &str, bytes: &[u8]) -> PathBuf {
        let path =
            std::env::temp_dir().join(format!("switchyard-pcap-{}-{name}", std::process::id()));
        std::fs::write(&path, bytes).unwrap();
        path
    }

    /// Runs `tool args`, feeding `stdin` through a pipe when given; returns stdout.
    fn run(tool: &str, args: &[&str], stdin: Option<&[u8]>) -> String {
        let mut child = Command::new(tool)
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("{tool} is required for this test (apt-get install {tool}): {e}")
            });
        if let Some(bytes) = stdin {
            let mut pipe = child.stdin.take().unwrap();
            pipe.write_all(bytes).unwrap();
        }
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{tool} {args:?} failed: {}\n{stdout}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    #[test]
    fn file_header_layout() {
        let h = file_header(65535);
        assert_eq!(
            h,
            [
                0x4d, 0x3c, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 1, 0,
                0, 0
            ]
        );
    }

    #[test]
    fn record_layout_and_snaplen() {
        let data: Vec<u8> = (0..100).collect();
        let mut out = vec![0xaa];
        write_record(&mut out, TS, &data, 1500, 64);
        assert_eq!(out[0], 0xaa, "appends, does not clear");
        let r = &out[1..];
        assert_eq!(r.len(), 16 + 64);
        assert_eq!(
            u32::from_le_bytes(r[0..4].try_into().unwrap()),
            1_700_000_000
        );
        assert_eq!(u32::from_le_bytes(r[4..8].try_into().unwrap()), 123_456_789);
        assert_eq!(u32::from_le_bytes(r[8..12].try_into().unwrap()), 64);
        assert_eq!(u32::from_le_bytes(r[12..16].try_into().unwrap()), 1500);
        assert_eq!(&r[16..], &data[..64]);

        // Short frame: stored whole; orig_len never below the captured length; snaplen 0 = all.
        out.clear();
        write_record(&mut out, 5, &data, 10, 0);
        assert_eq!(u32::from_le_bytes(out[8..12].try_into().unwrap()), 100);
        assert_eq!(u32::from_le_bytes(out[12..16].try_into().unwrap()), 100);
        assert_eq!(out.len(), 116);
        assert_eq!(&out[0..8], &[0, 0, 0, 0, 5, 0, 0, 0]);
    }

    #[test]
    fn tcpdump_reads_it_with_nanoseconds() {
        let file = capture(&[(TS, frame(60)), (TS + 1, frame(1000))], 200);
        let path = temp_file("tcpdump.pcap", &file);
        let p = path.to_str().unwrap();
        let text = run("tcpdump", &["-r", p, "-nn", "-e", "--nano", "-tt"], None);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[0].starts_with("1700000000.123456789 "), "{text}");
        assert!(lines[1].starts_with("1700000000.123456790 "), "{text}");
        assert!(
            lines[0].contains("02:00:00:00:00:01 > 02:00:00:00:00:02"),
            "{text}"
        );
        assert!(lines[0].contains("10.0.0.1.1234 > 10.0.0.2.4000"), "{text}");
        // The second frame was cut to the snaplen but keeps its real length.
        assert!(lines[1].contains("length 1000"), "{text}");
        // Reading from a pipe.
        let piped = run("tcpdump", &["-r", "-", "-nn", "--nano", "-tt"], Some(&file));
        assert_eq!(piped.lines().count(), 2, "{piped}");
        assert!(piped.starts_with("1700000000.123456789 "), "{piped}");
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn tshark_reads_it_from_a_file_and_a_pipe() {
        let file = capture(&[(TS, frame(60)), (TS + 1_000, frame(1000))], 256);
        let path = temp_file("tshark.pcap", &file);
        let fields = [
            "-T",
            "fields",
            "-e",
            "frame.time_epoch",
            "-e",
            "eth.src",
            "-e",
            "ip.dst",
            "-e",
            "udp.dstport",
            "-e",
            "frame.len",
            "-e",
            "frame.cap_len",
        ];
        let mut args = vec!["-r", path.to_str().unwrap()];
        args.extend(fields);
        let text = run("tshark", &args, None);
        let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split('\t').collect()).collect();
        assert_eq!(rows.len(), 2, "{text}");
        assert!(rows[0][0].starts_with("1700000000.123456789"), "{text}");
        assert!(rows[1][0].starts_with("1700000000.123457789"), "{text}");
        assert_eq!(
            &rows[0][1..],
            &["02:00:00:00:00:01", "10.0.0.2", "4000", "60", "60"]
        );
        assert_eq!(&rows[1][4..], &["1000", "256"]);
        // Default summary output with epoch times, read from a pipe (`cat file | tshark -r -`).
        let piped = run("tshark", &["-r", "-", "-t", "e"], Some(&file));
        let lines: Vec<&str> = piped.lines().collect();
        assert_eq!(lines.len(), 2, "{piped}");
        assert!(lines[0].contains("1700000000.123456789"), "{piped}");
        assert!(
            lines[0].contains("10.0.0.1") && lines[0].contains("UDP"),
            "{piped}"
        );
        std::fs::remove_file(path).unwrap();
    }
}
