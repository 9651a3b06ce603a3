//! `certificates`: when the certificates the policy names expire, and whether the chain an
//! endpoint presents verifies.
//!
//! An endpoint is probed with a real TLS handshake (SNI set, connect and I/O time limits).
//! One handshake tells both things: the verifier checks the chain against the web PKI roots
//! the agent already carries (for its own HTTPS), records the verdict and the leaf, and then
//! lets the handshake finish, so an untrusted or expired certificate still shows its end of
//! validity. Nothing is sent over the connection. A file is read as PEM or DER.
//!
//! The leaf is read with a small DER reader ([`parse_certificate`]): only the validity,
//! subject and issuer are needed, which keeps the static agent small.

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::{DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use vigie_domain::protocol::CertificateTarget;
use vigie_domain::telemetry::{CertificateFinding, CollectorState, Finding};

use super::{Observations, RunStatus, WatchContext, Watcher, days_from_civil, shorten};
use crate::resolver::SystemResolver;

const TIMEOUT: Duration = Duration::from_secs(10);

/// The `certificates` watcher.
#[derive(Debug, Default)]
pub struct Certificates {
    /// Built on first use: the root store is parsed once.
    verifier: Option<Arc<WebPkiServerVerifier>>,
    resolver: SystemResolver,
}

impl Watcher for Certificates {
    fn name(&self) -> &'static str {
        "certificates"
    }

    fn every(&self) -> Duration {
        Duration::from_secs(3_600)
    }

    fn run(&mut self, ctx: &WatchContext<'_>, out: &mut Observations) -> RunStatus {
        if ctx.plan.certificates.is_empty() {
            return RunStatus::with(CollectorState::NotApplicable, "no certificate to watch");
        }
        let verifier = match &self.verifier {
            Some(v) => v.clone(),
            None => match web_pki_verifier() {
                Ok(v) => self.verifier.insert(v).clone(),
                Err(e) => {
                    return RunStatus::with(CollectorState::Error, format!("no TLS verifier: {e}"));
                }
            },
        };
        for target in &ctx.plan.certificates {
            let finding = match target {
                CertificateTarget::Endpoint { host, port, sni } => {
                    let sni = sni.as_deref().unwrap_or(host);
                    probe_endpoint(&self.resolver, &verifier, host, *port, sni, ctx.now_ms)
                }
                CertificateTarget::File { path } => {
                    read_file(&ctx.machine(path.trim_start_matches('/')), ctx.now_ms)
                }
            };
            out.findings.push(Finding::Certificate(CertificateFinding {
                observed_ms: ctx.now_ms,
                target: target.target(),
                source: match target {
                    CertificateTarget::Endpoint { .. } => "endpoint",
                    CertificateTarget::File { .. } => "file",
                }
                .into(),
                ..finding
            }));
        }
        // An unreachable endpoint or a bad file is the finding's news, not a collector fault.
        RunStatus::ok()
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn web_pki_verifier() -> Result<Arc<WebPkiServerVerifier>, rustls::client::VerifierBuilderError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider()).build()
}

/// A finding with only the verdict filled (target and source are set by the caller).
fn verdict(state: &str, error: Option<String>) -> CertificateFinding {
    CertificateFinding {
        observed_ms: 0,
        target: String::new(),
        source: String::new(),
        state: state.into(),
        not_after_ms: None,
        subject: None,
        issuer: None,
        error: error.map(|e| shorten(&e, 300)),
    }
}

/// What the leaf says, and the state it gives when the chain is otherwise fine.
fn from_leaf(leaf: &Leaf, now_ms: i64, chain_error: Option<String>) -> CertificateFinding {
    let expired = leaf.not_after_ms < now_ms;
    let (state, error) = match chain_error {
        _ if expired => ("expired", None),
        Some(e) => ("invalid_chain", Some(e)),
        None => ("valid", None),
    };
    CertificateFinding {
        not_after_ms: Some(leaf.not_after_ms),
        subject: Some(shorten(&leaf.subject, 500)),
        issuer: Some(shorten(&leaf.issuer, 500)),
        ..verdict(state, error)
    }
}

/// Verifies with the web PKI, remembers the verdict and the leaf, and accepts whatever it
/// is shown: the probe wants to read an untrusted certificate too, and sends nothing.
#[derive(Debug)]
struct Recorder {
    inner: Arc<WebPkiServerVerifier>,
    algorithms: WebPkiSupportedAlgorithms,
    seen: Mutex<Option<(Vec<u8>, Option<String>)>>,
}

impl ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verdict = self
            .inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            .err()
            .map(|e| e.to_string());
        if let Ok(mut seen) = self.seen.lock() {
            *seen = Some((end_entity.as_ref().to_vec(), verdict));
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Connects to `host:port` and does a TLS handshake presenting `sni`.
pub(crate) fn probe_endpoint(
    resolver: &SystemResolver,
    verifier: &Arc<WebPkiServerVerifier>,
    host: &str,
    port: u16,
    sni: &str,
    now_ms: i64,
) -> CertificateFinding {
    let unreachable = |e: String| verdict("unreachable", Some(e));
    let addresses = match resolver.lookup(host) {
        Ok(a) if !a.is_empty() => a,
        Ok(_) => return unreachable(format!("{host}: no address")),
        Err(e) => return unreachable(format!("{host}: {e}")),
    };
    let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
    let mut stream = None;
    for ip in addresses {
        match TcpStream::connect_timeout(&SocketAddr::new(ip, port), TIMEOUT) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = e,
        }
    }
    let Some(mut tcp) = stream else {
        return unreachable(format!("connect to {host}:{port}: {last}"));
    };
    let _ = tcp.set_read_timeout(Some(TIMEOUT));
    let _ = tcp.set_write_timeout(Some(TIMEOUT));
    let name = match ServerName::try_from(sni.to_owned()) {
        Ok(n) => n,
        Err(e) => return unreachable(format!("{sni} is not a server name: {e}")),
    };
    let provider = provider();
    let recorder = Arc::new(Recorder {
        inner: verifier.clone(),
        algorithms: provider.signature_verification_algorithms,
        seen: Mutex::new(None),
    });
    let config = match rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
    {
        Ok(b) => b
            .dangerous()
            .with_custom_certificate_verifier(recorder.clone())
            .with_no_client_auth(),
        Err(e) => return unreachable(format!("TLS configuration: {e}")),
    };
    let handshake = rustls::ClientConnection::new(Arc::new(config), name).and_then(|mut conn| {
        while conn.is_handshaking() {
            conn.complete_io(&mut tcp)
                .map_err(|e| rustls::Error::General(e.to_string()))?;
        }
        conn.send_close_notify();
        let _ = conn.complete_io(&mut tcp);
        Ok(())
    });
    let seen = recorder.seen.lock().ok().and_then(|mut s| s.take());
    match (seen, handshake) {
        (Some((der, chain_error)), _) => match parse_certificate(&der) {
            Ok(leaf) => from_leaf(&leaf, now_ms, chain_error),
            Err(e) => verdict(
                "invalid_chain",
                Some(format!("unreadable certificate: {e}")),
            ),
        },
        (None, Err(e)) => unreachable(format!("TLS handshake with {host}:{port}: {e}")),
        (None, Ok(())) => unreachable("no certificate presented".into()),
    }
}

/// A PEM (first certificate) or DER file.
pub(crate) fn read_file(path: &std::path::Path, now_ms: i64) -> CertificateFinding {
    use rustls_pki_types::pem::PemObject as _;
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => return verdict("unreadable", Some(format!("{}: {e}", path.display()))),
    };
    let der = if bytes.starts_with(b"0\x82") || bytes.starts_with(b"0\x81") {
        bytes
    } else {
        match CertificateDer::from_pem_slice(&bytes) {
            Ok(c) => c.as_ref().to_vec(),
            Err(e) => {
                return verdict(
                    "unreadable",
                    Some(format!("{}: no certificate ({e})", path.display())),
                );
            }
        }
    };
    match parse_certificate(&der) {
        Ok(leaf) => from_leaf(&leaf, now_ms, None),
        Err(e) => verdict("unreadable", Some(format!("{}: {e}", path.display()))),
    }
}

/// What the agent reads of an X.509 certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leaf {
    pub not_after_ms: i64,
    pub subject: String,
    pub issuer: String,
}

/// Why a certificate could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DerError {
    #[error("truncated or malformed DER")]
    Malformed,
    #[error("expected {expected}, found tag {found:#04x}")]
    Unexpected { expected: &'static str, found: u8 },
    #[error("unreadable time {0:?}")]
    Time(String),
}

/// One DER element: tag, contents, and what follows it.
fn element(input: &[u8]) -> Result<(u8, &[u8], &[u8]), DerError> {
    let (&tag, rest) = input.split_first().ok_or(DerError::Malformed)?;
    let (&first, rest) = rest.split_first().ok_or(DerError::Malformed)?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return Err(DerError::Malformed);
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return Err(DerError::Malformed);
    }
    Ok((tag, &rest[..len], &rest[len..]))
}

fn expect<'a>(
    input: &'a [u8],
    tag: u8,
    what: &'static str,
) -> Result<(&'a [u8], &'a [u8]), DerError> {
    let (found, content, rest) = element(input)?;
    if found != tag {
        return Err(DerError::Unexpected {
            expected: what,
            found,
        });
    }
    Ok((content, rest))
}

const SEQUENCE: u8 = 0x30;

/// Reads validity, subject and issuer from a DER certificate (RFC 5280 §4.1).
pub fn parse_certificate(der: &[u8]) -> Result<Leaf, DerError> {
    let (cert, _) = expect(der, SEQUENCE, "certificate")?;
    let (tbs, _) = expect(cert, SEQUENCE, "tbsCertificate")?;
    let mut rest = tbs;
    // version [0] EXPLICIT, absent for v1 certificates.
    if rest.first() == Some(&0xa0) {
        rest = element(rest)?.2;
    }
    let (_, rest) = expect(rest, 0x02, "serialNumber")?;
    let (_, rest) = expect(rest, SEQUENCE, "signature algorithm")?;
    let (issuer, rest) = expect(rest, SEQUENCE, "issuer")?;
    let (validity, rest) = expect(rest, SEQUENCE, "validity")?;
    let (subject, _) = expect(rest, SEQUENCE, "subject")?;
    let (_, _, after_not_before) = element(validity)?;
    let (tag, not_after, _) = element(after_not_before)?;
    Ok(Leaf {
        not_after_ms: der_time(tag, not_after)?,
        subject: name(subject)?,
        issuer: name(issuer)?,
    })
}

/// UTCTime (`YYMMDDHHMMSSZ`, years 1950–2049) or GeneralizedTime (`YYYYMMDDHHMMSSZ`).
fn der_time(tag: u8, content: &[u8]) -> Result<i64, DerError> {
    let text = std::str::from_utf8(content).map_err(|_| DerError::Malformed)?;
    let bad = || DerError::Time(text.to_owned());
    let digits = text.strip_suffix('Z').ok_or_else(bad)?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let (year, rest) = match (tag, digits.len()) {
        (0x17, 12) => {
            let yy: i64 = digits[..2].parse().map_err(|_| bad())?;
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, &digits[2..])
        }
        (0x18, 14) => (digits[..4].parse().map_err(|_| bad())?, &digits[4..]),
        _ => return Err(bad()),
    };
    let n = |i: usize| rest[i..i + 2].parse::<i64>().map_err(|_| bad());
    let (month, day, hour, minute, second) = (n(0)?, n(2)?, n(4)?, n(6)?, n(8)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return Err(bad());
    }
    let days = days_from_civil(year, month as u32, day as u32);
    Ok(((days * 24 + hour) * 60 + minute) * 60_000 + second * 1000)
}

/// A distinguished name as `CN=…, O=…` (the usual attributes, in certificate order).
fn name(mut rdns: &[u8]) -> Result<String, DerError> {
    let mut parts = Vec::new();
    while !rdns.is_empty() {
        let (set, rest) = expect(rdns, 0x31, "relative distinguished name")?;
        rdns = rest;
        let mut attrs = set;
        while !attrs.is_empty() {
            let (attr, rest) = expect(attrs, SEQUENCE, "attribute")?;
            attrs = rest;
            let (oid, value) = expect(attr, 0x06, "attribute type")?;
            let (_, text, _) = element(value)?;
            let label = match oid {
                [0x55, 0x04, 0x03] => "CN",
                [0x55, 0x04, 0x06] => "C",
                [0x55, 0x04, 0x07] => "L",
                [0x55, 0x04, 0x08] => "ST",
                [0x55, 0x04, 0x0a] => "O",
                [0x55, 0x04, 0x0b] => "OU",
                _ => continue,
            };
            parts.push(format!("{label}={}", String::from_utf8_lossy(text)));
        }
    }
    Ok(parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watch::Tools;
    use crate::watch::services::tests::scratch;
    use std::net::TcpListener;
    use std::path::Path;
    use vigie_domain::protocol::CollectPlan;

    /// A self-signed certificate for `localhost` valid until `not_after` (y, m, d).
    fn self_signed(not_after: (i32, u8, u8)) -> (rcgen::CertifiedKey, i64) {
        let mut params =
            rcgen::CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "vigie test endpoint");
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "Vigie Tests");
        params.not_after = rcgen::date_time_ymd(not_after.0, not_after.1, not_after.2);
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("cert");
        let ms = days_from_civil(
            i64::from(not_after.0),
            u32::from(not_after.1),
            u32::from(not_after.2),
        ) * 86_400_000;
        (
            rcgen::CertifiedKey {
                cert,
                key_pair: key,
            },
            ms,
        )
    }

    /// A real TLS server on 127.0.0.1 presenting `cert` to each of `connections` clients.
    fn serve(certified: &rcgen::CertifiedKey, connections: usize) -> u16 {
        let chain = vec![certified.cert.der().clone()];
        let key = rustls_pki_types::PrivateKeyDer::Pkcs8(certified.key_pair.serialize_der().into());
        let config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("server config");
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        std::thread::spawn(move || {
            for _ in 0..connections {
                let Ok((mut tcp, _)) = listener.accept() else {
                    return;
                };
                let Ok(mut conn) = rustls::ServerConnection::new(config.clone()) else {
                    return;
                };
                while conn.is_handshaking() {
                    if conn.complete_io(&mut tcp).is_err() {
                        break;
                    }
                }
                let _ = conn.complete_io(&mut tcp);
            }
        });
        port
    }

    fn run(targets: Vec<CertificateTarget>, now_ms: i64) -> (RunStatus, Vec<CertificateFinding>) {
        let plan = CollectPlan {
            certificates: targets,
            ..CollectPlan::default()
        };
        let tools = Tools::default();
        let ctx = WatchContext {
            root: Path::new("/"),
            tools: &tools,
            plan: &plan,
            state_dir: Path::new("/nonexistent"),
            now_ms,
        };
        let mut out = Observations::default();
        let status = Certificates::default().run(&ctx, &mut out);
        let found = out
            .findings
            .into_iter()
            .map(|f| match f {
                Finding::Certificate(c) => c,
                other => panic!("{other:?}"),
            })
            .collect();
        (status, found)
    }

    const NOW: i64 = 1_790_000_000_000; // 2026-09-21

    #[test]
    fn a_real_tls_endpoint_with_a_self_signed_certificate_is_an_invalid_chain_with_its_expiry() {
        let (cert, not_after_ms) = self_signed((2027, 3, 1));
        let port = serve(&cert, 1);
        // A closed port next to it: nothing listens there.
        let closed = TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("a")
            .port();
        let (status, found) = run(
            vec![
                CertificateTarget::Endpoint {
                    host: "127.0.0.1".into(),
                    port,
                    sni: Some("localhost".into()),
                },
                CertificateTarget::Endpoint {
                    host: "127.0.0.1".into(),
                    port: closed,
                    sni: None,
                },
            ],
            NOW,
        );
        assert_eq!(status, RunStatus::ok());
        let tls = &found[0];
        assert_eq!(tls.target, format!("127.0.0.1:{port}"));
        assert_eq!(
            (tls.source.as_str(), tls.state.as_str()),
            ("endpoint", "invalid_chain"),
            "{tls:?}"
        );
        assert_eq!(tls.not_after_ms, Some(not_after_ms));
        assert_eq!(
            tls.subject.as_deref(),
            Some("CN=vigie test endpoint, O=Vigie Tests")
        );
        assert_eq!(tls.issuer, tls.subject, "self-signed");
        assert!(
            tls.error
                .as_deref()
                .is_some_and(|e| e.contains("UnknownIssuer")),
            "{tls:?}"
        );
        let down = &found[1];
        assert_eq!(down.state, "unreachable");
        assert_eq!(down.not_after_ms, None);
        assert!(
            down.error.as_deref().is_some_and(|e| e.contains("connect")),
            "{down:?}"
        );
    }

    #[test]
    fn certificate_files_in_pem_and_der() {
        let dir = scratch("certs-files");
        let (cert, not_after_ms) = self_signed((2026, 10, 1));
        let pem = dir.join("portal.pem");
        std::fs::write(&pem, cert.cert.pem()).expect("pem");
        let der = dir.join("portal.der");
        std::fs::write(&der, cert.cert.der().as_ref()).expect("der");
        let junk = dir.join("junk.pem");
        std::fs::write(&junk, "not a certificate\n").expect("junk");
        let file = |p: &Path| CertificateTarget::File {
            path: p.display().to_string(),
        };
        let targets = vec![
            file(&pem),
            file(&der),
            file(&junk),
            file(&dir.join("absent.pem")),
        ];
        let (_, found) = run(targets.clone(), NOW);
        let states: Vec<_> = found
            .iter()
            .map(|f| (f.state.as_str(), f.not_after_ms))
            .collect();
        assert_eq!(
            states,
            [
                ("valid", Some(not_after_ms)),
                ("valid", Some(not_after_ms)),
                ("unreadable", None),
                ("unreadable", None)
            ]
        );
        assert_eq!(found[0].source, "file");
        // Eleven days later it has expired.
        let (_, found) = run(targets, NOW + 11 * 86_400_000);
        assert_eq!(found[0].state, "expired");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn der_times_and_malformed_input() {
        assert_eq!(der_time(0x17, b"260921141320Z"), Ok(NOW));
        assert_eq!(der_time(0x18, b"20260921141320Z"), Ok(NOW));
        assert_eq!(der_time(0x17, b"491231235959Z").map(|t| t > NOW), Ok(true));
        assert!(der_time(0x17, b"261321141320Z").is_err());
        assert_eq!(
            parse_certificate(&[0x30, 0x05, 0x30]),
            Err(DerError::Malformed)
        );
        assert!(parse_certificate(b"").is_err());
    }
}
