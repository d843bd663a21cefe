//! [`TlsConfig`]: which certificates, keys and client-certificate rules a server uses, and
//! [`Tls`]: those loaded, shared by the server's connections and reloaded in place.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use rustls::crypto::CryptoProvider;
use rustls::server::{
    ClientHello, ResolvesServerCert, ServerSessionMemoryCache, StoresServerSessions,
    WebPkiClientVerifier,
};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig, ServerConnection};

use super::files::{self, file_error, KeyPair};

/// How long a connection has from accept to finish its TLS handshake unless
/// [`TlsConfig::handshake_timeout`] says otherwise.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether clients must present a certificate (mutual TLS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// Clients are not asked for a certificate.
    Off,
    /// Clients may present a certificate; one that does must be valid for the configured CA, one
    /// that does not is served without an identity.
    Optional,
    /// Every client must present a certificate valid for the configured CA; the handshake of one
    /// that does not fails.
    Required,
}

/// What a TLS server presents and asks for: its certificate and key files, more certificates
/// chosen by server name (SNI), a CA bundle for client certificates (mutual TLS) with revocation
/// lists, and the application protocols it offers (ALPN). [`load`](Self::load) reads the files
/// into a [`Tls`] for [`Builder::tls`](crate::Builder::tls).
///
/// Files are PEM: a certificate file holds the leaf certificate first, then its chain; a key file
/// holds one PKCS#8, PKCS#1 (RSA) or SEC1 (EC) private key.
///
/// ```no_run
/// use socketserver::tls::TlsConfig;
///
/// # fn main() -> std::io::Result<()> {
/// let tls = TlsConfig::new("server.crt", "server.key")
///     .certificate_for("api.example.com", "api.crt", "api.key")
///     .client_ca("clients-ca.pem") // mutual TLS: clients need a certificate from this CA
///     .alpn(["h2", "http/1.1"])
///     .load()?;
/// # let _ = tls;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct TlsConfig {
    default: KeyPair,
    by_name: Vec<(String, KeyPair)>,
    client_ca: Option<PathBuf>,
    client_auth: ClientAuth,
    crls: Vec<PathBuf>,
    alpn: Vec<Vec<u8>>,
    handshake_timeout: Duration,
}

impl TlsConfig {
    /// The certificate (with its chain) and private key presented to every client, or to those
    /// whose server name matches no [`certificate_for`](Self::certificate_for).
    pub fn new(cert: impl AsRef<Path>, key: impl AsRef<Path>) -> TlsConfig {
        TlsConfig {
            default: KeyPair {
                cert: cert.as_ref().to_path_buf(),
                key: key.as_ref().to_path_buf(),
            },
            by_name: Vec::new(),
            client_ca: None,
            client_auth: ClientAuth::Off,
            crls: Vec::new(),
            alpn: Vec::new(),
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        }
    }

    /// Presents this certificate to clients that ask for `server_name` (SNI): an exact name
    /// (`api.example.com`, matched without regard to case) or a wildcard for one label
    /// (`*.example.com`). The first match, in the order given, wins.
    #[must_use]
    pub fn certificate_for(
        mut self,
        server_name: &str,
        cert: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> TlsConfig {
        self.by_name.push((
            server_name.to_ascii_lowercase(),
            KeyPair {
                cert: cert.as_ref().to_path_buf(),
                key: key.as_ref().to_path_buf(),
            },
        ));
        self
    }

    /// Asks clients for a certificate and verifies it against the CA certificates in `bundle`
    /// (mutual TLS). Required unless [`client_auth`](Self::client_auth) makes it optional. The
    /// handler reads the verified identity from [`TlsInfo::peer`](super::TlsInfo::peer).
    #[must_use]
    pub fn client_ca(mut self, bundle: impl AsRef<Path>) -> TlsConfig {
        self.client_ca = Some(bundle.as_ref().to_path_buf());
        if self.client_auth == ClientAuth::Off {
            self.client_auth = ClientAuth::Required;
        }
        self
    }

    /// Whether client certificates are required or optional (with a
    /// [`client_ca`](Self::client_ca)); [`ClientAuth::Off`] stops asking for them.
    #[must_use]
    pub fn client_auth(mut self, auth: ClientAuth) -> TlsConfig {
        self.client_auth = auth;
        self
    }

    /// Refuses client certificates revoked by the certificate revocation lists in `file` (PEM).
    /// May be given more than once.
    #[must_use]
    pub fn revocation_list(mut self, file: impl AsRef<Path>) -> TlsConfig {
        self.crls.push(file.as_ref().to_path_buf());
        self
    }

    /// The application protocols the server speaks, in its order of preference (ALPN, such as
    /// `["h2", "http/1.1"]`). A client offering none of them fails its handshake; one offering
    /// none at all is served. The handler reads the choice from
    /// [`TlsInfo::alpn_protocol`](super::TlsInfo::alpn_protocol).
    #[must_use]
    pub fn alpn<P: AsRef<[u8]>>(mut self, protocols: impl IntoIterator<Item = P>) -> TlsConfig {
        self.alpn = protocols.into_iter().map(|p| p.as_ref().to_vec()).collect();
        self
    }

    /// How long a connection has, counted from accept, to finish its TLS handshake (and send its
    /// PROXY protocol header before it, if the server expects one); default
    /// [`DEFAULT_HANDSHAKE_TIMEOUT`]. Past it the connection is closed and reported to
    /// `handle_error`.
    #[must_use]
    pub fn handshake_timeout(mut self, timeout: Duration) -> TlsConfig {
        self.handshake_timeout = timeout;
        self
    }

    /// Reads the files and builds what the server serves with.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for a CA bundle missing where client certificates are asked for, or an
    /// empty server name; otherwise an error that names the file: one that cannot be read
    /// (`NotFound`, `PermissionDenied`), holds no certificate or key, or a certificate that has
    /// expired or is not valid yet, a key that does not belong to its certificate, a CA bundle or
    /// revocation list that cannot be used (`InvalidData`).
    pub fn load(self) -> io::Result<Tls> {
        // rustls 0.23.48 deprecates the ring provider for lacking post-quantum key exchange;
        // ring is what builds with no C toolchain beyond cc (aws-lc-rs needs cmake), so it
        // stays, with X25519 and the NIST curves.
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let ticketer = rustls::crypto::ring::Ticketer::new().map_err(|e| {
            io::Error::other(format!("cannot make the TLS session ticket keys: {e}"))
        })?;
        let cache: Arc<dyn StoresServerSessions> = ServerSessionMemoryCache::new(4096);
        let built = build(&self, &provider, &ticketer, &cache)?;
        Ok(Tls {
            live: Arc::new(Live {
                current: RwLock::new(built),
                config: self,
                provider,
                ticketer,
                cache,
            }),
        })
    }
}

/// A loaded [`TlsConfig`], for [`Builder::tls`](crate::Builder::tls). Clones share it: keep one
/// to [`reload`](Self::reload) the files while the server runs.
#[derive(Clone)]
pub struct Tls {
    live: Arc<Live>,
}

struct Live {
    config: TlsConfig,
    current: RwLock<Arc<ServerConfig>>,
    provider: Arc<CryptoProvider>,
    /// Kept across reloads, so session tickets and cached sessions stay valid.
    ticketer: Arc<dyn rustls::server::ProducesTickets>,
    cache: Arc<dyn StoresServerSessions>,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls")
            .field("config", &self.live.config)
            .finish_non_exhaustive()
    }
}

impl Tls {
    /// Reads the certificate, key, CA and revocation files again: connections that begin their
    /// handshake after it returns use what they hold now; those in flight keep what they began
    /// with. A file that cannot be used leaves the old certificates in place (the error says
    /// why). With [`stop_on_signals`], SIGHUP calls this.
    ///
    /// # Errors
    ///
    /// As for [`TlsConfig::load`]; the server goes on with what it had.
    ///
    #[cfg_attr(
        feature = "signals",
        doc = "[`stop_on_signals`]: crate::Builder::stop_on_signals"
    )]
    #[cfg_attr(not(feature = "signals"), doc = "[`stop_on_signals`]: crate#features")]
    pub fn reload(&self) -> io::Result<()> {
        let live = &self.live;
        let built = build(&live.config, &live.provider, &live.ticketer, &live.cache)?;
        *live.current.write().unwrap_or_else(PoisonError::into_inner) = built;
        log::info!(
            "TLS: reloaded the certificates from {}",
            live.config.default.cert.display()
        );
        Ok(())
    }

    /// [`reload`](Self::reload), logging a failure instead of returning it (for SIGHUP).
    #[cfg(feature = "signals")]
    pub(crate) fn reload_or_log(&self) {
        if let Err(e) = self.reload() {
            log::error!("TLS: reload failed, still serving the previous certificates: {e}");
        }
    }

    /// The configuration the files held when they were last loaded.
    #[must_use]
    pub fn config(&self) -> &TlsConfig {
        &self.live.config
    }

    /// How long a connection has from accept to finish its handshake.
    #[must_use]
    pub fn handshake_timeout(&self) -> Duration {
        self.live.config.handshake_timeout
    }

    /// A new server-side session with the current certificates.
    pub(crate) fn session(&self) -> io::Result<ServerConnection> {
        let config = Arc::clone(
            &self
                .live
                .current
                .read()
                .unwrap_or_else(PoisonError::into_inner),
        );
        ServerConnection::new(config)
            .map_err(|e| io::Error::other(format!("cannot start a TLS session: {e}")))
    }
}

/// Builds the rustls configuration `config` describes.
fn build(
    config: &TlsConfig,
    provider: &Arc<CryptoProvider>,
    ticketer: &Arc<dyn rustls::server::ProducesTickets>,
    cache: &Arc<dyn StoresServerSessions>,
) -> io::Result<Arc<ServerConfig>> {
    let now = SystemTime::now();
    let default = certified_key(&config.default, provider, now)?;
    let mut named = Vec::with_capacity(config.by_name.len());
    for (name, pair) in &config.by_name {
        if name.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "TlsConfig::certificate_for: the server name is empty",
            ));
        }
        named.push((name.clone(), certified_key(pair, provider, now)?));
    }
    let builder = ServerConfig::builder_with_provider(Arc::clone(provider))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| io::Error::other(format!("TLS: {e}")))?;
    let builder = match (&config.client_ca, config.client_auth) {
        (_, ClientAuth::Off) => builder.with_no_client_auth(),
        (None, _) => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "TlsConfig: client certificates are asked for but no CA bundle is set \
                 (TlsConfig::client_ca)",
            ))
        }
        (Some(bundle), auth) => {
            let verifier = client_verifier(bundle, &config.crls, auth, provider)?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut server = builder.with_cert_resolver(Arc::new(ByName { default, named }));
    server.alpn_protocols = config.alpn.clone();
    server.ticketer = Arc::clone(ticketer);
    server.session_storage = Arc::clone(cache);
    Ok(Arc::new(server))
}

/// A certificate chain with its signing key, checked: dates valid now, key matching.
fn certified_key(
    pair: &KeyPair,
    provider: &CryptoProvider,
    now: SystemTime,
) -> io::Result<Arc<CertifiedKey>> {
    let chain = files::certificates(&pair.cert)?;
    files::check_dates(&pair.cert, &chain, now)?;
    let key = files::private_key(&pair.key)?;
    let signing = provider.key_provider.load_private_key(key).map_err(|e| {
        file_error(
            io::ErrorKind::InvalidData,
            &pair.key,
            format_args!("the private key cannot be used: {e}"),
        )
    })?;
    let certified = CertifiedKey::new(chain, signing);
    match certified.keys_match() {
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            Err(file_error(
                io::ErrorKind::InvalidData,
                &pair.key,
                format_args!(
                    "this private key does not belong to the certificate in {}",
                    pair.cert.display()
                ),
            ))
        }
        // `Unknown`: the key cannot tell its public half; the handshake will show a mismatch.
        _ => Ok(Arc::new(certified)),
    }
}

fn client_verifier(
    bundle: &Path,
    crl_files: &[PathBuf],
    auth: ClientAuth,
    provider: &Arc<CryptoProvider>,
) -> io::Result<Arc<dyn rustls::server::danger::ClientCertVerifier>> {
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(files::certificates(bundle)?);
    if added == 0 {
        return Err(file_error(
            io::ErrorKind::InvalidData,
            bundle,
            "no usable CA certificate in it",
        ));
    }
    let mut crls = Vec::new();
    for file in crl_files {
        crls.extend(files::revocation_lists(file)?);
    }
    let mut verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(provider))
            .with_crls(crls);
    if auth == ClientAuth::Optional {
        verifier = verifier.allow_unauthenticated();
    }
    verifier.build().map_err(|e| {
        file_error(
            io::ErrorKind::InvalidData,
            bundle,
            format_args!("cannot verify client certificates with it: {e}"),
        )
    })
}

/// Chooses the certificate by the server name the client asked for (SNI).
#[derive(Debug)]
struct ByName {
    default: Arc<CertifiedKey>,
    /// Lower-case names, exact or `*.` wildcards, in the order given.
    named: Vec<(String, Arc<CertifiedKey>)>,
}

impl ByName {
    fn find(&self, name: &str) -> Option<&Arc<CertifiedKey>> {
        let name = name.to_ascii_lowercase();
        self.named
            .iter()
            .find(|(pattern, _)| matches_name(pattern, &name))
            .map(|(_, key)| key)
    }
}

/// Whether `name` (lower case) matches `pattern`: equal, or `*.rest` with one label before `rest`.
fn matches_name(pattern: &str, name: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(rest) => name
            .split_once('.')
            .is_some_and(|(label, tail)| !label.is_empty() && tail == rest),
        None => pattern == name,
    }
}

impl ResolvesServerCert for ByName {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let chosen = client_hello.server_name().and_then(|name| self.find(name));
        Some(Arc::clone(chosen.unwrap_or(&self.default)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_exactly_or_by_one_wildcard_label() {
        assert!(matches_name("api.example.com", "api.example.com"));
        assert!(!matches_name("api.example.com", "www.example.com"));
        assert!(matches_name("*.example.com", "www.example.com"));
        assert!(!matches_name("*.example.com", "a.b.example.com"));
        assert!(!matches_name("*.example.com", "example.com"));
    }
}
