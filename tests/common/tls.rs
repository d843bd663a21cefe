//! Certificates made at test time (rcgen): a CA, a server certificate for `localhost` and
//! 127.0.0.1, client certificates from that CA and from another one; and rustls clients that
//! trust the CA.

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SerialNumber,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

use super::IO_TIMEOUT;

/// A client's TLS stream over TCP.
pub type TlsClient = StreamOwned<ClientConnection, TcpStream>;

/// A folder of PEM files for one test, removed on drop.
pub struct Pki {
    pub dir: PathBuf,
    ca: CertifiedIssuer<'static, KeyPair>,
    other_ca: CertifiedIssuer<'static, KeyPair>,
    /// The CA bundle clients and the server's client verification trust.
    pub ca_file: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    /// A client certificate from a CA the server does not trust.
    pub stranger_cert: PathBuf,
    pub stranger_key: PathBuf,
}

fn make_ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    CertifiedIssuer::self_signed(params, KeyPair::generate().expect("CA key")).expect("CA")
}

impl Pki {
    pub fn new(test: &str) -> Pki {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("ss-tls-{}-{n}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the certificate folder");
        let ca = make_ca("socketserver test CA");
        let other_ca = make_ca("some other CA");
        let ca_file = dir.join("ca.pem");
        std::fs::write(&ca_file, ca.pem()).expect("write ca.pem");
        let mut pki = Pki {
            cert: dir.join("server.crt"),
            key: dir.join("server.key"),
            client_cert: dir.join("client.crt"),
            client_key: dir.join("client.key"),
            stranger_cert: dir.join("stranger.crt"),
            stranger_key: dir.join("stranger.key"),
            dir,
            ca,
            other_ca,
            ca_file,
        };
        pki.write_server_cert(1, &pki.cert.clone(), &pki.key.clone());
        let (cert, key) = (pki.client_cert.clone(), pki.client_key.clone());
        pki.write_client_cert("alice", false, &cert, &key);
        let (cert, key) = (pki.stranger_cert.clone(), pki.stranger_key.clone());
        pki.write_client_cert("mallory", true, &cert, &key);
        pki
    }

    /// Writes a server certificate for localhost and 127.0.0.1 with serial `serial`, signed by
    /// the CA, to `cert` and `key` (replacing them).
    pub fn write_server_cert(&mut self, serial: u64, cert: &Path, key: &Path) {
        let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        let mut params = CertificateParams::new(names).expect("server params");
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        params.serial_number = Some(SerialNumber::from_slice(&serial.to_be_bytes()));
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let pair = KeyPair::generate().expect("server key");
        let made = params
            .signed_by(&pair, &self.ca)
            .expect("server certificate");
        write_atomically(cert, made.pem().as_bytes());
        write_atomically(key, pair.serialize_pem().as_bytes());
    }

    /// A server certificate for `names` (no CA: self-signed), to `cert` and `key`.
    pub fn write_named_cert(&self, names: &[&str], cert: &Path, key: &Path) {
        let names: Vec<String> = names.iter().map(ToString::to_string).collect();
        let mut params = CertificateParams::new(names.clone()).expect("params");
        params
            .distinguished_name
            .push(DnType::CommonName, names[0].clone());
        let pair = KeyPair::generate().expect("key");
        let made = params.signed_by(&pair, &self.ca).expect("certificate");
        write_atomically(cert, made.pem().as_bytes());
        write_atomically(key, pair.serialize_pem().as_bytes());
    }

    /// A server certificate valid only from the start of `years.0` to the start of `years.1`.
    pub fn write_dated_cert(&self, cert: &Path, key: &Path, years: (i32, i32)) {
        let mut params = CertificateParams::new(vec!["localhost".to_string()]).expect("params");
        params.not_before = rcgen::date_time_ymd(years.0, 1, 1);
        params.not_after = rcgen::date_time_ymd(years.1, 1, 1);
        let pair = KeyPair::generate().expect("key");
        let made = params.signed_by(&pair, &self.ca).expect("certificate");
        write_atomically(cert, made.pem().as_bytes());
        write_atomically(key, pair.serialize_pem().as_bytes());
    }

    fn write_client_cert(&self, name: &str, stranger: bool, cert: &Path, key: &Path) {
        let mut params =
            CertificateParams::new(vec![format!("{name}@example.com")]).expect("client params");
        params.subject_alt_names = vec![rcgen::SanType::Rfc822Name(
            format!("{name}@example.com")
                .try_into()
                .expect("an e-mail SAN"),
        )];
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let pair = KeyPair::generate().expect("client key");
        let issuer = if stranger { &self.other_ca } else { &self.ca };
        let made = params.signed_by(&pair, issuer).expect("client certificate");
        write_atomically(cert, made.pem().as_bytes());
        write_atomically(key, pair.serialize_pem().as_bytes());
    }

    /// A client configuration trusting the CA, presenting `identity` (cert, key) if given, and
    /// offering `alpn`.
    pub fn client_config(
        &self,
        identity: Option<(&Path, &Path)>,
        alpn: &[&str],
    ) -> Arc<ClientConfig> {
        #[allow(deprecated)] // the provider the server uses
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.der().clone()).expect("trust the CA");
        let builder = ClientConfig::builder().with_root_certificates(roots);
        let mut config = match identity {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => {
                use rustls::pki_types::pem::PemObject;
                let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
                    .expect("client cert")
                    .map(|c| c.expect("a certificate"))
                    .collect();
                let key = PrivateKeyDer::from_pem_file(key).expect("client key");
                builder
                    .with_client_auth_cert(chain, key)
                    .expect("client identity")
            }
        };
        config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
        Arc::new(config)
    }

    /// A client configuration trusting the CA that speaks TLS 1.2 only (whose handshake the
    /// server, not the client, finishes).
    pub fn tls12_client_config(&self) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.der().clone()).expect("trust the CA");
        #[allow(deprecated)] // the provider the server uses
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS12])
            .expect("TLS 1.2")
            .with_root_certificates(roots)
            .with_no_client_auth();
        Arc::new(config)
    }

    /// Connects to `addr` as `localhost` and finishes the handshake.
    pub fn connect(&self, addr: SocketAddr, config: &Arc<ClientConfig>) -> io::Result<TlsClient> {
        connect_as(addr, config, "localhost")
    }
}

/// Connects to `addr` asking for `server_name` and finishes the handshake.
pub fn connect_as(
    addr: SocketAddr,
    config: &Arc<ClientConfig>,
    server_name: &str,
) -> io::Result<TlsClient> {
    connect_over(TcpStream::connect(addr)?, config, server_name)
}

/// Finishes a handshake asking for `server_name` on `tcp`, a connection already made (after a
/// PROXY protocol header, say).
pub fn connect_over(
    tcp: TcpStream,
    config: &Arc<ClientConfig>,
    server_name: &str,
) -> io::Result<TlsClient> {
    tcp.set_read_timeout(Some(IO_TIMEOUT))?;
    tcp.set_write_timeout(Some(IO_TIMEOUT))?;
    let name = ServerName::try_from(server_name.to_string()).expect("a server name");
    let conn = ClientConnection::new(Arc::clone(config), name).map_err(io::Error::other)?;
    let mut stream = StreamOwned::new(conn, tcp);
    while stream.conn.is_handshaking() {
        stream.conn.complete_io(&mut stream.sock)?;
    }
    Ok(stream)
}

/// The first flight a client configured by `config` sends (its `ClientHello`), asking for
/// `localhost`: bytes to trickle, or to send without ever finishing.
pub fn client_hello(config: &Arc<ClientConfig>) -> Vec<u8> {
    let name = ServerName::try_from("localhost").expect("a server name");
    let mut conn = ClientConnection::new(Arc::clone(config), name).expect("a client session");
    let mut hello = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut hello).expect("write to a Vec");
    }
    hello
}

/// The serial number of the certificate the server presented, in hex.
pub fn server_serial(client: &TlsClient) -> String {
    let certs = client
        .conn
        .peer_certificates()
        .expect("the server's certificates");
    let (_, cert) = x509_parser::parse_x509_certificate(certs[0].as_ref()).expect("parse");
    cert.raw_serial_as_string().replace(':', "")
}

/// Replaces `path` in one step, as a deploy tool would (a reload never sees half a file).
pub fn write_atomically(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
