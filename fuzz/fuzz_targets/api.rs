//! The control API's request decoding (`api::parse_request`): arbitrary text as one request line,
//! as the daemon reads it from its socket. It may not panic; a refusal is one line; and whatever
//! it accepts, encoded again as a client would send it, decodes to the same request.
#![no_main]

use control::api::{parse_request, RequestFrame, PROTOCOL_VERSION};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(line) = std::str::from_utf8(data) else {
        return;
    };
    match parse_request(line) {
        Ok(request) => {
            let first = serde_json::to_string(&request).expect("a request encodes");
            let frame = RequestFrame {
                version: PROTOCOL_VERSION,
                request,
            };
            let resent = serde_json::to_string(&frame).expect("a frame encodes");
            let again = parse_request(&resent).expect("a re-encoded request decodes");
            assert_eq!(serde_json::to_string(&again).unwrap(), first);
        }
        Err(e) => assert!(!e.message.contains('\n'), "two lines: {}", e.message),
    }
});
