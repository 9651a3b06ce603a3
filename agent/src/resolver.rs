//! Host name resolution without glibc's NSS.
//!
//! The agent is linked statically with glibc, whose `getaddrinfo` needs NSS modules loaded at
//! run time for anything but numbers. [`SystemResolver`] replaces it for the HTTP client:
//! IP literals as they are; `localhost`; `/etc/hosts`; otherwise a minimal DNS client over UDP
//! (RFC 1035) asking the `nameserver`s of `/etc/resolv.conf` for A and AAAA records.
//!
//! Limits, on purpose: no search domains (server URLs are fully qualified), no TCP fallback
//! for truncated answers (the addresses a truncated answer carries are used), no cache.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::random::random_u64;

/// Record type A (IPv4 address).
pub const TYPE_A: u16 = 1;
/// Record type CNAME (canonical name).
pub const TYPE_CNAME: u16 = 5;
/// Record type AAAA (IPv6 address).
pub const TYPE_AAAA: u16 = 28;
/// Class IN (Internet).
pub const CLASS_IN: u16 = 1;

/// Longest DNS message read over UDP (no EDNS: servers answer at most 512 bytes, some more).
const MAX_UDP_MESSAGE: usize = 1_500;
/// Once one family answered with addresses, how long to wait for the other.
const SECOND_ANSWER_GRACE: Duration = Duration::from_millis(250);
/// CNAME hops followed inside one answer.
const MAX_CNAME_HOPS: usize = 8;

/// Why a DNS message could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DnsError {
    #[error("{0:?} is not a valid DNS name")]
    BadName(String),
    #[error("malformed DNS message: {0}")]
    Malformed(&'static str),
    #[error("the answer is not for our query")]
    NotOurs,
    #[error("no such host")]
    NoSuchName,
    #[error("the name server answered with error code {0}")]
    ServerFailure(u8),
}

impl From<DnsError> for io::Error {
    fn from(e: DnsError) -> Self {
        let kind = match e {
            DnsError::NoSuchName => io::ErrorKind::NotFound,
            DnsError::BadName(_) => io::ErrorKind::InvalidInput,
            _ => io::ErrorKind::InvalidData,
        };
        io::Error::new(kind, e)
    }
}

/// Resolves host names from `/etc/hosts` and the name servers of `/etc/resolv.conf`.
#[derive(Debug, Clone)]
pub struct SystemResolver {
    hosts_file: PathBuf,
    resolv_conf: PathBuf,
    dns_port: u16,
    timeout: Duration,
}

impl Default for SystemResolver {
    fn default() -> Self {
        Self::new()
    }
}

impl SystemResolver {
    /// The machine's `/etc/hosts` and `/etc/resolv.conf`, port 53, 2 s per name server.
    pub fn new() -> Self {
        Self {
            hosts_file: PathBuf::from("/etc/hosts"),
            resolv_conf: PathBuf::from("/etc/resolv.conf"),
            dns_port: 53,
            timeout: Duration::from_secs(2),
        }
    }

    /// Other files and port (tests).
    pub fn with_files(
        hosts_file: impl Into<PathBuf>,
        resolv_conf: impl Into<PathBuf>,
        dns_port: u16,
        timeout: Duration,
    ) -> Self {
        Self {
            hosts_file: hosts_file.into(),
            resolv_conf: resolv_conf.into(),
            dns_port,
            timeout,
        }
    }

    /// The addresses of `host`, IPv4 first.
    pub fn lookup(&self, host: &str) -> io::Result<Vec<IpAddr>> {
        let name = host.strip_suffix('.').unwrap_or(host);
        if let Ok(ip) = name.parse::<IpAddr>() {
            return Ok(vec![ip]);
        }
        let lower = name.to_ascii_lowercase();
        if lower == "localhost" || lower.ends_with(".localhost") {
            return Ok(vec![
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(Ipv6Addr::LOCALHOST),
            ]);
        }
        if let Ok(text) = std::fs::read_to_string(&self.hosts_file) {
            let found = parse_hosts(&text, &lower);
            if !found.is_empty() {
                return Ok(found);
            }
        }
        let servers = std::fs::read_to_string(&self.resolv_conf)
            .map(|text| parse_resolv_conf(&text))
            .unwrap_or_default();
        let servers = if servers.is_empty() {
            // resolv.conf(5): without a nameserver line, the local machine is asked.
            vec![IpAddr::V4(Ipv4Addr::LOCALHOST)]
        } else {
            servers
        };
        let mut last_error = io::Error::new(io::ErrorKind::NotFound, "no name server answered");
        for server in servers {
            match self.ask(SocketAddr::new(server, self.dns_port), &lower) {
                Ok(addrs) if !addrs.is_empty() => return Ok(addrs),
                Ok(_) => {
                    last_error = io::Error::new(
                        io::ErrorKind::NotFound,
                        format!("{name} has no address records"),
                    );
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return Err(io::Error::new(e.kind(), format!("{name}: {e}")));
                }
                Err(e) => {
                    last_error = io::Error::new(e.kind(), format!("{name} via {server}: {e}"))
                }
            }
        }
        Err(last_error)
    }

    /// Asks one name server for the A and AAAA records of `name`, both queries in flight at
    /// once on one connected UDP socket.
    fn ask(&self, server: SocketAddr, name: &str) -> io::Result<Vec<IpAddr>> {
        let local: IpAddr = if server.is_ipv4() {
            Ipv4Addr::UNSPECIFIED.into()
        } else {
            Ipv6Addr::UNSPECIFIED.into()
        };
        let socket = UdpSocket::bind(SocketAddr::new(local, 0))?;
        // A connected socket only receives datagrams from the server it asked.
        socket.connect(server)?;
        let r = random_u64();
        let id_a = r as u16;
        let id_aaaa = ((r >> 16) as u16) ^ u16::from(r as u16 == (r >> 16) as u16);
        socket.send(&encode_query(id_a, name, TYPE_A)?)?;
        socket.send(&encode_query(id_aaaa, name, TYPE_AAAA)?)?;

        let mut deadline = Instant::now() + self.timeout;
        let mut v4: Option<Vec<IpAddr>> = None;
        let mut v6: Option<Vec<IpAddr>> = None;
        let mut failure: Option<DnsError> = None;
        let mut buf = [0u8; MAX_UDP_MESSAGE];
        while v4.is_none() || v6.is_none() {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            socket.set_read_timeout(Some(deadline - now))?;
            let n = match socket.recv(&mut buf) {
                Ok(n) => n,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            let packet = &buf[..n];
            let (slot, id, qtype) = match message_id(packet) {
                Some(id) if id == id_a && v4.is_none() => (&mut v4, id_a, TYPE_A),
                Some(id) if id == id_aaaa && v6.is_none() => (&mut v6, id_aaaa, TYPE_AAAA),
                // Not an answer we are waiting for: keep listening.
                _ => continue,
            };
            match decode_response(packet, id, name, qtype) {
                Ok(addrs) => {
                    if !addrs.is_empty() {
                        deadline = deadline.min(Instant::now() + SECOND_ANSWER_GRACE);
                    }
                    *slot = Some(addrs);
                }
                Err(DnsError::NoSuchName) => return Err(DnsError::NoSuchName.into()),
                Err(DnsError::NotOurs) => continue,
                Err(e) => {
                    *slot = Some(Vec::new());
                    failure = Some(e);
                }
            }
        }
        if v4.is_none() && v6.is_none() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the name server did not answer",
            ));
        }
        let mut addrs = v4.unwrap_or_default();
        addrs.extend(v6.unwrap_or_default());
        match failure {
            Some(e) if addrs.is_empty() => Err(e.into()),
            _ => Ok(addrs),
        }
    }
}

impl ureq::Resolver for SystemResolver {
    fn resolve(&self, netloc: &str) -> io::Result<Vec<SocketAddr>> {
        let (host, port) = split_netloc(netloc)?;
        let addrs = self.lookup(host)?;
        if addrs.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{host} has no addresses"),
            ));
        }
        Ok(addrs
            .into_iter()
            .map(|ip| SocketAddr::new(ip, port))
            .collect())
    }
}

/// Splits `host:port` or `[v6]:port` (what the HTTP client hands a resolver).
pub fn split_netloc(netloc: &str) -> io::Result<(&str, u16)> {
    let bad = || {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{netloc:?} is not host:port"),
        )
    };
    let (host, port) = netloc.rsplit_once(':').ok_or_else(bad)?;
    let port = port.parse().map_err(|_| bad())?;
    let host = match host.strip_prefix('[') {
        Some(inner) => inner.strip_suffix(']').ok_or_else(bad)?,
        None => host,
    };
    if host.is_empty() {
        return Err(bad());
    }
    Ok((host, port))
}

/// Addresses `/etc/hosts` gives `name` (lower case), IPv4 first, in file order.
pub fn parse_hosts(text: &str, name: &str) -> Vec<IpAddr> {
    let mut found: Vec<IpAddr> = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("");
        let mut fields = line.split_whitespace();
        let Some(Ok(ip)) = fields.next().map(str::parse::<IpAddr>) else {
            continue;
        };
        if fields.any(|alias| alias.eq_ignore_ascii_case(name)) && !found.contains(&ip) {
            found.push(ip);
        }
    }
    found.sort_by_key(IpAddr::is_ipv6);
    found
}

/// The `nameserver` addresses of a `resolv.conf`, at most three (as the C library reads).
/// Scoped IPv6 addresses (`fe80::1%eth0`) are skipped: the standard address type has no
/// interface name.
pub fn parse_resolv_conf(text: &str) -> Vec<IpAddr> {
    text.lines()
        .filter_map(|line| {
            let line = line.split(['#', ';']).next().unwrap_or("");
            let mut fields = line.split_whitespace();
            match (fields.next(), fields.next()) {
                (Some("nameserver"), Some(addr)) => addr.parse().ok(),
                _ => None,
            }
        })
        .take(3)
        .collect()
}

/// A standard query (RD set) for one name and type, class IN.
pub fn encode_query(id: u16, name: &str, qtype: u16) -> Result<Vec<u8>, DnsError> {
    let name = name.strip_suffix('.').unwrap_or(name);
    let bad = || DnsError::BadName(name.to_owned());
    if name.is_empty() || name.len() > 253 {
        return Err(bad());
    }
    let mut out = Vec::with_capacity(18 + name.len());
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&0x0100u16.to_be_bytes()); // standard query, recursion desired
    out.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]); // one question, no other records
    for label in name.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !ok {
            return Err(bad());
        }
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out.extend_from_slice(&qtype.to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    Ok(out)
}

/// The id of a message, if it has a header.
fn message_id(packet: &[u8]) -> Option<u16> {
    Some(u16::from_be_bytes([*packet.first()?, *packet.get(1)?]))
}

/// Decodes the answer to our query `id` for `name` and `qtype`: the addresses of `name`,
/// following CNAME records within the same answer.
pub fn decode_response(
    packet: &[u8],
    id: u16,
    name: &str,
    qtype: u16,
) -> Result<Vec<IpAddr>, DnsError> {
    let mut r = Reader { packet, pos: 0 };
    if r.u16()? != id {
        return Err(DnsError::NotOurs);
    }
    let flags = r.u16()?;
    let is_response = flags & 0x8000 != 0;
    let opcode = (flags >> 11) & 0xF;
    if !is_response || opcode != 0 {
        return Err(DnsError::NotOurs);
    }
    let questions = r.u16()?;
    let answers = r.u16()?;
    let _authority = r.u16()?;
    let _additional = r.u16()?;

    let wanted = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    if questions != 1 {
        return Err(DnsError::NotOurs);
    }
    let qname = r.name()?;
    let (qt, qclass) = (r.u16()?, r.u16()?);
    if qname != wanted || qt != qtype || qclass != CLASS_IN {
        return Err(DnsError::NotOurs);
    }
    match (flags & 0xF) as u8 {
        0 => {}
        3 => return Err(DnsError::NoSuchName),
        code => return Err(DnsError::ServerFailure(code)),
    }

    let mut aliases: Vec<(String, String)> = Vec::new();
    let mut addresses: Vec<(String, IpAddr)> = Vec::new();
    for _ in 0..answers {
        let owner = r.name()?;
        let (rtype, class) = (r.u16()?, r.u16()?);
        let _ttl = r.u32()?;
        let len = usize::from(r.u16()?);
        let start = r.pos;
        let data = r.take(len)?;
        if class != CLASS_IN {
            continue;
        }
        match rtype {
            TYPE_CNAME => {
                let mut inner = Reader { packet, pos: start };
                aliases.push((owner, inner.name()?));
            }
            TYPE_A if rtype == qtype => {
                let octets: [u8; 4] = data
                    .try_into()
                    .map_err(|_| DnsError::Malformed("A record is not 4 bytes"))?;
                addresses.push((owner, IpAddr::from(octets)));
            }
            TYPE_AAAA if rtype == qtype => {
                let octets: [u8; 16] = data
                    .try_into()
                    .map_err(|_| DnsError::Malformed("AAAA record is not 16 bytes"))?;
                addresses.push((owner, IpAddr::from(octets)));
            }
            _ => {}
        }
    }

    // The chain of names: the one asked, then each CNAME target in turn.
    let mut chain = vec![wanted];
    while chain.len() <= MAX_CNAME_HOPS {
        let current = chain.last().map(String::as_str).unwrap_or("");
        match aliases.iter().find(|(owner, _)| owner == current) {
            Some((_, target)) if !chain.contains(target) => chain.push(target.clone()),
            _ => break,
        }
    }
    Ok(addresses
        .into_iter()
        .filter(|(owner, _)| chain.contains(owner))
        .map(|(_, ip)| ip)
        .collect())
}

/// A cursor over a DNS message.
struct Reader<'a> {
    packet: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DnsError> {
        let end = self
            .pos
            .checked_add(n)
            .ok_or(DnsError::Malformed("overflow"))?;
        let bytes = self
            .packet
            .get(self.pos..end)
            .ok_or(DnsError::Malformed("message ends early"))?;
        self.pos = end;
        Ok(bytes)
    }

    fn u16(&mut self) -> Result<u16, DnsError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, DnsError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A possibly compressed name (RFC 1035 §4.1.4), lower case, without the final dot.
    fn name(&mut self) -> Result<String, DnsError> {
        let mut name = String::new();
        let mut pos = self.pos;
        let mut jumps = 0;
        let mut resume: Option<usize> = None;
        loop {
            let len = *self
                .packet
                .get(pos)
                .ok_or(DnsError::Malformed("name runs past the message"))?;
            match len & 0xC0 {
                0xC0 => {
                    let low = *self
                        .packet
                        .get(pos + 1)
                        .ok_or(DnsError::Malformed("pointer runs past the message"))?;
                    jumps += 1;
                    if jumps > 16 {
                        return Err(DnsError::Malformed("too many compression pointers"));
                    }
                    resume.get_or_insert(pos + 2);
                    pos = (usize::from(len & 0x3F) << 8) | usize::from(low);
                }
                0 if len == 0 => {
                    self.pos = resume.unwrap_or(pos + 1);
                    return Ok(name);
                }
                0 => {
                    let len = usize::from(len);
                    let label = self
                        .packet
                        .get(pos + 1..pos + 1 + len)
                        .ok_or(DnsError::Malformed("label runs past the message"))?;
                    if !name.is_empty() {
                        name.push('.');
                    }
                    name.extend(label.iter().map(|b| char::from(b.to_ascii_lowercase())));
                    if name.len() > 255 {
                        return Err(DnsError::Malformed("name longer than 255 bytes"));
                    }
                    pos += 1 + len;
                }
                _ => return Err(DnsError::Malformed("reserved label type")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Header of an answer to `id`: QR, RD, RA set, `rcode`, one question, `answers` records.
    fn header(id: u16, rcode: u8, answers: u16) -> Vec<u8> {
        let mut p = id.to_be_bytes().to_vec();
        p.extend_from_slice(&(0x8180u16 | u16::from(rcode)).to_be_bytes());
        p.extend_from_slice(&[0, 1]);
        p.extend_from_slice(&answers.to_be_bytes());
        p.extend_from_slice(&[0, 0, 0, 0]);
        p
    }

    fn labels(name: &str) -> Vec<u8> {
        let mut out = Vec::new();
        for l in name.split('.') {
            out.push(l.len() as u8);
            out.extend_from_slice(l.as_bytes());
        }
        out.push(0);
        out
    }

    fn record(owner: &[u8], rtype: u16, rdata: &[u8]) -> Vec<u8> {
        let mut out = owner.to_vec();
        out.extend_from_slice(&rtype.to_be_bytes());
        out.extend_from_slice(&CLASS_IN.to_be_bytes());
        out.extend_from_slice(&300u32.to_be_bytes());
        out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        out.extend_from_slice(rdata);
        out
    }

    #[test]
    fn a_query_is_encoded_byte_for_byte() {
        let q = encode_query(0xBEEF, "api.example.com.", TYPE_AAAA).expect("valid name");
        let expected: Vec<u8> = [
            &[0xBE, 0xEF, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0][..],
            b"\x03api\x07example\x03com\x00",
            &[0, 28, 0, 1],
        ]
        .concat();
        assert_eq!(q, expected);
        for bad in ["", "a..b", "bad name", &"x".repeat(64), &"a.".repeat(130)] {
            assert!(encode_query(1, bad, TYPE_A).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn an_answer_with_compressed_names_and_a_cname_chain_decodes() {
        // Question at offset 12: xyz.lambda-url.eu-west-3.on.aws, A, IN.
        let mut p = header(0x1234, 0, 4);
        p.extend(labels("xyz.lambda-url.eu-west-3.on.aws"));
        p.extend_from_slice(&[0, 1, 0, 1]);
        // xyz... CNAME edge.example.net (written out), then edge CNAME lb.example.net (with
        // a pointer to "example.net" inside the first target), then lb A 192.0.2.7, and an
        // unrelated A record that must be ignored.
        let first_target_at = p.len() + 2 + 10;
        p.extend(record(&[0xC0, 12], TYPE_CNAME, &labels("edge.example.net")));
        let example_net = first_target_at + 5; // after "\x04edge"
        let mut lb = b"\x02lb".to_vec();
        lb.extend_from_slice(&[0xC0, example_net as u8]);
        p.extend(record(&[0xC0, first_target_at as u8], TYPE_CNAME, &lb));
        let lb_at = p.len() - lb.len();
        p.extend(record(&[0xC0, lb_at as u8], TYPE_A, &[192, 0, 2, 7]));
        p.extend(record(&labels("other.example"), TYPE_A, &[198, 51, 100, 1]));

        let got = decode_response(&p, 0x1234, "XYZ.lambda-url.eu-west-3.on.aws", TYPE_A)
            .expect("decodes");
        assert_eq!(got, vec![IpAddr::from([192, 0, 2, 7])]);
    }

    #[test]
    fn aaaa_answers_decode() {
        let mut p = header(7, 0, 2);
        p.extend(labels("host.example"));
        p.extend_from_slice(&[0, 28, 0, 1]);
        let v6: Ipv6Addr = "2001:db8::1".parse().expect("v6");
        p.extend(record(&[0xC0, 12], TYPE_AAAA, &v6.octets()));
        p.extend(record(
            &[0xC0, 12],
            TYPE_AAAA,
            &Ipv6Addr::LOCALHOST.octets(),
        ));
        assert_eq!(
            decode_response(&p, 7, "host.example", TYPE_AAAA),
            Ok(vec![IpAddr::V6(v6), IpAddr::V6(Ipv6Addr::LOCALHOST)])
        );
    }

    #[test]
    fn answers_that_are_not_ours_or_are_errors_are_refused() {
        let mut p = header(9, 0, 0);
        p.extend(labels("host.example"));
        p.extend_from_slice(&[0, 1, 0, 1]);
        assert_eq!(
            decode_response(&p, 10, "host.example", TYPE_A),
            Err(DnsError::NotOurs)
        );
        assert_eq!(
            decode_response(&p, 9, "other.example", TYPE_A),
            Err(DnsError::NotOurs)
        );
        assert_eq!(
            decode_response(&p, 9, "host.example", TYPE_AAAA),
            Err(DnsError::NotOurs)
        );
        assert_eq!(decode_response(&p, 9, "host.example", TYPE_A), Ok(vec![]));

        let mut query = p.clone();
        query[2] &= 0x7F; // QR cleared: a query, not an answer
        assert_eq!(
            decode_response(&query, 9, "host.example", TYPE_A),
            Err(DnsError::NotOurs)
        );

        let mut nx = p.clone();
        nx[3] |= 3;
        assert_eq!(
            decode_response(&nx, 9, "host.example", TYPE_A),
            Err(DnsError::NoSuchName)
        );
        let mut servfail = p.clone();
        servfail[3] |= 2;
        assert_eq!(
            decode_response(&servfail, 9, "host.example", TYPE_A),
            Err(DnsError::ServerFailure(2))
        );
    }

    #[test]
    fn malformed_messages_are_errors_not_panics() {
        let mut p = header(1, 0, 1);
        p.extend(labels("host.example"));
        p.extend_from_slice(&[0, 1, 0, 1]);
        let full = {
            let mut f = p.clone();
            f.extend(record(&[0xC0, 12], TYPE_A, &[10, 0, 0, 1]));
            f
        };
        for cut in 0..full.len() {
            assert!(
                decode_response(&full[..cut], 1, "host.example", TYPE_A).is_err(),
                "{cut}"
            );
        }
        // A pointer to itself loops forever unless bounded.
        let mut looped = p.clone();
        let at = looped.len() as u8;
        looped.extend(record(&[0xC0, at], TYPE_A, &[10, 0, 0, 1]));
        assert!(matches!(
            decode_response(&looped, 1, "host.example", TYPE_A),
            Err(DnsError::Malformed(_))
        ));
        // An A record of the wrong length.
        let mut short = p.clone();
        short.extend(record(&[0xC0, 12], TYPE_A, &[10, 0, 1]));
        assert!(decode_response(&short, 1, "host.example", TYPE_A).is_err());
    }

    #[test]
    fn hosts_and_resolv_conf_are_parsed() {
        let hosts = "127.0.0.1\tlocalhost\n\
                     # 10.9.9.9 vigie.example (commented out)\n\
                     ::1 localhost ip6-localhost\n\
                     2001:db8::5 vigie.example\n\
                     10.0.0.5   backend  Vigie.Example   # the server\n\
                     not-an-ip vigie.example\n";
        assert_eq!(
            parse_hosts(hosts, "vigie.example"),
            vec![
                IpAddr::from([10, 0, 0, 5]),
                "2001:db8::5".parse::<IpAddr>().expect("v6")
            ]
        );
        assert!(parse_hosts(hosts, "vigie").is_empty());

        let conf = "# generated\nsearch corp.example\nnameserver 10.0.0.2\n\
                    nameserver fe80::1%eth0\nnameserver 2001:db8::53 ; v6\n\
                    options ndots:2\nnameserver 1.1.1.1\nnameserver 9.9.9.9\n";
        assert_eq!(
            parse_resolv_conf(conf),
            vec![
                IpAddr::from([10, 0, 0, 2]),
                "2001:db8::53".parse::<IpAddr>().expect("v6"),
                IpAddr::from([1, 1, 1, 1]),
            ]
        );
    }

    #[test]
    fn netlocs_split() {
        assert_eq!(
            split_netloc("example.com:443").expect("ok"),
            ("example.com", 443)
        );
        assert_eq!(split_netloc("[::1]:9000").expect("ok"), ("::1", 9000));
        assert!(split_netloc("example.com").is_err());
        assert!(split_netloc(":80").is_err());
        assert!(split_netloc("[::1:80").is_err());
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "vigie-resolver-{name}-{}-{}",
            std::process::id(),
            random_u64()
        ));
        std::fs::create_dir_all(&dir).expect("mkdir");
        dir
    }

    #[test]
    fn literals_localhost_and_hosts_file_need_no_dns() {
        let dir = scratch("hosts");
        std::fs::write(dir.join("hosts"), "10.1.2.3 vigie.internal\n").expect("write");
        // No name server listens on port 9 of this resolv.conf: DNS must not be needed.
        std::fs::write(dir.join("resolv.conf"), "nameserver 127.0.0.1\n").expect("write");
        let r = SystemResolver::with_files(
            dir.join("hosts"),
            dir.join("resolv.conf"),
            9,
            Duration::from_millis(200),
        );
        use ureq::Resolver as _;
        assert_eq!(
            r.resolve("192.0.2.1:443").expect("v4"),
            vec!["192.0.2.1:443".parse::<SocketAddr>().expect("addr")]
        );
        assert_eq!(
            r.resolve("[2001:db8::1]:80").expect("v6"),
            vec!["[2001:db8::1]:80".parse::<SocketAddr>().expect("addr")]
        );
        assert_eq!(
            r.lookup("LocalHost").expect("localhost")[0],
            IpAddr::from([127, 0, 0, 1])
        );
        assert_eq!(
            r.lookup("vigie.internal.").expect("hosts"),
            vec![IpAddr::from([10, 1, 2, 3])]
        );
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_name_is_resolved_over_udp_from_resolv_conf() {
        let server = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let port = server.local_addr().expect("addr").port();
        let answering = std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            for _ in 0..2 {
                let (n, from) = server.recv_from(&mut buf).expect("query");
                let q = &buf[..n];
                let qtype = u16::from_be_bytes([q[n - 4], q[n - 3]]);
                // Echo the query, as an answer with one record pointing at the question name.
                let mut a = q.to_vec();
                a[2] |= 0x80;
                a[7] = 1;
                let rdata: Vec<u8> = if qtype == TYPE_A {
                    vec![203, 0, 113, 9]
                } else {
                    "2001:db8::9"
                        .parse::<Ipv6Addr>()
                        .expect("v6")
                        .octets()
                        .to_vec()
                };
                a.extend(record(&[0xC0, 12], qtype, &rdata));
                server.send_to(&a, from).expect("answer");
            }
        });
        let dir = scratch("udp");
        std::fs::write(dir.join("hosts"), "").expect("write");
        std::fs::write(dir.join("resolv.conf"), "nameserver 127.0.0.1\n").expect("write");
        let r = SystemResolver::with_files(
            dir.join("hosts"),
            dir.join("resolv.conf"),
            port,
            Duration::from_secs(2),
        );
        let got = r.lookup("api.vigie.example").expect("resolves");
        assert_eq!(
            got,
            vec![
                IpAddr::from([203, 0, 113, 9]),
                "2001:db8::9".parse::<IpAddr>().expect("v6")
            ]
        );
        answering.join().expect("server thread");
        std::fs::remove_dir_all(&dir).ok();
    }
}
