//! What the etcd JSON gateway sends, as the cluster reads it: a whole HTTP answer to a unary
//! call, each line of a watch stream, the pairs of a range answer, base64. Nothing panics, an
//! answer is a JSON object, every error is one line (it ends up in a one-line refusal), and
//! base64 round-trips.
#![no_main]

use control::etcd::{answer, b64, kvs, unb64, watch_line, PostError, WatchLine};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match answer(data) {
        Ok(v) => {
            assert!(v.is_object(), "an answer that is not an object: {v}");
            let _ = kvs(&v);
        }
        Err(PostError::Answer(m) | PostError::Connect(m)) => {
            assert!(!m.contains('\n') && !m.contains('\r'), "two lines: {m:?}")
        }
    }
    let text = String::from_utf8_lossy(data);
    for line in text.split('\n') {
        if let WatchLine::Error(m) = watch_line(line) {
            assert!(!m.contains('\n') && !m.contains('\r'), "two lines: {m:?}");
        }
    }
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) {
        for (k, value) in kvs(&v) {
            assert_eq!(unb64(&b64(k.as_bytes())).as_deref(), Some(k.as_str()));
            assert_eq!(
                unb64(&b64(value.as_bytes())).as_deref(),
                Some(value.as_str())
            );
        }
    }
    if let Ok(s) = std::str::from_utf8(data) {
        assert_eq!(unb64(&b64(data)).as_deref(), Some(s));
    }
    let _ = unb64(&text);
});
