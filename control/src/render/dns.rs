//! The resolver's query log (`switchyard trace dns`) as compact lines and as numbered sentences.

use crate::api::trace::DnsQueryView;

fn who(q: &DnsQueryView) -> String {
    match &q.container {
        Some(c) => format!("{c} ({})", q.asker),
        None => q.asker.clone(),
    }
}

/// `#12 udp front web (10.1.0.2) A app.front. -> local 10.1.0.3 (45 µs)`
pub fn line(q: &DnsQueryView) -> String {
    let answer = if q.answer.is_empty() {
        String::new()
    } else {
        format!(" {}", q.answer)
    };
    format!(
        "#{} {} {} {} {} {} -> {}{answer} ({} µs)",
        q.seq,
        q.protocol,
        q.network,
        who(q),
        q.qtype,
        q.name,
        q.outcome,
        q.micros
    )
}

/// The same query told step by step, for people learning what the resolver does.
pub fn explain(q: &DnsQueryView) -> Vec<String> {
    let asked = if q.name.is_empty() {
        format!(
            "A {} message came from {} to the resolver of network {}.",
            q.protocol.to_uppercase(),
            who(q),
            q.network
        )
    } else {
        format!(
            "{} asked the resolver of network {} (its gateway, {}) for {} {}.",
            who(q),
            q.network,
            q.protocol.to_uppercase(),
            q.qtype,
            q.name
        )
    };
    let answered = match q.outcome.as_str() {
        "local" => format!(
            "It is a name on a network {} shares with the asker: answered {} from the name table.",
            q.name, q.answer
        ),
        "pointer" => format!("The address belongs to a container it may see: answered {}.", q.answer),
        "nodata" => "The name is local but has no records of that type: an empty NOERROR answer, so the asker does not wait.".into(),
        "nxdomain" => "The name is in a local network's name space (or the asker may not reach out: an internal network), and no one has it: NXDOMAIN without asking upstream.".into(),
        "forwarded" => format!("It is not a local name: forwarded upstream from the daemon's namespace, which answered {}.", q.answer),
        "servfail" => format!("It is not a local name, and {}: SERVFAIL, so the asker does not wait for its own timeout.", q.answer),
        "formerr" => "It is not a well-formed query: answered FORMERR and counted as bad input.".into(),
        "notimp" => "It asks for another operation than a query: answered NOTIMP.".into(),
        _ => "It could not be answered (too short, too long, or not a query): dropped and counted.".into(),
    };
    vec![
        asked,
        answered,
        format!("The answer left {} µs after the query arrived.", q.micros),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_explanations() {
        let q = DnsQueryView {
            seq: 3,
            unix_ms: 0,
            protocol: "udp".into(),
            network: "front".into(),
            asker: "10.1.0.2".into(),
            container: Some("web".into()),
            name: "app.front.".into(),
            qtype: "A".into(),
            outcome: "local".into(),
            answer: "10.1.0.3".into(),
            micros: 45,
        };
        assert_eq!(
            line(&q),
            "#3 udp front web (10.1.0.2) A app.front. -> local 10.1.0.3 (45 µs)"
        );
        let e = explain(&q);
        assert_eq!(e.len(), 3);
        assert!(
            e[0].starts_with("web (10.1.0.2) asked the resolver of network front"),
            "{e:?}"
        );
        assert!(
            e[1].contains("answered 10.1.0.3 from the name table"),
            "{e:?}"
        );
    }
}
