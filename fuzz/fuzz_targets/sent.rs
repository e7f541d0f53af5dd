//! Shared by the front-end targets (`docker`, `cni`): what a front end sends the daemon must
//! survive the API's wire format.

use control::api::{parse_request, Request, RequestFrame, PROTOCOL_VERSION};

/// `request` as the daemon reads it off its socket, re-encoded; panics unless that is the
/// request that was sent.
pub fn as_the_daemon_reads_it(request: &Request) -> String {
    let sent = serde_json::to_string(&RequestFrame {
        version: PROTOCOL_VERSION,
        request: request.clone(),
    })
    .expect("a request encodes");
    let decoded = parse_request(&sent)
        .unwrap_or_else(|e| panic!("the daemon cannot decode {sent}: {}", e.message));
    let again = serde_json::to_string(&decoded).unwrap();
    assert_eq!(again, serde_json::to_string(request).unwrap());
    again
}
