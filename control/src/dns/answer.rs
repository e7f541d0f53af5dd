//! One query, from bytes to what to do with it: an answer from the name table, a forward, or
//! nothing. No I/O here (the fuzz target and the unit tests call it directly); messages are parsed
//! and written by `hickory-proto`, never by hand.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use hickory_proto::op::{Edns, Header, Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, PTR};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};

use super::counters::Counters;
use crate::model::dns::{NameTable, QueryType, Resolution, TTL_SECONDS};

/// Longest query accepted; anything longer is dropped (a question is at most ~270 bytes).
pub const MAX_QUERY: usize = 4096;
/// What a UDP answer may be without EDNS (RFC 1035).
const CLASSIC_UDP: usize = 512;
/// The EDNS payload size the resolver advertises (the DNS flag day's value).
const EDNS_PAYLOAD: u16 = 1232;

/// What to do with a received message.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    Reply(Vec<u8>),
    /// Relay the query as it came to these upstreams, in order; `limit` is the largest answer
    /// the asker takes over UDP.
    Forward {
        upstreams: Vec<SocketAddr>,
        limit: usize,
    },
    Drop,
}

/// Where a query came from and how.
#[derive(Clone, Copy, Debug)]
pub struct Asker {
    /// The gateway address it was sent to (which network's resolver).
    pub listen: Ipv4Addr,
    pub src: IpAddr,
    pub tcp: bool,
}

/// What the resolver made of a query, for its log (`switchyard trace dns`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Note {
    /// The question's name and type (empty when the query did not parse).
    pub name: String,
    pub qtype: String,
    /// `local`, `pointer`, `nodata`, `nxdomain`, `forward`, `servfail`, `formerr`, `notimp`,
    /// `dropped`.
    pub outcome: &'static str,
    /// The addresses or name answered, when local.
    pub answer: String,
}

/// Decides what to do with `bytes`. `turn` rotates the order of several addresses (round robin).
pub fn handle(
    table: &NameTable,
    asker: Asker,
    bytes: &[u8],
    turn: usize,
    counters: &Counters,
) -> Action {
    handle_noted(table, asker, bytes, turn, counters).0
}

/// `handle`, and what it made of the query.
pub fn handle_noted(
    table: &NameTable,
    asker: Asker,
    bytes: &[u8],
    turn: usize,
    counters: &Counters,
) -> (Action, Note) {
    let mut note = Note {
        outcome: "dropped",
        ..Note::default()
    };
    let action = decide(table, asker, bytes, turn, counters, &mut note);
    (action, note)
}

fn decide(
    table: &NameTable,
    asker: Asker,
    bytes: &[u8],
    turn: usize,
    counters: &Counters,
    note: &mut Note,
) -> Action {
    if bytes.len() > MAX_QUERY {
        Counters::add(&counters.oversized);
        return Action::Drop;
    }
    let query = match Message::from_vec(bytes) {
        Ok(m) => m,
        Err(_) => {
            Counters::add(&counters.malformed);
            note.outcome = "formerr";
            return match Header::read(&mut BinDecoder::new(bytes)) {
                Ok(h) if h.message_type() == MessageType::Query => reply_bytes(
                    &Message::error_msg(h.id(), h.op_code(), ResponseCode::FormErr),
                ),
                _ => Action::Drop,
            };
        }
    };
    if query.message_type() != MessageType::Query {
        Counters::add(&counters.not_query);
        return Action::Drop;
    }
    if query.op_code() != OpCode::Query {
        Counters::add(&counters.not_implemented);
        note.outcome = "notimp";
        return reply_bytes(&Message::error_msg(
            query.id(),
            query.op_code(),
            ResponseCode::NotImp,
        ));
    }
    let [question] = query.queries() else {
        Counters::add(&counters.malformed);
        note.outcome = "formerr";
        return reply_bytes(&Message::error_msg(
            query.id(),
            query.op_code(),
            ResponseCode::FormErr,
        ));
    };
    note.name = question.name().to_ascii();
    note.qtype = question.query_type().to_string();
    if question.query_class() != DNSClass::IN {
        Counters::add(&counters.bad_class);
        note.outcome = "formerr";
        return reply_bytes(&response(&query, ResponseCode::FormErr));
    }
    let limit = if asker.tcp {
        u16::MAX as usize
    } else {
        query
            .extensions()
            .as_ref()
            .map_or(CLASSIC_UDP, |e| (e.max_payload() as usize).max(CLASSIC_UDP))
    };
    let qtype = match question.query_type() {
        RecordType::A => QueryType::A,
        RecordType::AAAA => QueryType::Aaaa,
        RecordType::PTR => QueryType::Ptr,
        _ => QueryType::Other,
    };
    let name = question.name().to_ascii();
    let mut reply = response(&query, ResponseCode::NoError);
    match table.resolve(asker.listen, asker.src, &name, qtype) {
        Resolution::Addresses(addresses) => {
            Counters::add(&counters.answer_a);
            note.outcome = "local";
            let n = addresses.len();
            for i in 0..n {
                let ip = addresses[(i + turn) % n];
                if !note.answer.is_empty() {
                    note.answer.push(' ');
                }
                note.answer.push_str(&ip.to_string());
                reply.add_answer(Record::from_rdata(
                    question.name().clone(),
                    TTL_SECONDS,
                    RData::A(A(ip)),
                ));
            }
        }
        Resolution::Pointer(target) => {
            Counters::add(&counters.answer_ptr);
            note.outcome = "pointer";
            note.answer = format!("{target}.");
            match Name::from_ascii(format!("{target}.")) {
                Ok(target) => {
                    reply.add_answer(Record::from_rdata(
                        question.name().clone(),
                        TTL_SECONDS,
                        RData::PTR(PTR(target)),
                    ));
                }
                Err(_) => {
                    reply.set_response_code(ResponseCode::NXDomain);
                }
            }
        }
        Resolution::NoData => {
            Counters::add(&counters.answer_nodata);
            note.outcome = "nodata";
        }
        Resolution::NxDomain | Resolution::NoForward => {
            Counters::add(&counters.answer_nxdomain);
            note.outcome = "nxdomain";
            reply.set_response_code(ResponseCode::NXDomain);
        }
        Resolution::Forward([]) => {
            Counters::add(&counters.forward_failed);
            note.outcome = "servfail";
            note.answer = "no upstream server".into();
            return reply_bytes(&response(&query, ResponseCode::ServFail));
        }
        Resolution::Forward(upstreams) => {
            note.outcome = "forward";
            return Action::Forward {
                upstreams: upstreams.to_vec(),
                limit,
            };
        }
    }
    reply.set_authoritative(true);
    fit(reply, limit, counters)
}

/// The start of an answer to `query`: its ID, question and RD bit; EDNS if it used EDNS.
fn response(query: &Message, code: ResponseCode) -> Message {
    let mut reply = Message::new();
    reply
        .set_id(query.id())
        .set_message_type(MessageType::Response)
        .set_op_code(query.op_code())
        .set_recursion_desired(query.recursion_desired())
        .set_recursion_available(true)
        .set_response_code(code)
        .add_queries(query.queries().iter().cloned());
    if query.extensions().is_some() {
        let mut edns = Edns::new();
        edns.set_max_payload(EDNS_PAYLOAD);
        reply.set_edns(edns);
    }
    reply
}

/// SERVFAIL for a query that could not be forwarded (no upstream answered in time).
pub fn servfail(bytes: &[u8]) -> Option<Vec<u8>> {
    let query = Message::from_vec(bytes).ok()?;
    response(&query, ResponseCode::ServFail).to_vec().ok()
}

/// The question back with TC set: the upstream's answer is bigger than the asker takes over UDP.
pub fn too_big(bytes: &[u8]) -> Option<Vec<u8>> {
    let query = Message::from_vec(bytes).ok()?;
    let mut reply = response(&query, ResponseCode::NoError);
    reply.set_truncated(true);
    reply.to_vec().ok()
}

/// Whether `answer` is an upstream's response to the query with `id` (anything else is ignored:
/// a late answer to an earlier query, or a spoofing attempt).
pub fn answers(answer: &[u8], id: u16) -> bool {
    matches!(
        Header::read(&mut BinDecoder::new(answer)),
        Ok(h) if h.id() == id && h.message_type() == MessageType::Response
    )
}

/// An upstream's answer for a UDP asker that takes at most `limit` bytes: as it is, or cut to
/// its question with TC set (the asker then retries over TCP).
pub fn relay(answer: Vec<u8>, limit: usize, counters: &Counters) -> Option<Vec<u8>> {
    if answer.len() <= limit {
        return Some(answer);
    }
    Counters::add(&counters.truncated);
    Message::from_vec(&answer).ok()?.truncate().to_vec().ok()
}

/// An answer's response code, as the log shows it (`No Error`, `Non-Existent Domain`, ...).
pub fn rcode(answer: &[u8]) -> String {
    match Header::read(&mut BinDecoder::new(answer)) {
        Ok(h) => h.response_code().to_str().to_string(),
        Err(_) => "unreadable".into(),
    }
}

/// The query's ID (the first two bytes; the caller checked the length).
pub fn query_id(bytes: &[u8]) -> u16 {
    u16::from_be_bytes([bytes[0], bytes[1]])
}

fn fit(reply: Message, limit: usize, counters: &Counters) -> Action {
    match reply.to_vec() {
        Ok(b) if b.len() <= limit => Action::Reply(b),
        Ok(_) => {
            Counters::add(&counters.truncated);
            reply_bytes(&reply.truncate())
        }
        Err(_) => Action::Drop,
    }
}

fn reply_bytes(m: &Message) -> Action {
    match m.to_vec() {
        Ok(b) => Action::Reply(b),
        Err(_) => Action::Drop,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{ContainerCreate, NetworkCreate};
    use crate::model::tests::Counter;
    use crate::model::State;
    use hickory_proto::op::Query;

    /// front (10.1.0.0/24) with web and three containers sharing the alias `pool`.
    fn table() -> (NameTable, IpAddr) {
        let mut e = Counter(0);
        let mut s = State::initial(&[], &mut e).unwrap();
        s.create_network(
            &NetworkCreate {
                name: "front".into(),
                subnet: Some("10.1.0.0/24".into()),
                ..Default::default()
            },
            &[],
            &mut e,
        )
        .unwrap();
        for name in ["web", "p1", "p2", "p3"] {
            s.create_container(
                &ContainerCreate {
                    name: name.into(),
                    network: "front".into(),
                    aliases: if name == "web" {
                        vec![]
                    } else {
                        vec!["pool".into()]
                    },
                    ..Default::default()
                },
                &mut e,
            )
            .unwrap();
        }
        let web = IpAddr::V4(s.containers["web"].endpoints[0].ip);
        (
            NameTable::build(&s, &["192.0.2.53".parse().unwrap()], &[]),
            web,
        )
    }

    fn ask(name: &str, rtype: RecordType) -> Vec<u8> {
        let mut m = Message::new();
        m.set_id(0x4242)
            .set_recursion_desired(true)
            .add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
        m.to_vec().unwrap()
    }

    fn asker(src: IpAddr) -> Asker {
        Asker {
            listen: Ipv4Addr::new(10, 1, 0, 1),
            src,
            tcp: false,
        }
    }

    fn answer(action: Action) -> Message {
        match action {
            Action::Reply(b) => Message::from_vec(&b).unwrap(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_records_rotate_and_aaaa_is_empty_noerror() {
        let (t, web) = table();
        let c = Counters::default();
        let first = |turn| {
            let m = answer(handle(
                &t,
                asker(web),
                &ask("POOL.", RecordType::A),
                turn,
                &c,
            ));
            assert_eq!(m.id(), 0x4242);
            assert_eq!(m.response_code(), ResponseCode::NoError);
            assert!(m.authoritative() && m.recursion_desired());
            assert_eq!(m.answers().len(), 3);
            m.answers()[0].data().clone()
        };
        assert_ne!(first(0), first(1));
        assert_eq!(first(0), first(3));
        let m = answer(handle(
            &t,
            asker(web),
            &ask("web.", RecordType::AAAA),
            0,
            &c,
        ));
        assert_eq!(m.response_code(), ResponseCode::NoError);
        assert!(m.answers().is_empty());
        let snapshot = c.snapshot();
        assert_eq!((snapshot["answer-a"], snapshot["answer-nodata"]), (4, 1));
    }

    #[test]
    fn ptr_and_forward() {
        let (t, web) = table();
        let c = Counters::default();
        let IpAddr::V4(v4) = web else { unreachable!() };
        let o = v4.octets();
        let q = format!("{}.{}.{}.{}.in-addr.arpa.", o[3], o[2], o[1], o[0]);
        let m = answer(handle(&t, asker(web), &ask(&q, RecordType::PTR), 0, &c));
        assert_eq!(
            m.answers()[0].data(),
            &RData::PTR(PTR(Name::from_ascii("web.front.").unwrap()))
        );
        assert_eq!(
            handle(&t, asker(web), &ask("example.com.", RecordType::A), 0, &c),
            Action::Forward {
                upstreams: vec!["192.0.2.53:53".parse().unwrap()],
                limit: 512
            }
        );
        let m = answer(handle(
            &t,
            asker(web),
            &ask("nobody.front.", RecordType::A),
            0,
            &c,
        ));
        assert_eq!(m.response_code(), ResponseCode::NXDomain);
    }

    #[test]
    fn bad_queries_are_counted_and_answered_formerr_or_dropped() {
        let (t, web) = table();
        let c = Counters::default();
        assert_eq!(handle(&t, asker(web), &[1, 2, 3], 0, &c), Action::Drop);
        // A header that promises a question that is not there.
        let m = answer(handle(
            &t,
            asker(web),
            &[0xab, 0xcd, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 3, b'w'],
            0,
            &c,
        ));
        assert_eq!((m.id(), m.response_code()), (0xabcd, ResponseCode::FormErr));
        let mut chaos = Message::from_vec(&ask("version.bind.", RecordType::TXT)).unwrap();
        chaos.queries_mut()[0].set_query_class(DNSClass::CH);
        let m = answer(handle(&t, asker(web), &chaos.to_vec().unwrap(), 0, &c));
        assert_eq!(m.response_code(), ResponseCode::FormErr);
        let mut two = Message::from_vec(&ask("web.", RecordType::A)).unwrap();
        two.add_query(Query::query(
            Name::from_ascii("p1.").unwrap(),
            RecordType::A,
        ));
        let m = answer(handle(&t, asker(web), &two.to_vec().unwrap(), 0, &c));
        assert_eq!(m.response_code(), ResponseCode::FormErr);
        let mut reply = Message::from_vec(&ask("web.", RecordType::A)).unwrap();
        reply.set_message_type(MessageType::Response);
        assert_eq!(
            handle(&t, asker(web), &reply.to_vec().unwrap(), 0, &c),
            Action::Drop
        );
        assert_eq!(
            handle(&t, asker(web), &vec![0; MAX_QUERY + 1], 0, &c),
            Action::Drop
        );
        let s = c.snapshot();
        assert_eq!(
            (
                s["malformed"],
                s["bad-class"],
                s["not-query"],
                s["oversized"]
            ),
            (3, 1, 1, 1)
        );
    }

    #[test]
    fn relayed_answers_too_big_for_udp_are_truncated() {
        let c = Counters::default();
        let mut big = Message::from_vec(&ask("many.example.", RecordType::A)).unwrap();
        big.set_message_type(MessageType::Response);
        for i in 0..60u8 {
            big.add_answer(Record::from_rdata(
                Name::from_ascii("many.example.").unwrap(),
                60,
                RData::A(A(Ipv4Addr::new(192, 0, 2, i))),
            ));
        }
        let bytes = big.to_vec().unwrap();
        assert!(answers(&bytes, 0x4242) && !answers(&bytes, 1));
        let cut = relay(bytes.clone(), 512, &c).unwrap();
        let m = Message::from_vec(&cut).unwrap();
        assert!(m.truncated() && m.answers().is_empty());
        assert_eq!(relay(bytes.clone(), 4096, &c), Some(bytes));
        assert_eq!(c.snapshot()["truncated"], 1);
        let m = Message::from_vec(&too_big(&ask("many.example.", RecordType::A)).unwrap()).unwrap();
        assert!(m.truncated() && m.answers().is_empty() && m.queries().len() == 1);
        assert_eq!(m.id(), 0x4242);
    }
}
