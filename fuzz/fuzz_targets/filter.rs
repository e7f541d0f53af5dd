//! The trace filter: arbitrary text as a filter expression (user input over the API), and each
//! filter that compiles matched against arbitrary bytes as a frame. Neither may panic.
#![no_main]

use dataplane::Filter;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first line is the filter, the rest the frame.
    let (text, frame) = match data.iter().position(|&b| b == b'\n') {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    if let Ok(filter) = Filter::parse(text) {
        let _ = filter.matches(frame);
    }
});
