//! A small tcpdump-like packet filter for armed traces and captures.
//!
//! `Filter::parse` compiles text such as `tcp and dst port 80 and not host 10.0.0.1` once, into a
//! small tree; `Filter::matches` then decodes the frame's headers once, through `wire` as
//! `ingress` does (or takes them from `ingress`'s view: `matches_view`), into a stack value and
//! walks the tree, with no allocation and no panic on any input.
//!
//! Why our own filter and not libpcap's BPF: it keeps the dataplane free of a C dependency, it runs
//! in the engine thread on the frame bytes already in hand (no socket, no syscall, no kernel BPF
//! program to load), and it is only evaluated while a trace or capture is armed, so it needs to be
//! correct and small rather than a JIT. The grammar is a subset of pcap-filter(7):
//!
//! ```text
//! expr    := or
//! or      := and ("or" | "||") and ...
//! and     := not ("and" | "&&") not ...
//! not     := ("not" | "!") not | primary
//! primary := "(" expr ")"
//!          | "host" IPV4 | ("src" | "dst") ["host"] IPV4
//!          | "net" IPV4/LEN | ("src" | "dst") "net" IPV4/LEN
//!          | ["tcp" | "udp"] [("src" | "dst")] "port" N
//!          | ["tcp" | "udp"] [("src" | "dst")] "portrange" N-M
//!          | "tcp" | "udp" | "icmp" | "arp" | "ip" | "ip6"
//!          | "ether" ("host" | "src" | "dst") MAC | ["ether"] "broadcast" | ["ether"] "multicast"
//!          | "vlan" [N]
//! ```
//!
//! Keywords are case-insensitive. Semantics, and where they differ from tcpdump:
//!
//! - Precedence is `not` > `and` > `or`, as in most languages. tcpdump gives `and` and `or` equal
//!   precedence, left to right: there `tcp or udp and port 53` means `(tcp or udp) and port 53`,
//!   here `tcp or (udp and port 53)`. Parenthesise when in doubt; `text()` shows the reading.
//! - A frame may carry one 802.1Q tag (TPID 0x8100). `vlan` matches any such tag and `vlan N` its
//!   VLAN id; every other primitive looks *behind* the tag, whether or not the filter says `vlan`.
//!   (tcpdump instead shifts its offsets only after a `vlan` keyword, so `tcp` alone does not
//!   match a tagged frame there.) 802.1ad (0x88a8) frames are not looked into, as in `wire`.
//! - `host`/`net` match IPv4 source or destination, and for ARP (IPv4 over Ethernet) the sender
//!   and target protocol addresses, as tcpdump does. They never match IPv6 (an IPv6 address is
//!   rejected at parse time).
//! - `tcp`/`udp`/`icmp` test the IPv4 protocol field; `port`/`portrange` match TCP and UDP over
//!   IPv4 only (tcpdump also matches IPv6 and SCTP). Non-first IPv4 fragments carry no ports, so
//!   port primitives never match them (as in tcpdump); `udp` still does.
//! - `ip`, `ip6` and `arp` test the EtherType only; IPv6 frames are matched only by `ip6`, `vlan`
//!   and the Ethernet primitives. `multicast` is the Ethernet group bit (so it includes broadcast).
//! - Primitives need their header bytes present: a frame shorter than 14 bytes matches no
//!   primitive; an IPv4 header with a bad version/IHL or cut short, an ARP body shorter than 28
//!   bytes, or a missing port field does not match the L3/L4 primitives. So `not` of such a
//!   primitive does match (libpcap's BPF instead rejects the whole packet on an out-of-bounds
//!   load). `net` needs an explicit prefix length and zero host bits; hostnames and service names
//!   are not resolved. `portrange 2000-1000` is read as 1000-2000, as tcpdump does.
//!
//! `Filter::text` is a normalised rendering (lower-case keywords, `and`/`or`/`not` for the
//! symbolic operators, canonical addresses, only the parentheses precedence needs) that parses
//! back to the same filter.

use std::fmt;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use crate::stage::PacketView;
use crate::wire::ethernet::{self, ethertype, EthernetFrame};
use crate::wire::headers::L3;
use crate::wire::ipv4::protocol;
use crate::wire::MacAddr;

/// Most `not`s and parentheses one inside another; bounds the recursion of parse and match.
const MAX_DEPTH: usize = 64;

const KEYWORDS: &[&str] = &[
    "and",
    "or",
    "not",
    "host",
    "src",
    "dst",
    "net",
    "port",
    "portrange",
    "tcp",
    "udp",
    "icmp",
    "arp",
    "ip",
    "ip6",
    "ether",
    "broadcast",
    "multicast",
    "vlan",
];

/// A compiled filter. Equality compares the compiled form, so two spellings of one filter are
/// equal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Filter {
    text: String,
    root: Node,
}

/// Why a filter did not parse. `message` is the whole one-line text `Display` shows, e.g.
/// `filter 'port eighty': expected a port number after 'port', got 'eighty' (at 6)`; positions
/// count characters from 1.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilterError {
    pub message: String,
}

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for FilterError {}

impl Filter {
    /// Compile `text`. Empty or whitespace-only text gives a filter that matches every frame.
    pub fn parse(text: &str) -> Result<Filter, FilterError> {
        let tokens = tokenize(text)?;
        if tokens.is_empty() {
            return Ok(Filter {
                text: String::new(),
                root: Node::And(Vec::new()),
            });
        }
        let mut parser = Parser {
            src: text,
            tokens,
            next: 0,
            depth: 0,
        };
        let root = parser.parse_or()?;
        if let Some(t) = parser.peek() {
            return Err(parser.trailing(t));
        }
        let mut normalised = String::new();
        render(&root, &mut normalised);
        Ok(Filter {
            text: normalised,
            root,
        })
    }

    /// Whether the Ethernet frame (without FCS) matches. Never panics and never allocates.
    pub fn matches(&self, frame: &[u8]) -> bool {
        self.root.eval(Headers::decode(frame).as_ref())
    }

    /// Whether the frame `ingress` parsed into `view` (with its L3 fields) matches: the same answer
    /// as `matches(view.frame)` without reading the frame again.
    pub fn matches_view(&self, view: &PacketView<'_>) -> bool {
        self.root.eval(Some(&Headers::of_view(view)))
    }

    /// The normalised filter text ("" for the match-everything filter).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// True for the empty filter, which matches every frame.
    pub fn matches_everything(&self) -> bool {
        matches!(&self.root, Node::And(v) if v.is_empty())
    }
}

impl FromStr for Filter {
    type Err = FilterError;
    fn from_str(s: &str) -> Result<Filter, FilterError> {
        Filter::parse(s)
    }
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

// ---------------------------------------------------------------------------------------------
// Compiled form

#[derive(Clone, Debug, PartialEq, Eq)]
enum Node {
    Prim(Prim),
    Not(Box<Node>),
    /// All of; the empty list is the match-everything filter.
    And(Vec<Node>),
    Or(Vec<Node>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dir {
    Either,
    Src,
    Dst,
}

/// Which transport a port primitive is limited to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum L4 {
    Any,
    Tcp,
    Udp,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Prim {
    Host {
        dir: Dir,
        addr: u32,
    },
    Net {
        dir: Dir,
        addr: u32,
        len: u8,
    },
    Port {
        dir: Dir,
        l4: L4,
        lo: u16,
        hi: u16,
        /// Written as `portrange` (kept so the text round-trips).
        range: bool,
    },
    /// IPv4 protocol number.
    Proto(u8),
    EtherType(u16),
    EtherHost {
        dir: Dir,
        mac: MacAddr,
    },
    Broadcast,
    Multicast,
    Vlan(Option<u16>),
}

impl Node {
    fn eval(&self, h: Option<&Headers>) -> bool {
        match self {
            Node::Prim(p) => h.is_some_and(|h| p.eval(h)),
            Node::Not(n) => !n.eval(h),
            Node::And(v) => v.iter().all(|n| n.eval(h)),
            Node::Or(v) => v.iter().any(|n| n.eval(h)),
        }
    }
}

fn dir_match<T: Copy>(dir: Dir, src: T, dst: T, want: impl Fn(T) -> bool) -> bool {
    match dir {
        Dir::Either => want(src) || want(dst),
        Dir::Src => want(src),
        Dir::Dst => want(dst),
    }
}

fn mask(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len.min(32)))
    }
}

impl Prim {
    fn eval(&self, h: &Headers) -> bool {
        match *self {
            Prim::Host { dir, addr } => h.addr_match(dir, addr, u32::MAX),
            Prim::Net { dir, addr, len } => h.addr_match(dir, addr, mask(len)),
            Prim::Port {
                dir,
                l4,
                lo,
                hi,
                range: _,
            } => h.l3.ipv4().is_some_and(|ip| {
                let proto_ok = match l4 {
                    L4::Any => true,
                    L4::Tcp => ip.protocol == protocol::TCP,
                    L4::Udp => ip.protocol == protocol::UDP,
                };
                proto_ok
                    && dir_match(dir, ip.sport, ip.dport, |p| {
                        p.is_some_and(|p| (lo..=hi).contains(&p))
                    })
            }),
            Prim::Proto(p) => h.l3.ipv4().is_some_and(|ip| ip.protocol == p),
            Prim::EtherType(t) => h.ethertype == t,
            Prim::EtherHost { dir, mac } => dir_match(dir, h.src, h.dst, |m| m == mac),
            Prim::Broadcast => h.dst.is_broadcast(),
            Prim::Multicast => h.dst.is_multicast(),
            Prim::Vlan(None) => h.vlan.is_some(),
            Prim::Vlan(Some(vid)) => h.vlan == Some(vid),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Header decode (once per frame, on the stack, through `wire`)

#[derive(Clone, Copy, Debug)]
struct Headers {
    dst: MacAddr,
    src: MacAddr,
    /// VLAN id of a single 802.1Q tag.
    vlan: Option<u16>,
    /// The EtherType behind the tag, if any.
    ethertype: u16,
    /// IPv4 or ARP (IPv4 over Ethernet), as `ingress` reads them.
    l3: L3,
}

impl Headers {
    /// None for a frame too short for an Ethernet header: it matches no primitive.
    fn decode(frame: &[u8]) -> Option<Headers> {
        if frame.len() < ethernet::HEADER_LEN {
            return None;
        }
        let eth = EthernetFrame::new_unchecked(frame);
        let (dst, src) = (eth.dst_addr(), eth.src_addr());
        if eth.check_len().is_err() {
            // A cut-off tag: neither the tag nor anything behind it is visible.
            return Some(Headers {
                dst,
                src,
                vlan: None,
                ethertype: eth.ethertype(),
                l3: L3::None,
            });
        }
        let ethertype = eth.inner_ethertype();
        Some(Headers {
            dst,
            src,
            vlan: eth.vlan_tag().map(|t| t.vid),
            ethertype,
            l3: L3::parse(frame, ethertype, eth.l3_offset()),
        })
    }

    /// The same, from a view `ingress` made with its L3 fields.
    fn of_view(view: &PacketView<'_>) -> Headers {
        Headers {
            dst: view.dst,
            src: view.src,
            vlan: (view.l3_offset == ethernet::VLAN_HEADER_LEN).then_some(view.vlan.0),
            ethertype: view.ethertype,
            l3: view.l3,
        }
    }

    fn addr_match(&self, dir: Dir, addr: u32, mask: u32) -> bool {
        let hit = |a: Ipv4Addr| u32::from(a) & mask == addr;
        match self.l3 {
            L3::Ipv4(ip) => dir_match(dir, ip.src, ip.dst, hit),
            L3::Arp(arp) => dir_match(dir, arp.sender_ip, arp.target_ip, hit),
            L3::None => false,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Rendering (the normalised text)

fn render(node: &Node, out: &mut String) {
    match node {
        Node::Prim(p) => {
            let _ = write!(out, "{p}");
        }
        Node::Not(inner) => {
            out.push_str("not ");
            render_operand(inner, matches!(**inner, Node::And(_) | Node::Or(_)), out);
        }
        Node::And(items) => {
            for (i, n) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(" and ");
                }
                render_operand(n, matches!(n, Node::Or(_)), out);
            }
        }
        Node::Or(items) => {
            for (i, n) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(" or ");
                }
                render(n, out);
            }
        }
    }
}

fn render_operand(node: &Node, parens: bool, out: &mut String) {
    if parens {
        out.push('(');
    }
    render(node, out);
    if parens {
        out.push(')');
    }
}

fn dir_word(dir: Dir) -> &'static str {
    match dir {
        Dir::Either => "",
        Dir::Src => "src ",
        Dir::Dst => "dst ",
    }
}

impl fmt::Display for Prim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Prim::Host { dir, addr } => write!(f, "{}host {}", dir_word(dir), Ipv4Addr::from(addr)),
            Prim::Net { dir, addr, len } => {
                write!(f, "{}net {}/{len}", dir_word(dir), Ipv4Addr::from(addr))
            }
            Prim::Port {
                dir,
                l4,
                lo,
                hi,
                range,
            } => {
                let l4 = match l4 {
                    L4::Any => "",
                    L4::Tcp => "tcp ",
                    L4::Udp => "udp ",
                };
                if range {
                    write!(f, "{l4}{}portrange {lo}-{hi}", dir_word(dir))
                } else {
                    write!(f, "{l4}{}port {lo}", dir_word(dir))
                }
            }
            Prim::Proto(p) => f.write_str(match p {
                protocol::TCP => "tcp",
                protocol::UDP => "udp",
                _ => "icmp",
            }),
            Prim::EtherType(t) => f.write_str(match t {
                ethertype::IPV4 => "ip",
                ethertype::IPV6 => "ip6",
                _ => "arp",
            }),
            Prim::EtherHost { dir, mac: m } => {
                let word = match dir {
                    Dir::Either => "host",
                    Dir::Src => "src",
                    Dir::Dst => "dst",
                };
                write!(f, "ether {word} {m}")
            }
            Prim::Broadcast => f.write_str("broadcast"),
            Prim::Multicast => f.write_str("multicast"),
            Prim::Vlan(None) => f.write_str("vlan"),
            Prim::Vlan(Some(vid)) => write!(f, "vlan {vid}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Tokens

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Word,
    LParen,
    RParen,
    /// `!`
    Bang,
    /// `&&`
    AndAnd,
    /// `||`
    OrOr,
}

#[derive(Clone, Copy, Debug)]
struct Token<'a> {
    kind: Kind,
    text: &'a str,
    /// 1-based character column.
    pos: usize,
}

impl Token<'_> {
    fn is(&self, keyword: &str) -> bool {
        self.kind == Kind::Word && self.text.eq_ignore_ascii_case(keyword)
    }

    fn is_and(&self) -> bool {
        self.kind == Kind::AndAnd || self.is("and")
    }

    fn is_or(&self) -> bool {
        self.kind == Kind::OrOr || self.is("or")
    }

    fn is_not(&self) -> bool {
        self.kind == Kind::Bang || self.is("not")
    }

    fn is_keyword(&self) -> bool {
        self.kind == Kind::Word && KEYWORDS.iter().any(|k| self.is(k))
    }
}

fn is_special(c: char) -> bool {
    matches!(c, '(' | ')' | '!' | '&' | '|')
}

fn tokenize(src: &str) -> Result<Vec<Token<'_>>, FilterError> {
    let chars: Vec<(usize, char)> = src.char_indices().collect();
    let byte_at = |i: usize| chars.get(i).map_or(src.len(), |&(b, _)| b);
    let mut tokens = Vec::new();
    let mut i = 0;
    while let Some(&(_, c)) = chars.get(i) {
        let start = i;
        let kind = match c {
            _ if c.is_whitespace() => {
                i += 1;
                continue;
            }
            '(' => Kind::LParen,
            ')' => Kind::RParen,
            '!' => Kind::Bang,
            '&' | '|' => {
                if chars.get(i + 1).map(|&(_, n)| n) != Some(c) {
                    let word = if c == '&' { "and" } else { "or" };
                    return Err(error(
                        src,
                        format!("unexpected '{c}' (use '{word}' or '{c}{c}') (at {})", i + 1),
                    ));
                }
                i += 1;
                if c == '&' {
                    Kind::AndAnd
                } else {
                    Kind::OrOr
                }
            }
            _ => {
                while chars
                    .get(i + 1)
                    .is_some_and(|&(_, n)| !n.is_whitespace() && !is_special(n))
                {
                    i += 1;
                }
                Kind::Word
            }
        };
        i += 1;
        tokens.push(Token {
            kind,
            text: &src[byte_at(start)..byte_at(i)],
            pos: start + 1,
        });
    }
    Ok(tokens)
}

/// Control characters (newlines, tabs) become spaces so the message stays on one line and
/// positions still line up.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

fn error(src: &str, what: String) -> FilterError {
    FilterError {
        message: format!("filter '{}': {what}", one_line(src)),
    }
}

/// Optimal-string-alignment distance (edits plus adjacent swaps), for "did you mean".
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[a.len()][b.len()]
}

fn suggestion(word: &str) -> Option<&'static str> {
    let lower = word.to_ascii_lowercase();
    let limit = if lower.chars().count() >= 5 { 2 } else { 1 };
    KEYWORDS
        .iter()
        .map(|k| (edit_distance(&lower, k), *k))
        .filter(|&(d, _)| d <= limit)
        .min_by_key(|&(d, _)| d)
        .map(|(_, k)| k)
}

/// `Some(Ok(n))` for an all-digit word, `Some(Err(()))` when its value exceeds `max`.
fn number(word: &str, max: u32) -> Option<Result<u32, ()>> {
    if word.is_empty() || !word.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(word.parse::<u32>().ok().filter(|&n| n <= max).ok_or(()))
}

// ---------------------------------------------------------------------------------------------
// Parser (recursive descent over the token list)

struct Parser<'a> {
    src: &'a str,
    tokens: Vec<Token<'a>>,
    next: usize,
    depth: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<Token<'a>> {
        self.tokens.get(self.next).copied()
    }

    fn peek_at(&self, ahead: usize) -> Option<Token<'a>> {
        self.tokens.get(self.next + ahead).copied()
    }

    fn bump(&mut self) {
        self.next += 1;
    }

    fn err(&self, what: String) -> FilterError {
        error(self.src, what)
    }

    /// The next token, or "expression ends after '<previous>'".
    fn take(&mut self) -> Result<Token<'a>, FilterError> {
        match self.peek() {
            Some(t) => {
                self.bump();
                Ok(t)
            }
            None => {
                let last = self.tokens.last().map_or("", |t| t.text);
                Err(self.err(format!("expression ends after '{last}'")))
            }
        }
    }

    fn previous(&self) -> Option<Token<'a>> {
        self.next
            .checked_sub(1)
            .and_then(|i| self.tokens.get(i))
            .copied()
    }

    fn enter(&mut self, at: Token<'a>) -> Result<(), FilterError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.err(format!(
                "more than {MAX_DEPTH} nested 'not's and parentheses (at {})",
                at.pos
            )));
        }
        Ok(())
    }

    /// The error for a token left over after a complete expression.
    fn trailing(&self, t: Token<'a>) -> FilterError {
        if t.kind == Kind::RParen {
            return self.err(format!("unmatched ')' (at {})", t.pos));
        }
        if t.kind == Kind::Word && !t.is_keyword() {
            if let Some(k) = suggestion(t.text) {
                return self.err(format!(
                    "unknown word '{}' (did you mean '{k}'?) (at {})",
                    t.text, t.pos
                ));
            }
        }
        self.err(format!(
            "expected 'and' or 'or' before '{}' (at {})",
            t.text, t.pos
        ))
    }

    fn parse_or(&mut self) -> Result<Node, FilterError> {
        let mut items = vec![self.parse_and()?];
        while self.peek().is_some_and(|t| t.is_or()) {
            self.bump();
            items.push(self.parse_and()?);
        }
        Ok(flatten(items, Node::Or, |n| match n {
            Node::Or(v) => Ok(v),
            other => Err(other),
        }))
    }

    fn parse_and(&mut self) -> Result<Node, FilterError> {
        let mut items = vec![self.parse_not()?];
        while self.peek().is_some_and(|t| t.is_and()) {
            self.bump();
            items.push(self.parse_not()?);
        }
        Ok(flatten(items, Node::And, |n| match n {
            Node::And(v) => Ok(v),
            other => Err(other),
        }))
    }

    fn parse_not(&mut self) -> Result<Node, FilterError> {
        match self.peek() {
            Some(t) if t.is_not() => {
                self.bump();
                self.enter(t)?;
                let inner = self.parse_not()?;
                self.depth -= 1;
                Ok(Node::Not(Box::new(inner)))
            }
            _ => self.parse_primary(),
        }
    }

    fn parse_primary(&mut self) -> Result<Node, FilterError> {
        let before = self.previous();
        let t = self.take()?;
        match t.kind {
            Kind::LParen => {
                self.enter(t)?;
                let inner = self.parse_or()?;
                self.depth -= 1;
                match self.peek() {
                    Some(close) if close.kind == Kind::RParen => {
                        self.bump();
                        Ok(inner)
                    }
                    Some(other) => Err(self.err(format!(
                        "expected ')', 'and' or 'or' before '{}' (at {})",
                        other.text, other.pos
                    ))),
                    None => Err(self.err("missing ')'".to_string())),
                }
            }
            Kind::Word if !t.is_and() && !t.is_or() => self.parse_word(t).map(Node::Prim),
            _ => Err(self.err(match before {
                Some(b) => format!(
                    "expected a primitive after '{}', got '{}' (at {})",
                    b.text, t.text, t.pos
                ),
                None => format!("expected a primitive, got '{}' (at {})", t.text, t.pos),
            })),
        }
    }

    fn parse_word(&mut self, t: Token<'a>) -> Result<Prim, FilterError> {
        let word = t.text.to_ascii_lowercase();
        Ok(match word.as_str() {
            "host" => Prim::Host {
                dir: Dir::Either,
                addr: self.ipv4_arg(t)?,
            },
            "net" => self.net_arg(t, Dir::Either)?,
            "src" => self.directed(t, Dir::Src, L4::Any)?,
            "dst" => self.directed(t, Dir::Dst, L4::Any)?,
            "port" | "portrange" => self.port_arg(t, Dir::Either, L4::Any)?,
            "tcp" | "udp" => {
                let l4 = if word == "tcp" { L4::Tcp } else { L4::Udp };
                let is_port =
                    |t: Option<Token>| t.is_some_and(|t| t.is("port") || t.is("portrange"));
                let is_dir = |t: Option<Token>| t.is_some_and(|t| t.is("src") || t.is("dst"));
                if is_port(self.peek()) {
                    let p = self.take()?;
                    self.port_arg(p, Dir::Either, l4)?
                } else if is_dir(self.peek()) && is_port(self.peek_at(1)) {
                    let d = self.take()?;
                    let dir = if d.is("src") { Dir::Src } else { Dir::Dst };
                    self.directed(d, dir, l4)?
                } else if l4 == L4::Tcp {
                    Prim::Proto(protocol::TCP)
                } else {
                    Prim::Proto(protocol::UDP)
                }
            }
            "icmp" => Prim::Proto(protocol::ICMP),
            "ip" => Prim::EtherType(ethertype::IPV4),
            "ip6" => Prim::EtherType(ethertype::IPV6),
            "arp" => Prim::EtherType(ethertype::ARP),
            "broadcast" => Prim::Broadcast,
            "multicast" => Prim::Multicast,
            "ether" => self.ether(t)?,
            "vlan" => {
                let vid = match self.peek() {
                    Some(n) if n.kind == Kind::Word => match number(n.text, 4095) {
                        Some(Ok(v)) => Some(v as u16),
                        Some(Err(())) => {
                            return Err(self.err(format!(
                                "VLAN id '{}' is out of range 0-4095 (at {})",
                                n.text, n.pos
                            )))
                        }
                        None => None,
                    },
                    _ => None,
                };
                if vid.is_some() {
                    self.bump();
                }
                Prim::Vlan(vid)
            }
            _ => return Err(self.unknown(t)),
        })
    }

    fn unknown(&self, t: Token<'a>) -> FilterError {
        let hint = if let Some(k) = suggestion(t.text) {
            format!(" (did you mean '{k}'?)")
        } else if t.text.parse::<Ipv4Addr>().is_ok() {
            format!(" (did you mean 'host {}'?)", t.text)
        } else if number(t.text, 65535).is_some_and(|n| n.is_ok()) {
            format!(" (did you mean 'port {}'?)", t.text)
        } else {
            String::new()
        };
        self.err(format!("unknown word '{}'{hint} (at {})", t.text, t.pos))
    }

    /// After `src`/`dst` (and possibly `tcp`/`udp` before it).
    fn directed(&mut self, kw: Token<'a>, dir: Dir, l4: L4) -> Result<Prim, FilterError> {
        let t = self.take()?;
        if t.is("port") || t.is("portrange") {
            return self.port_arg(t, dir, l4);
        }
        if t.is("host") {
            return Ok(Prim::Host {
                dir,
                addr: self.ipv4_arg(t)?,
            });
        }
        if t.is("net") {
            return self.net_arg(t, dir);
        }
        if t.kind == Kind::Word && t.text.starts_with(|c: char| c.is_ascii_digit()) {
            self.next -= 1;
            return Ok(Prim::Host {
                dir,
                addr: self.ipv4_arg(kw)?,
            });
        }
        Err(self.err(format!(
            "expected 'host', 'net', 'port', 'portrange' or an IPv4 address after '{}', got '{}' (at {})",
            kw.text, t.text, t.pos
        )))
    }

    fn ipv4_arg(&mut self, kw: Token<'a>) -> Result<u32, FilterError> {
        let t = self.take()?;
        if t.kind == Kind::Word {
            if let Ok(a) = t.text.parse::<Ipv4Addr>() {
                return Ok(u32::from(a));
            }
            if t.text.contains(':') && t.text.parse::<Ipv6Addr>().is_ok() {
                return Err(self.err(format!(
                    "'{}' matches IPv4 only, got IPv6 address '{}' (at {})",
                    kw.text, t.text, t.pos
                )));
            }
            if t.text.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
                return Err(self.err(format!("invalid IPv4 address '{}' (at {})", t.text, t.pos)));
            }
        }
        Err(self.err(format!(
            "expected an IPv4 address after '{}', got '{}' (at {})",
            kw.text, t.text, t.pos
        )))
    }

    fn net_arg(&mut self, kw: Token<'a>, dir: Dir) -> Result<Prim, FilterError> {
        let t = self.take()?;
        let Some((addr, len)) = t.text.split_once('/').filter(|_| t.kind == Kind::Word) else {
            return Err(self.err(format!(
                "expected a network like 10.0.0.0/8 after '{}', got '{}' (at {})",
                kw.text, t.text, t.pos
            )));
        };
        let Ok(addr) = addr.parse::<Ipv4Addr>() else {
            return Err(self.err(format!(
                "invalid IPv4 address '{addr}' in '{}' (at {})",
                t.text, t.pos
            )));
        };
        let Some(Ok(len)) = number(len, 32) else {
            return Err(self.err(format!(
                "invalid prefix length '{len}' in '{}', expected 0-32 (at {})",
                t.text, t.pos
            )));
        };
        let len = len as u8;
        let addr = u32::from(addr);
        if addr & !mask(len) != 0 {
            return Err(self.err(format!(
                "'{}' has bits set outside the /{len} prefix (did you mean '{}/{len}'?) (at {})",
                t.text,
                Ipv4Addr::from(addr & mask(len)),
                t.pos
            )));
        }
        Ok(Prim::Net { dir, addr, len })
    }

    /// `kw` is `port` or `portrange`.
    fn port_arg(&mut self, kw: Token<'a>, dir: Dir, l4: L4) -> Result<Prim, FilterError> {
        let range = kw.is("portrange");
        let t = self.take()?;
        let out_of_range = |p: &Parser, n: &str| {
            p.err(format!(
                "port number '{n}' is out of range 0-65535 (at {})",
                t.pos
            ))
        };
        let word = if t.kind == Kind::Word { t.text } else { "" };
        let (lo, hi) = if range {
            let Some((a, b)) = word.split_once('-') else {
                return Err(self.err(format!(
                    "expected a port range like 1000-2000 after '{}', got '{}' (at {})",
                    kw.text, t.text, t.pos
                )));
            };
            match (number(a, 65535), number(b, 65535)) {
                (Some(Ok(a)), Some(Ok(b))) => (a.min(b), a.max(b)),
                (Some(Err(())), _) => return Err(out_of_range(self, a)),
                (_, Some(Err(()))) => return Err(out_of_range(self, b)),
                _ => {
                    return Err(self.err(format!(
                        "expected a port range like 1000-2000 after '{}', got '{}' (at {})",
                        kw.text, t.text, t.pos
                    )))
                }
            }
        } else {
            match number(word, 65535) {
                Some(Ok(n)) => (n, n),
                Some(Err(())) => return Err(out_of_range(self, word)),
                None => {
                    return Err(self.err(format!(
                        "expected a port number after '{}', got '{}' (at {})",
                        kw.text, t.text, t.pos
                    )))
                }
            }
        };
        Ok(Prim::Port {
            dir,
            l4,
            lo: lo as u16,
            hi: hi as u16,
            range,
        })
    }

    fn ether(&mut self, kw: Token<'a>) -> Result<Prim, FilterError> {
        let t = self.take()?;
        let dir = if t.is("host") {
            Dir::Either
        } else if t.is("src") {
            Dir::Src
        } else if t.is("dst") {
            Dir::Dst
        } else if t.is("broadcast") {
            return Ok(Prim::Broadcast);
        } else if t.is("multicast") {
            return Ok(Prim::Multicast);
        } else {
            return Err(self.err(format!(
                "expected 'host', 'src', 'dst', 'broadcast' or 'multicast' after '{}', got '{}' (at {})",
                kw.text, t.text, t.pos
            )));
        };
        let m = self.take()?;
        match m
            .text
            .parse::<MacAddr>()
            .ok()
            .filter(|_| m.kind == Kind::Word)
        {
            Some(mac) => Ok(Prim::EtherHost { dir, mac }),
            None if m.kind == Kind::Word => Err(self.err(format!(
                "invalid MAC address '{}', expected six hex bytes like 02:42:ac:11:00:02 (at {})",
                m.text, m.pos
            ))),
            None => Err(self.err(format!(
                "expected a MAC address after 'ether {}', got '{}' (at {})",
                t.text, m.text, m.pos
            ))),
        }
    }
}

/// One node from a list of operands, splicing in operands that are already the same operator
/// (from parentheses), so `(a or b) or c` and `a or b or c` compile alike.
fn flatten(
    mut items: Vec<Node>,
    make: fn(Vec<Node>) -> Node,
    same: fn(Node) -> Result<Vec<Node>, Node>,
) -> Node {
    if items.len() == 1 {
        if let Some(only) = items.pop() {
            return only;
        }
    }
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        match same(item) {
            Ok(inner) => out.extend(inner),
            Err(other) => out.push(other),
        }
    }
    make(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{
        EtherType, Ethernet2Header, IpFragOffset, IpNumber, Ipv4Header, PacketBuilder, VlanId,
    };
    use proptest::prelude::*;
    use std::collections::BTreeSet;
    use std::process::Command;

    const MAC_A: [u8; 6] = [0x02, 0x42, 0xac, 0x11, 0x00, 0x02];
    const MAC_B: [u8; 6] = [0x02, 0x42, 0xac, 0x11, 0x00, 0x03];
    const BCAST: [u8; 6] = [0xff; 6];
    const MCAST: [u8; 6] = [0x01, 0x00, 0x5e, 0x00, 0x00, 0xfb];
    const A: [u8; 4] = [172, 17, 0, 2];
    const B: [u8; 4] = [172, 17, 0, 3];
    const C: [u8; 4] = [10, 1, 2, 3];

    fn tcp(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
        let mut out = Vec::new();
        PacketBuilder::ethernet2(MAC_A, MAC_B)
            .ipv4(src, dst, 64)
            .tcp(sport, dport, 1, 1024)
            .write(&mut out, b"hello")
            .unwrap();
        out
    }

    fn udp(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
        let mut out = Vec::new();
        PacketBuilder::ethernet2(MAC_A, MAC_B)
            .ipv4(src, dst, 64)
            .udp(sport, dport)
            .write(&mut out, b"hello")
            .unwrap();
        out
    }

    fn icmp(src: [u8; 4], dst: [u8; 4]) -> Vec<u8> {
        let mut out = Vec::new();
        PacketBuilder::ethernet2(MAC_A, MAC_B)
            .ipv4(src, dst, 64)
            .icmpv4_echo_request(7, 1)
            .write(&mut out, b"ping")
            .unwrap();
        out
    }

    fn vlan_tcp(vid: u16, src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
        let mut out = Vec::new();
        PacketBuilder::ethernet2(MAC_A, MAC_B)
            .single_vlan(VlanId::try_new(vid).unwrap())
            .ipv4(src, dst, 64)
            .tcp(sport, dport, 1, 1024)
            .write(&mut out, b"hello")
            .unwrap();
        out
    }

    fn ipv6_udp(sport: u16, dport: u16) -> Vec<u8> {
        let mut out = Vec::new();
        let mut src = [0u8; 16];
        src[0] = 0xfd;
        src[15] = 2;
        let mut dst = src;
        dst[15] = 3;
        PacketBuilder::ethernet2(MAC_A, MAC_B)
            .ipv6(src, dst, 64)
            .udp(sport, dport)
            .write(&mut out, b"hello")
            .unwrap();
        out
    }

    /// An ARP request (op 1) or reply (op 2) over Ethernet: `spa` asking about `tpa`.
    fn arp(src_mac: [u8; 6], dst_mac: [u8; 6], op: u16, spa: [u8; 4], tpa: [u8; 4]) -> Vec<u8> {
        let mut out = Ethernet2Header {
            source: src_mac,
            destination: dst_mac,
            ether_type: EtherType::ARP,
        }
        .to_bytes()
        .to_vec();
        out.extend_from_slice(&[0, 1, 0x08, 0x00, 6, 4]);
        out.extend_from_slice(&op.to_be_bytes());
        out.extend_from_slice(&src_mac);
        out.extend_from_slice(&spa);
        out.extend_from_slice(&if op == 1 { [0; 6] } else { dst_mac });
        out.extend_from_slice(&tpa);
        out
    }

    /// A non-first fragment of a UDP datagram whose payload bytes look like ports 53 -> 53.
    fn udp_fragment(src: [u8; 4], dst: [u8; 4]) -> Vec<u8> {
        let payload = [0, 53, 0, 53, 0, 16, 0, 0];
        let mut ip = Ipv4Header::new(payload.len() as u16, 64, IpNumber::UDP, src, dst).unwrap();
        ip.fragment_offset = IpFragOffset::try_new(185).unwrap();
        ip.header_checksum = ip.calc_header_checksum();
        let mut out = Ethernet2Header {
            source: MAC_A,
            destination: MAC_B,
            ether_type: EtherType::IPV4,
        }
        .to_bytes()
        .to_vec();
        out.extend_from_slice(&ip.to_bytes());
        out.extend_from_slice(&payload);
        out
    }

    fn with_dst(mut frame: Vec<u8>, mac: [u8; 6]) -> Vec<u8> {
        frame[0..6].copy_from_slice(&mac);
        frame
    }

    fn f(text: &str) -> Filter {
        Filter::parse(text).unwrap_or_else(|e| panic!("{e}"))
    }

    fn m(text: &str, frame: &[u8]) -> bool {
        f(text).matches(frame)
    }

    fn err(text: &str) -> String {
        match Filter::parse(text) {
            Ok(filter) => panic!("'{text}' parsed as {filter:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn empty_filter_matches_everything() {
        for text in ["", "   ", "\t\n"] {
            let filter = f(text);
            assert!(filter.matches_everything());
            assert_eq!(filter.text(), "");
            assert!(filter.matches(&[]) && filter.matches(&tcp(A, B, 1, 2)));
        }
    }

    #[test]
    fn protocols_and_ethertypes() {
        let frames = [
            ("tcp", tcp(A, B, 1000, 80)),
            ("udp", udp(A, B, 1000, 53)),
            ("icmp", icmp(A, B)),
            ("arp", arp(MAC_A, BCAST, 1, A, B)),
            ("ip6", ipv6_udp(1000, 53)),
        ];
        for (name, frame) in &frames {
            for prim in ["tcp", "udp", "icmp", "arp", "ip", "ip6"] {
                let expect =
                    prim == *name || (prim == "ip" && ["tcp", "udp", "icmp"].contains(name));
                assert_eq!(m(prim, frame), expect, "{prim} on {name}");
            }
        }
        // Case-insensitive keywords.
        assert!(m("TCP", &frames[0].1) && m("Ip", &frames[0].1));
    }

    #[test]
    fn hosts_and_nets() {
        let t = tcp(A, B, 1000, 80);
        assert!(m("host 172.17.0.2", &t) && m("host 172.17.0.3", &t));
        assert!(!m("host 172.17.0.4", &t));
        assert!(m("src host 172.17.0.2", &t) && m("src 172.17.0.2", &t));
        assert!(!m("src host 172.17.0.3", &t) && !m("dst 172.17.0.2", &t));
        assert!(m("dst host 172.17.0.3", &t) && m("dst 172.17.0.3", &t));
        assert!(m("net 172.17.0.0/16", &t) && m("net 0.0.0.0/0", &t));
        assert!(m("net 172.17.0.2/32", &t) && !m("net 10.0.0.0/8", &t));
        assert!(m("src net 172.17.0.0/30", &t) && !m("src net 172.17.0.0/31", &t));
        assert!(m("dst net 172.17.0.0/30", &t) && !m("dst net 10.0.0.0/8", &t));
        // ARP: sender and target protocol addresses, as tcpdump.
        let a = arp(MAC_A, BCAST, 1, A, C);
        assert!(m("host 172.17.0.2", &a) && m("host 10.1.2.3", &a));
        assert!(m("src host 172.17.0.2", &a) && !m("src host 10.1.2.3", &a));
        assert!(m("dst 10.1.2.3", &a) && m("dst net 10.0.0.0/8", &a));
        assert!(!m("host 172.17.0.3", &a));
        // IPv6 never matches host/net.
        assert!(!m("net 0.0.0.0/0", &ipv6_udp(1, 2)));
    }

    #[test]
    fn ports() {
        let t = tcp(A, B, 40000, 80);
        let u = udp(A, B, 5353, 53);
        assert!(m("port 80", &t) && m("port 40000", &t) && !m("port 53", &t));
        assert!(m("dst port 80", &t) && !m("src port 80", &t) && m("src port 40000", &t));
        assert!(m("port 53", &u) && m("dst port 53", &u) && m("src port 5353", &u));
        assert!(m("portrange 79-81", &t) && !m("portrange 81-1000", &t));
        assert!(m("portrange 81-40000", &t) && m("portrange 80-80", &t));
        assert!(m("dst portrange 1-100", &t) && !m("src portrange 1-100", &t));
        assert!(m("tcp port 80", &t) && !m("udp port 80", &t));
        assert!(m("udp dst port 53", &u) && !m("tcp dst port 53", &u) && !m("udp src port 53", &u));
        assert!(m("tcp src portrange 30000-50000", &t));
        // ICMP and ARP have no ports.
        assert!(!m("port 0", &icmp(A, B)) && !m("portrange 0-65535", &arp(MAC_A, BCAST, 1, A, B)));
        // Nor IPv6 (documented), nor non-first fragments (as tcpdump).
        assert!(!m("port 53", &ipv6_udp(53, 53)));
        let frag = udp_fragment(A, B);
        assert!(m("udp", &frag) && m("host 172.17.0.2", &frag));
        assert!(!m("port 53", &frag) && !m("portrange 0-65535", &frag));
    }

    #[test]
    fn ethernet_primitives() {
        let t = tcp(A, B, 1, 2);
        assert!(m("ether host 02:42:ac:11:00:02", &t) && m("ether host 02:42:AC:11:00:03", &t));
        assert!(m("ether src 02:42:ac:11:00:02", &t) && !m("ether dst 02:42:ac:11:00:02", &t));
        assert!(m("ether dst 02-42-ac-11-00-03", &t) && !m("ether host 02:42:ac:11:00:04", &t));
        assert!(!m("broadcast", &t) && !m("multicast", &t));
        let b = arp(MAC_A, BCAST, 1, A, B);
        assert!(m("broadcast", &b) && m("multicast", &b) && m("ether broadcast", &b));
        let mc = with_dst(udp(A, [224, 0, 0, 251], 5353, 5353), MCAST);
        assert!(!m("broadcast", &mc) && m("multicast", &mc) && m("ether multicast", &mc));
        // Ethernet primitives see IPv6 too.
        assert!(m("ip6 and ether src 2:42:ac:11:0:2", &ipv6_udp(1, 2)));
    }

    #[test]
    fn vlan_tag_is_looked_behind() {
        let tagged = vlan_tcp(10, A, B, 40000, 80);
        assert!(m("vlan", &tagged) && m("vlan 10", &tagged) && !m("vlan 11", &tagged));
        assert!(!m("vlan", &tcp(A, B, 40000, 80)));
        // Unlike tcpdump, the other primitives look behind the tag with or without `vlan`.
        for text in [
            "tcp",
            "ip",
            "port 80",
            "host 172.17.0.2",
            "vlan 10 and tcp dst port 80",
        ] {
            assert!(m(text, &tagged), "{text}");
        }
        assert!(!m("udp", &tagged) && !m("vlan and arp", &tagged));
        assert!(m("ether src 02:42:ac:11:00:02", &tagged));
        // A tag with nothing behind it: only the Ethernet primitives apply.
        let cut = &tagged[..16];
        assert!(!m("vlan", cut) && !m("ip", cut) && m("ether src 02:42:ac:11:00:02", cut));
    }

    /// The evaluator reads the same fields whether it decodes the frame itself or gets the view
    /// `ingress` made.
    #[test]
    fn a_view_matches_as_its_frame_does() {
        use crate::port::RxMeta;
        use crate::stage::ingress;
        use crate::{DomainId, PortId};
        let t = tcp(A, B, 40000, 80);
        let frames = [
            t.clone(),
            t[..36].to_vec(),
            t[..30].to_vec(),
            udp(A, B, 5353, 53),
            icmp(A, B),
            arp(MAC_A, BCAST, 1, A, C),
            ipv6_udp(1, 2),
            vlan_tcp(10, A, B, 40000, 80),
            udp_fragment(A, B),
            with_dst(udp(A, [224, 0, 0, 251], 5353, 5353), MCAST),
        ];
        let texts = [
            "tcp and port 80",
            "src port 40000",
            "udp dst port 53",
            "host 10.1.2.3 or net 172.17.0.0/16",
            "icmp or arp or ip6",
            "vlan 10 and tcp",
            "vlan",
            "ether src 02:42:ac:11:00:02 and not broadcast",
            "multicast",
        ];
        for (i, frame) in frames.iter().enumerate() {
            let meta = RxMeta {
                len: frame.len(),
                ..RxMeta::default()
            };
            // The two TCP frames cut short of their IPv4 total length never get a view: ingress
            // drops them (bad-ip-length), so no filter sees them as views.
            let Ok(view) = ingress::run(frame, &meta, PortId(0), DomainId(0), true) else {
                assert!(i == 1 || i == 2, "{frame:02x?}");
                continue;
            };
            for text in texts {
                let filter = f(text);
                assert_eq!(
                    filter.matches_view(&view),
                    filter.matches(frame),
                    "{text} on {frame:02x?}"
                );
            }
        }
    }

    #[test]
    fn truncated_frames_do_not_match_l3_l4() {
        let t = tcp(A, B, 40000, 80);
        // IPv4 header cut: no L3 primitive; cut inside the TCP ports: no port primitive.
        assert!(m("ip", &t[..20]) && !m("tcp", &t[..20]) && !m("host 172.17.0.2", &t[..33]));
        assert!(m("tcp and host 172.17.0.2", &t[..34]) && !m("port 40000", &t[..35]));
        assert!(
            m("port 40000", &t[..36]) && !m("port 80", &t[..36]) && !m("dst port 80", &t[..37])
        );
        assert!(m("port 80", &t[..38]));
        assert!(!m("host 172.17.0.2", &arp(MAC_A, BCAST, 1, A, B)[..41]));
        // Shorter than an Ethernet header: nothing matches, `not` of anything does.
        for len in 0..14 {
            assert!(!m(
                "ether host 02:42:ac:11:00:03 or broadcast or ip",
                &t[..len]
            ));
            assert!(m("not tcp", &t[..len]));
        }
        // A bad IPv4 version or IHL is not IPv4 for L3 primitives.
        let mut bad = t.clone();
        bad[14] = 0x65;
        assert!(m("ip", &bad) && !m("tcp", &bad));
        bad[14] = 0x44;
        assert!(!m("host 172.17.0.2", &bad));
        // IHL with options: ports are found behind them.
        let mut ip = Ipv4Header::new(8 + 5, 64, IpNumber::UDP, A, B).unwrap();
        ip.options = [1, 1, 1, 1][..].try_into().unwrap();
        let mut opt = Ethernet2Header {
            source: MAC_A,
            destination: MAC_B,
            ether_type: EtherType::IPV4,
        }
        .to_bytes()
        .to_vec();
        opt.extend_from_slice(&ip.to_bytes());
        opt.extend_from_slice(&[0x1f, 0x90, 0, 53, 0, 13, 0, 0, 1, 2, 3, 4, 5]);
        assert!(m("udp src port 8080 and dst port 53", &opt));
    }

    #[test]
    fn operators_and_precedence() {
        let t = tcp(A, B, 40000, 80);
        let u = udp(A, B, 5353, 53);
        let a = arp(MAC_A, BCAST, 1, A, B);
        // not > and > or: `not tcp and udp` is `(not tcp) and udp`.
        assert!(m("not tcp and udp", &u) && !m("not tcp and udp", &t));
        assert!(m("not (tcp and udp)", &t));
        // `arp or tcp and port 53` is `arp or (tcp and port 53)`.
        assert!(m("arp or tcp and port 53", &a) && !m("arp or tcp and port 53", &t));
        assert!(m("(arp or tcp) and port 80", &t) && !m("(arp or tcp) and port 80", &a));
        assert!(m("tcp && port 80", &t) && m("udp || tcp", &t) && m("!udp", &t));
        assert!(m("! ! tcp", &t) && m("not not tcp", &t) && !m("not not not tcp", &t));
        assert!(m("!(udp||arp)&&(port 80)", &t));
        assert!(m(
            "tcp and port 80 and host 172.17.0.2 and dst 172.17.0.3",
            &t
        ));
        assert!(!m("tcp and port 80 and host 172.17.0.9", &t));
        assert!(m("udp or icmp or arp or port 80", &t));
        assert!(m("((((tcp))))", &t));
    }

    #[test]
    fn normalised_text_round_trips() {
        for (input, normal) in [
            ("TCP  &&  Port 80", "tcp and port 80"),
            ("!(udp||arp)&&(port 80)", "not (udp or arp) and port 80"),
            ("(tcp or udp) or icmp", "tcp or udp or icmp"),
            ("(tcp and udp) or icmp", "tcp and udp or icmp"),
            ("tcp and (udp or icmp)", "tcp and (udp or icmp)"),
            (
                "src 10.1.2.3 or dst host 10.1.2.3",
                "src host 10.1.2.3 or dst host 10.1.2.3",
            ),
            ("net 10.0.0.0/8", "net 10.0.0.0/8"),
            ("Ether Src 02:42:AC:11:0:2", "ether src 02:42:ac:11:00:02"),
            ("ether broadcast or multicast", "broadcast or multicast"),
            ("portrange 2000-1000", "portrange 1000-2000"),
            ("udp dst port 53 and vlan", "udp dst port 53 and vlan"),
            ("vlan 010", "vlan 10"),
            ("not not (ip6)", "not not ip6"),
        ] {
            let filter = f(input);
            assert_eq!(filter.text(), normal, "{input}");
            assert_eq!(filter.to_string(), normal);
            assert_eq!(f(normal), filter, "{input}");
            assert_eq!(input.parse::<Filter>().unwrap(), filter);
        }
    }

    #[test]
    fn error_messages() {
        for (text, message) in [
            (
                "port eighty",
                "filter 'port eighty': expected a port number after 'port', got 'eighty' (at 6)",
            ),
            ("host 1.2.3", "filter 'host 1.2.3': invalid IPv4 address '1.2.3' (at 6)"),
            ("tcp and", "filter 'tcp and': expression ends after 'and'"),
            ("(tcp", "filter '(tcp': missing ')'"),
            (
                "tpc",
                "filter 'tpc': unknown word 'tpc' (did you mean 'tcp'?) (at 1)",
            ),
            (
                "tcp or hots 1.2.3.4",
                "filter 'tcp or hots 1.2.3.4': unknown word 'hots' (did you mean 'host'?) (at 8)",
            ),
            ("multcast", "filter 'multcast': unknown word 'multcast' (did you mean 'multicast'?) (at 1)"),
            ("frobnicate", "filter 'frobnicate': unknown word 'frobnicate' (at 1)"),
            ("10.0.0.1", "filter '10.0.0.1': unknown word '10.0.0.1' (did you mean 'host 10.0.0.1'?) (at 1)"),
            ("80", "filter '80': unknown word '80' (did you mean 'port 80'?) (at 1)"),
            ("tcp nad udp", "filter 'tcp nad udp': unknown word 'nad' (did you mean 'and'?) (at 5)"),
            ("tcp udp", "filter 'tcp udp': expected 'and' or 'or' before 'udp' (at 5)"),
            ("tcp)", "filter 'tcp)': unmatched ')' (at 4)"),
            ("(tcp udp)", "filter '(tcp udp)': expected ')', 'and' or 'or' before 'udp' (at 6)"),
            ("()", "filter '()': expected a primitive after '(', got ')' (at 2)"),
            ("and tcp", "filter 'and tcp': expected a primitive, got 'and' (at 1)"),
            ("tcp or or udp", "filter 'tcp or or udp': expected a primitive after 'or', got 'or' (at 8)"),
            ("not", "filter 'not': expression ends after 'not'"),
            ("host", "filter 'host': expression ends after 'host'"),
            ("tcp & udp", "filter 'tcp & udp': unexpected '&' (use 'and' or '&&') (at 5)"),
            ("tcp | udp", "filter 'tcp | udp': unexpected '|' (use 'or' or '||') (at 5)"),
            ("host foo", "filter 'host foo': expected an IPv4 address after 'host', got 'foo' (at 6)"),
            ("host (", "filter 'host (': expected an IPv4 address after 'host', got '(' (at 6)"),
            ("host ::1", "filter 'host ::1': 'host' matches IPv4 only, got IPv6 address '::1' (at 6)"),
            ("src 1.2.3.256", "filter 'src 1.2.3.256': invalid IPv4 address '1.2.3.256' (at 5)"),
            (
                "src foo",
                "filter 'src foo': expected 'host', 'net', 'port', 'portrange' or an IPv4 address after 'src', got 'foo' (at 5)",
            ),
            ("net 10.0.0.0", "filter 'net 10.0.0.0': expected a network like 10.0.0.0/8 after 'net', got '10.0.0.0' (at 5)"),
            ("net 10.0.0/8", "filter 'net 10.0.0/8': invalid IPv4 address '10.0.0' in '10.0.0/8' (at 5)"),
            ("net 10.0.0.0/33", "filter 'net 10.0.0.0/33': invalid prefix length '33' in '10.0.0.0/33', expected 0-32 (at 5)"),
            (
                "dst net 10.0.0.1/8",
                "filter 'dst net 10.0.0.1/8': '10.0.0.1/8' has bits set outside the /8 prefix (did you mean '10.0.0.0/8'?) (at 9)",
            ),
            ("port 65536", "filter 'port 65536': port number '65536' is out of range 0-65535 (at 6)"),
            ("port 99999999999999999999", "filter 'port 99999999999999999999': port number '99999999999999999999' is out of range 0-65535 (at 6)"),
            ("tcp dst port x", "filter 'tcp dst port x': expected a port number after 'port', got 'x' (at 14)"),
            ("portrange 10", "filter 'portrange 10': expected a port range like 1000-2000 after 'portrange', got '10' (at 11)"),
            ("portrange 1-70000", "filter 'portrange 1-70000': port number '70000' is out of range 0-65535 (at 11)"),
            ("vlan 4096", "filter 'vlan 4096': VLAN id '4096' is out of range 0-4095 (at 6)"),
            (
                "ether foo",
                "filter 'ether foo': expected 'host', 'src', 'dst', 'broadcast' or 'multicast' after 'ether', got 'foo' (at 7)",
            ),
            (
                "ether host 02:42:ac:11:00",
                "filter 'ether host 02:42:ac:11:00': invalid MAC address '02:42:ac:11:00', expected six hex bytes like 02:42:ac:11:00:02 (at 12)",
            ),
            ("ether dst )", "filter 'ether dst )': expected a MAC address after 'ether dst', got ')' (at 11)"),
            // Positions count characters, and the message stays on one line.
            ("ü\t& udp", "filter 'ü & udp': unexpected '&' (use 'and' or '&&') (at 3)"),
            ("tcp and\nport x", "filter 'tcp and port x': expected a port number after 'port', got 'x' (at 14)"),
        ] {
            assert_eq!(err(text), message, "{text:?}");
        }
        assert_eq!(err("ü"), "filter 'ü': unknown word 'ü' (at 1)");
    }

    #[test]
    fn nesting_is_bounded() {
        let deep = format!("{}tcp{}", "(".repeat(64), ")".repeat(64));
        assert!(f(&deep).matches(&tcp(A, B, 1, 2)));
        let too_deep = format!("{}tcp{}", "(".repeat(65), ")".repeat(65));
        assert!(err(&too_deep).contains("more than 64 nested 'not's and parentheses (at 65)"));
        assert!(err(&"not ".repeat(100_000)).contains("more than 64 nested"));
        assert!(err(&"(".repeat(100_000)).contains("more than 64 nested"));
        // Long flat chains are fine (no recursion per operand).
        let chain = vec!["tcp"; 10_000].join(" and ");
        assert!(f(&chain).matches(&tcp(A, B, 1, 2)));
    }

    /// How a cross-check frame may be compared with tcpdump.
    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Cmp {
        Always,
        /// IPv6: tcpdump's `tcp`/`udp`/`port` also match IPv6; ours are IPv4 only.
        NotL4,
        /// A header cut short: BPF rejects the whole packet on an out-of-bounds load, so under
        /// `not` tcpdump and we differ (for us the primitive is false and `not` makes it true).
        NotNegated,
    }

    /// Frames for the tcpdump cross-check. VLAN frames are left out: tcpdump looks behind a tag
    /// only after the `vlan` keyword.
    fn corpus() -> Vec<(Vec<u8>, Cmp)> {
        vec![
            (tcp(A, B, 40000, 80), Cmp::Always),
            (tcp(B, A, 80, 40000), Cmp::Always),
            (tcp(C, A, 1234, 443), Cmp::Always),
            (udp(A, B, 5353, 53), Cmp::Always),
            (udp(C, [8, 8, 8, 8], 53000, 53), Cmp::Always),
            (
                with_dst(udp(A, [224, 0, 0, 251], 5353, 5353), MCAST),
                Cmp::Always,
            ),
            (icmp(A, C), Cmp::Always),
            (arp(MAC_A, BCAST, 1, A, B), Cmp::Always),
            (arp(MAC_B, MAC_A, 2, B, A), Cmp::Always),
            (udp_fragment(A, B), Cmp::Always),
            (ipv6_udp(5353, 53), Cmp::NotL4),
            (tcp(A, B, 53, 2000)[..36].to_vec(), Cmp::NotNegated),
            (with_dst(tcp(C, B, 22, 60000), BCAST), Cmp::Always),
        ]
    }

    #[test]
    fn agrees_with_tcpdump() {
        let available = Command::new("tcpdump").arg("--version").output();
        assert!(
            available.is_ok_and(|o| o.status.success()),
            "tcpdump is required for this test (apt-get install tcpdump)"
        );
        let frames = corpus();
        let mut file = super::super::pcap::file_header(65535).to_vec();
        for (i, (frame, _)) in frames.iter().enumerate() {
            // The timestamp's seconds carry the frame's index.
            super::super::pcap::write_record(
                &mut file,
                (i as u64 + 1) * 1_000_000_000,
                frame,
                frame.len() as u32,
                65535,
            );
        }
        let path =
            std::env::temp_dir().join(format!("switchyard-filter-{}.pcap", std::process::id()));
        std::fs::write(&path, &file).unwrap();
        for expr in [
            "tcp",
            "udp",
            "icmp",
            "arp",
            "ip",
            "ip6",
            "host 172.17.0.2",
            "src host 172.17.0.3",
            "dst 172.17.0.2",
            "net 10.0.0.0/8",
            "src net 172.16.0.0/12",
            "dst net 224.0.0.0/4",
            "port 53",
            "port 80",
            "src port 80",
            "dst port 53",
            "portrange 50-100",
            "dst portrange 400-60000",
            "tcp port 80",
            "udp dst port 53",
            "ether host 02:42:ac:11:00:02",
            "ether src 02:42:ac:11:00:03",
            "ether dst ff:ff:ff:ff:ff:ff",
            "broadcast",
            "multicast",
            "not tcp",
            "tcp or (udp and port 53)",
            "(tcp or udp) and not port 53",
            "!arp && (host 10.1.2.3 || dst port 80)",
            "not (ip or arp)",
            // tcpdump gives `and` and `or` equal precedence, left to right; we bind `and` tighter.
            "(tcp or udp) and port 53 | tcp or udp and port 53",
            "tcp or udp and port 53 | tcp or (udp and port 53)",
        ] {
            // "OURS | TCPDUMP" where the two spell the same filter differently.
            let (expr, theirs_expr) = expr.split_once(" | ").unwrap_or((expr, expr));
            let filter = f(expr);
            let l4 = ["tcp", "udp", "port"].iter().any(|w| expr.contains(w));
            let negated = expr.contains("not") || expr.contains('!');
            let comparable: BTreeSet<usize> = (1..=frames.len())
                .filter(|&i| match frames[i - 1].1 {
                    Cmp::Always => true,
                    Cmp::NotL4 => !l4,
                    Cmp::NotNegated => !negated,
                })
                .collect();
            let ours: BTreeSet<usize> = comparable
                .iter()
                .copied()
                .filter(|&i| filter.matches(&frames[i - 1].0))
                .collect();
            let out = Command::new("tcpdump")
                .args(["-r", path.to_str().unwrap(), "-nn", "-tt", theirs_expr])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "tcpdump '{expr}': {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let theirs: BTreeSet<usize> = String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter_map(|l| l.split('.').next()?.parse().ok())
                .filter(|i| comparable.contains(i))
                .collect();
            assert_eq!(ours, theirs, "'{expr}' (frame numbers from 1)");
        }
        std::fs::remove_file(path).unwrap();
    }

    /// Words the parser knows, plus near misses, for generated filter texts.
    const VOCABULARY: &[&str] = &[
        "host",
        "src",
        "dst",
        "net",
        "port",
        "portrange",
        "tcp",
        "udp",
        "icmp",
        "arp",
        "ip",
        "ip6",
        "ether",
        "broadcast",
        "multicast",
        "vlan",
        "and",
        "or",
        "not",
        "&&",
        "||",
        "!",
        "(",
        ")",
        "10.0.0.1",
        "172.17.0.2",
        "10.0.0.0/8",
        "10.0.0.1/8",
        "0.0.0.0/0",
        "1.2.3",
        "::1",
        "80",
        "53",
        "65536",
        "1000-2000",
        "7-",
        "02:42:ac:11:00:02",
        "ff:ff:ff:ff:ff:ff",
        "zz",
        "10",
        "4095",
        "&",
        "|",
        "tpc",
        "",
    ];

    fn sample_frames() -> Vec<Vec<u8>> {
        let mut v: Vec<Vec<u8>> = corpus().into_iter().map(|(f, _)| f).collect();
        v.push(vlan_tcp(10, A, B, 40000, 80));
        v
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn parse_never_panics(text in any::<String>()) {
            let _ = Filter::parse(&text);
        }

        #[test]
        fn generated_filters_round_trip(words in prop::collection::vec(prop::sample::select(VOCABULARY), 0..14)) {
            let text = words.join(" ");
            if let Ok(filter) = Filter::parse(&text) {
                let again = Filter::parse(filter.text()).unwrap();
                prop_assert_eq!(&again, &filter);
                prop_assert_eq!(again.text(), filter.text());
                for frame in sample_frames() {
                    // De Morgan and double negation hold on every frame.
                    let not = Filter::parse(&format!("not ({})", filter.text()));
                    if let Ok(not) = not {
                        prop_assert_eq!(not.matches(&frame), !filter.matches(&frame));
                    }
                }
            }
        }

        #[test]
        fn matches_never_panics(frame in prop::collection::vec(any::<u8>(), 0..128), pick in 0usize..8) {
            let texts = [
                "tcp and port 80 or udp and dst portrange 1-1000",
                "host 10.0.0.1 or src net 10.0.0.0/8 or arp",
                "vlan 10 and ip6 or vlan",
                "ether host 02:42:ac:11:00:02 or broadcast or multicast",
                "not (icmp or tcp src port 22)",
                "udp src port 53 and not ip",
                "",
                "not not ether dst ff:ff:ff:ff:ff:ff",
            ];
            let filter = Filter::parse(texts[pick]).unwrap();
            let _ = filter.matches(&frame);
            // Bias towards plausible headers: IPv4/ARP/VLAN EtherTypes.
            for et in [[0x08, 0x00], [0x08, 0x06], [0x81, 0x00], [0x86, 0xdd]] {
                let mut g = frame.clone();
                if g.len() >= 14 {
                    g[12..14].copy_from_slice(&et);
                    let _ = filter.matches(&g);
                }
            }
        }
    }
}
