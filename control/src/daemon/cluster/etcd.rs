//! A small etcd v3 client over etcd's JSON gateway (`POST /v3/...`, keys and values in base64),
//! synchronous, one HTTP/1.1 request per connection with 2-second timeouts.
//!
//! Why not the `etcd-client` crate: it brings tonic, prost and hyper's HTTP/2 stack and a build
//! step that needs `protoc`, for the six calls the daemon makes (grant, keep alive, transaction,
//! range, delete, watch); the daemon's control thread is synchronous and holds the daemon's lock while
//! it asks, so a blocking call with a deadline is what it wants anyway. Debian's etcd 3.4 serves
//! the gateway at `/v3` (3.5 and later too). A watch (`watch_prefix`) is the one long call: the
//! gateway streams its events as JSON objects on one HTTP response, read line by line on a
//! thread of its own (see `cluster`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use serde_json::{json, Value};

const TIMEOUT: Duration = Duration::from_secs(2);
/// Largest answer read (a range over the whole prefix of a big cluster fits).
const MAX_ANSWER: u64 = 16 << 20;

#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    #[error("etcd at {endpoints} is unreachable: {reason}")]
    Unreachable { endpoints: String, reason: String },
    #[error("etcd answered {0}")]
    Answer(String),
}

/// What a watch saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WatchEvent {
    /// The watch is in place: what changed before it is not streamed, so read once now.
    Created,
    /// Keys under the prefix changed.
    Changed,
}

/// The cluster's etcd endpoints (`--cluster etcd://HOST:PORT[,HOST:PORT...]`).
#[derive(Clone, Debug)]
pub struct Etcd {
    endpoints: Vec<String>,
}

/// Parses `etcd://HOST:PORT[,HOST:PORT...]`.
pub fn parse_url(url: &str) -> Result<Etcd, String> {
    let Some(rest) = url.strip_prefix("etcd://") else {
        return Err(format!(
            "--cluster '{url}': expected etcd://HOST:PORT[,HOST:PORT...]"
        ));
    };
    let endpoints: Vec<String> = rest.split(',').map(str::to_string).collect();
    for e in &endpoints {
        let ok = e
            .rsplit_once(':')
            .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
        if !ok {
            return Err(format!(
                "--cluster '{url}': '{e}' is not HOST:PORT (etcd://HOST:PORT[,HOST:PORT...])"
            ));
        }
    }
    Ok(Etcd { endpoints })
}

impl Etcd {
    pub fn endpoints(&self) -> String {
        self.endpoints.join(",")
    }

    /// One call to the first endpoint that answers.
    fn post(&self, path: &str, body: &Value) -> Result<Value, EtcdError> {
        let mut last = String::new();
        for endpoint in &self.endpoints {
            match post_to(endpoint, path, body) {
                Ok(v) => return Ok(v),
                Err(PostError::Connect(e)) => last = format!("{endpoint}: {e}"),
                Err(PostError::Answer(e)) => return Err(EtcdError::Answer(e)),
            }
        }
        Err(EtcdError::Unreachable {
            endpoints: self.endpoints(),
            reason: last,
        })
    }

    /// A lease of `ttl` seconds; its ID.
    pub fn grant(&self, ttl: u64) -> Result<i64, EtcdError> {
        let v = self.post("/v3/lease/grant", &json!({ "TTL": ttl }))?;
        number(&v["ID"]).ok_or_else(|| EtcdError::Answer(format!("no lease ID in {v}")))
    }

    /// Renews lease `id`; its remaining TTL (0: the lease is gone).
    pub fn keep_alive(&self, id: i64) -> Result<i64, EtcdError> {
        let v = self.post("/v3/lease/keepalive", &json!({ "ID": id.to_string() }))?;
        Ok(number(&v["result"]["TTL"]).unwrap_or(0))
    }

    /// Puts every pair at once if none of `absent` exists yet and every one of `present` does
    /// (one transaction); whether it did.
    pub fn create_all(
        &self,
        absent: &[&str],
        present: &[&str],
        puts: &[(&str, &str)],
        lease: Option<i64>,
    ) -> Result<bool, EtcdError> {
        let exists = |k: &&str, result: &str| json!({"key": b64(k.as_bytes()), "target": "CREATE", "result": result, "create_revision": "0"});
        let compare: Vec<Value> = absent
            .iter()
            .map(|k| exists(k, "EQUAL"))
            .chain(present.iter().map(|k| exists(k, "GREATER")))
            .collect();
        let success: Vec<Value> = puts
            .iter()
            .map(|(k, v)| {
                let mut put = json!({"key": b64(k.as_bytes()), "value": b64(v.as_bytes())});
                if let Some(l) = lease {
                    put["lease"] = json!(l.to_string());
                }
                json!({ "request_put": put })
            })
            .collect();
        self.txn(&compare, &success)
    }

    pub fn put(&self, key: &str, value: &str, lease: Option<i64>) -> Result<(), EtcdError> {
        let mut body = json!({"key": b64(key.as_bytes()), "value": b64(value.as_bytes())});
        if let Some(l) = lease {
            body["lease"] = json!(l.to_string());
        }
        self.post("/v3/kv/put", &body).map(|_| ())
    }

    /// Deletes every key of `keys` and everything under each of `prefixes` at once, if `present`
    /// exists (one transaction); whether it did.
    pub fn delete_all(
        &self,
        present: &str,
        keys: &[&str],
        prefixes: &[&str],
    ) -> Result<bool, EtcdError> {
        let compare = [exists(present, "GREATER")];
        let success: Vec<Value> = keys
            .iter()
            .map(|k| json!({"request_delete_range": {"key": b64(k.as_bytes())}}))
            .chain(prefixes.iter().map(|p| {
                json!({"request_delete_range": {"key": b64(p.as_bytes()), "range_end": b64(&prefix_end(p))}})
            }))
            .collect();
        self.txn(&compare, &success)
    }

    /// Runs `success` if every `compare` holds (one transaction); whether it did.
    fn txn(&self, compare: &[Value], success: &[Value]) -> Result<bool, EtcdError> {
        let v = self.post(
            "/v3/kv/txn",
            &json!({"compare": compare, "success": success}),
        )?;
        Ok(v["succeeded"].as_bool().unwrap_or(false))
    }

    pub fn delete(&self, key: &str) -> Result<(), EtcdError> {
        self.post("/v3/kv/deleterange", &json!({"key": b64(key.as_bytes())}))
            .map(|_| ())
    }

    /// Watches every key under `prefix` on the first endpoint that answers: calls `on_event`
    /// once the watch is in place and for every message after it (a batch of changes), and
    /// returns `Ok` when the stream ends (etcd stopped, the watch was cancelled) or stays silent
    /// for `idle` (so a host cut off without a word is noticed; the caller watches again).
    pub fn watch_prefix(
        &self,
        prefix: &str,
        idle: Duration,
        mut on_event: impl FnMut(WatchEvent),
    ) -> Result<(), EtcdError> {
        let body = json!({"create_request": {
            "key": b64(prefix.as_bytes()),
            "range_end": b64(&prefix_end(prefix)),
        }});
        let mut last = String::new();
        for endpoint in &self.endpoints {
            let stream = match open(endpoint, "/v3/watch", &body, idle) {
                Ok(s) => s,
                Err(e) => {
                    last = format!("{endpoint}: {e}");
                    continue;
                }
            };
            let mut reader = BufReader::new(stream);
            let mut line = Vec::new();
            let mut in_body = false;
            loop {
                line.clear();
                let n = match (&mut reader).take(MAX_ANSWER).read_until(b'\n', &mut line) {
                    Ok(n) => n,
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) =>
                    {
                        return Ok(())
                    }
                    Err(e) => return Err(EtcdError::Answer(format!("watch: {e}"))),
                };
                if n == 0 {
                    return Ok(());
                }
                let text = String::from_utf8_lossy(&line);
                let text = text.trim();
                if !in_body {
                    if text.starts_with("HTTP/") && !text.contains(" 200") {
                        return Err(EtcdError::Answer(format!("watch: {}", one_line(text))));
                    }
                    in_body = text.is_empty();
                    continue;
                }
                match watch_line(text) {
                    WatchLine::Nothing => {}
                    WatchLine::Event(event) => on_event(event),
                    WatchLine::Ended => return Ok(()),
                    WatchLine::Error(e) => return Err(EtcdError::Answer(format!("watch: {e}"))),
                }
            }
        }
        Err(EtcdError::Unreachable {
            endpoints: self.endpoints(),
            reason: last,
        })
    }

    /// Every key under `prefix` with its value, in key order.
    pub fn range_prefix(&self, prefix: &str) -> Result<Vec<(String, String)>, EtcdError> {
        let v = self.post(
            "/v3/kv/range",
            &json!({"key": b64(prefix.as_bytes()), "range_end": b64(&prefix_end(prefix))}),
        )?;
        Ok(kvs(&v))
    }
}

/// The end of the range of keys starting with `prefix` (its last byte plus one; the prefixes
/// used end in `/`, never in 0xff).
fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    if let Some(last) = end.last_mut() {
        *last = last.saturating_add(1);
    }
    end
}

/// A comparison of `key`'s create revision with 0: `EQUAL` (absent) or `GREATER` (present).
fn exists(key: &str, result: &str) -> Value {
    json!({"key": b64(key.as_bytes()), "target": "CREATE", "result": result, "create_revision": "0"})
}

/// etcd's JSON carries 64-bit numbers as strings.
fn number(v: &Value) -> Option<i64> {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .or_else(|| v.as_i64())
}

#[derive(Debug)]
pub enum PostError {
    /// No connection, or it broke before an answer: try the next endpoint.
    Connect(String),
    /// etcd answered with an error.
    Answer(String),
}

/// Connects to `endpoint` and sends the request (`read_timeout` for the answer).
fn open(
    endpoint: &str,
    path: &str,
    body: &Value,
    read_timeout: Duration,
) -> std::io::Result<TcpStream> {
    let addr = endpoint
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::other("no address"))?;
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT)?;
    stream.set_read_timeout(Some(read_timeout))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    let body = body.to_string();
    // Not half-closed after the request: etcd's gateway cancels a call whose client shut its
    // side down. `Connection: close` ends the answer at EOF.
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {endpoint}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes())?;
    Ok(stream)
}

fn post_to(endpoint: &str, path: &str, body: &Value) -> Result<Value, PostError> {
    let connect = |e: std::io::Error| PostError::Connect(e.to_string());
    let stream = open(endpoint, path, body, TIMEOUT).map_err(connect)?;
    let mut raw = Vec::new();
    stream
        .take(MAX_ANSWER)
        .read_to_end(&mut raw)
        .map_err(connect)?;
    answer(&raw)
}

/// The JSON answer of one unary call, from the whole HTTP response as it came (untrusted: the
/// fuzz target `etcd` feeds it anything): the body's first JSON object; an error status or an
/// `error` field is `PostError::Answer` with etcd's message, in one line.
pub fn answer(raw: &[u8]) -> Result<Value, PostError> {
    let text = String::from_utf8_lossy(raw);
    let Some((head, rest)) = text.split_once("\r\n\r\n") else {
        return Err(PostError::Connect(
            "the connection closed before an answer".into(),
        ));
    };
    // Unary calls answer with Content-Length; the keep-alive stream is chunked: either way the
    // first JSON object of the body is the answer.
    let json_text = match (rest.find('{'), rest.rfind('}')) {
        (Some(a), Some(b)) if a < b => &rest[a..=b],
        _ => {
            return Err(PostError::Answer(format!(
                "no JSON in '{}'",
                one_line(head.lines().next().unwrap_or(""))
            )))
        }
    };
    let json_text = json_text
        .split("\r\n")
        .find(|l| l.starts_with('{'))
        .unwrap_or(json_text);
    let value: Value = serde_json::from_str(json_text)
        .map_err(|e| PostError::Answer(one_line(&format!("{e}: {json_text}"))))?;
    let status_ok = head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200");
    if !status_ok || value.get("error").is_some() {
        let message = value["message"].as_str().unwrap_or(json_text);
        return Err(PostError::Answer(one_line(message)));
    }
    Ok(value)
}

/// `text` with its line breaks as spaces: what etcd says ends up in a one-line error.
fn one_line(text: &str) -> String {
    text.split(['\r', '\n'])
        .filter(|l| !l.trim().is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// What one line of a watch stream says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchLine {
    /// Nothing (a chunk size, a blank line).
    Nothing,
    Event(WatchEvent),
    /// The watch was cancelled: watch again.
    Ended,
    /// etcd reported an error (the line, in one line).
    Error(String),
}

/// One line of the watch stream's body (untrusted: the fuzz target `etcd` feeds it anything).
pub fn watch_line(line: &str) -> WatchLine {
    let text = line.trim();
    // Chunk sizes and blank lines between the JSON objects carry nothing.
    if !text.starts_with('{') {
        return WatchLine::Nothing;
    }
    let v: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    if v.get("error").is_some() {
        return WatchLine::Error(one_line(text));
    }
    if v["result"]["canceled"].as_bool() == Some(true) {
        return WatchLine::Ended;
    }
    // An object cut by a chunk boundary does not parse: a change all the same.
    let created = v["result"]["created"].as_bool() == Some(true);
    WatchLine::Event(if created {
        WatchEvent::Created
    } else {
        WatchEvent::Changed
    })
}

/// The keys and values of a range answer, decoded (a pair that is not base64 of UTF-8 is left
/// out).
pub fn kvs(answer: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for kv in answer["kvs"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let key = kv["key"].as_str().and_then(unb64);
        let value = kv["value"].as_str().map_or(Some(String::new()), unb64);
        if let (Some(k), Some(v)) = (key, value) {
            out.push((k, v));
        }
    }
    out
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding (RFC 4648), as the gateway's JSON wants bytes.
pub fn b64(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes standard base64 into UTF-8 text; `None` for anything else.
pub fn unb64(text: &str) -> Option<String> {
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = Vec::new();
    for c in text.bytes().filter(|&c| c != b'=') {
        let v = ALPHABET.iter().position(|&a| a == c)? as u32;
        bits = (bits << 6) | v;
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
            bits &= (1 << n) - 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_rfc_4648_vectors() {
        for (plain, coded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(b64(plain.as_bytes()), coded);
            assert_eq!(unb64(coded).as_deref(), Some(plain));
        }
        assert_eq!(unb64("!!"), None);
    }

    #[test]
    fn cluster_urls() {
        assert_eq!(
            parse_url("etcd://10.0.0.9:2379,e2:2379")
                .unwrap()
                .endpoints(),
            "10.0.0.9:2379,e2:2379"
        );
        for bad in [
            "http://x:1",
            "etcd://",
            "etcd://x",
            "etcd://x:0",
            "etcd://:5",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_unreachable_etcd_is_one_line() {
        // Port 1 on loopback: nothing listens there.
        let etcd = parse_url("etcd://127.0.0.1:1").unwrap();
        let e = etcd.grant(5).unwrap_err().to_string();
        assert!(e.starts_with("etcd at 127.0.0.1:1 is unreachable"), "{e}");
        assert!(!e.contains('\n'));
    }

    /// What the gateway sends, read as the cluster reads it: the first JSON object of a body
    /// (with Content-Length or chunked), etcd's errors as one line, watch lines, range pairs.
    #[test]
    fn gateway_answers_watch_lines_and_ranges() {
        let ok = answer(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n{\"ID\":7}").unwrap();
        assert_eq!(ok["ID"], 7);
        let chunked =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n9\r\n{\"ID\":8}\r\n0\r\n\r\n";
        assert_eq!(answer(chunked).unwrap()["ID"], 8);
        let refused = b"HTTP/1.1 400 Bad\r\n\r\n{\"error\":\"x\",\"message\":\"bad\\nthing\"}";
        match answer(refused) {
            Err(PostError::Answer(m)) => assert_eq!(m, "bad thing"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            answer(b"HTTP/1.1 200"),
            Err(PostError::Connect(_))
        ));
        // Found by the fuzz target: a lone CR in the status line.
        match answer(b"HTTP/1.1 200 OK\rT\r\n\r\nno json") {
            Err(PostError::Answer(m)) => assert_eq!(m, "no JSON in 'HTTP/1.1 200 OK T'"),
            other => panic!("{other:?}"),
        }
        match answer(b"HTTP/1.1 200 OK\r\n\r\n{\n\"a\": }") {
            Err(PostError::Answer(m)) => assert!(!m.contains('\n'), "{m}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(watch_line("1a"), WatchLine::Nothing);
        assert_eq!(
            watch_line(r#"{"result":{"created":true}}"#),
            WatchLine::Event(WatchEvent::Created)
        );
        assert_eq!(
            watch_line(r#"{"result":{"events":[]}"#),
            WatchLine::Event(WatchEvent::Changed)
        );
        assert_eq!(
            watch_line(r#"{"result":{"canceled":true}}"#),
            WatchLine::Ended
        );
        assert!(matches!(watch_line(r#"{"error":{}}"#), WatchLine::Error(_)));
        let range = serde_json::json!({"kvs": [
            {"key": b64(b"/a"), "value": b64(b"1")},
            {"key": b64(b"/b")},
            {"key": "!!", "value": b64(b"x")},
        ]});
        assert_eq!(
            kvs(&range),
            [
                ("/a".to_string(), "1".to_string()),
                ("/b".to_string(), String::new())
            ]
        );
    }
}
