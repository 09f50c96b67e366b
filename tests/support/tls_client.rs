//! A rustls client of `tls_port`: its settings (the authority it trusts,
//! the protocol versions, and the certificate it shows for itself, if
//! any: mutual TLS), and a connection with [`Reader`]'s parsing.

use super::pki::{provider, Ca, Leaf};
use super::{request_bytes, Reader, Response, IO_TIMEOUT};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::SupportedProtocolVersion;
use rustls::{ClientConfig, ClientConnection, HandshakeKind, RootCertStore, StreamOwned};
use std::io::{self, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;

/// What a client shows for itself: its chain, its own certificate first
/// then whatever it sends after it, and its key.
pub struct Shown {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

impl Leaf {
    /// This certificate alone, and its key.
    pub fn shown(&self) -> Shown {
        self.shown_with(&[])
    }

    /// This certificate, then `after` (intermediates, as a client sends
    /// them), and its key.
    pub fn shown_with(&self, after: &[&CertificateDer<'static>]) -> Shown {
        let mut chain = vec![self.der.clone()];
        chain.extend(after.iter().map(|c| (*c).clone()));
        Shown {
            chain,
            key: self.key(),
        }
    }
}

/// Client settings that trust `ca`, speak `versions`, and show `shown`
/// when the server asks for a certificate (none: nothing to show).
/// Sessions resume as rustls's defaults say: adjust `resumption` for more.
pub fn client_settings(
    ca: &Ca,
    versions: &[&'static SupportedProtocolVersion],
    shown: Option<Shown>,
) -> ClientConfig {
    let mut roots = RootCertStore::empty();
    roots.add(ca.der.clone()).unwrap();
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots);
    match shown {
        Some(Shown { chain, key }) => builder.with_client_auth_cert(chain, key).unwrap(),
        None => builder.with_no_client_auth(),
    }
}

pub type TlsConn = StreamOwned<ClientConnection, TcpStream>;

/// A TLS client connection, its handshake done, with [`Reader`]'s parsing.
pub struct TlsClient {
    pub reader: Reader<TlsConn>,
}

impl TlsClient {
    /// Connects to `addr` asking for `name` (an IP address: no SNI at
    /// all) and completes the handshake.
    pub fn try_connect(
        addr: SocketAddr,
        config: &Arc<ClientConfig>,
        name: &str,
    ) -> io::Result<TlsClient> {
        TlsClient::try_connect_after(addr, config, name, b"")
    }

    /// [`TlsClient::try_connect`], sending `first` (a PROXY header)
    /// before the hello.
    pub fn try_connect_after(
        addr: SocketAddr,
        config: &Arc<ClientConfig>,
        name: &str,
        first: &[u8],
    ) -> io::Result<TlsClient> {
        let mut tcp = TcpStream::connect(addr)?;
        tcp.write_all(first)?;
        tcp.set_read_timeout(Some(IO_TIMEOUT))?;
        tcp.set_write_timeout(Some(IO_TIMEOUT))?;
        tcp.set_nodelay(true)?;
        let name = ServerName::try_from(name.to_string()).unwrap();
        let conn = ClientConnection::new(config.clone(), name).unwrap();
        let mut stream = StreamOwned::new(conn, tcp);
        while stream.conn.is_handshaking() {
            stream.conn.complete_io(&mut stream.sock)?;
        }
        Ok(TlsClient {
            reader: Reader::new(stream),
        })
    }

    #[track_caller]
    pub fn connect(addr: SocketAddr, config: &Arc<ClientConfig>, name: &str) -> TlsClient {
        TlsClient::try_connect(addr, config, name)
            .unwrap_or_else(|e| panic!("TLS handshake with {addr} as {name}: {e}"))
    }

    pub fn conn(&self) -> &ClientConnection {
        &self.reader.stream.conn
    }

    /// Whether the handshake resumed a session.
    pub fn resumed(&self) -> bool {
        self.conn().handshake_kind() == Some(HandshakeKind::Resumed)
    }

    /// The certificate the proxy presented for itself.
    pub fn server_cert(&self) -> CertificateDer<'static> {
        self.conn().peer_certificates().unwrap()[0].clone()
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.reader.stream.write_all(bytes).unwrap();
        self.reader.stream.flush().unwrap();
    }

    pub fn response(&mut self) -> Response {
        self.reader.read_response(false).unwrap()
    }

    pub fn get(&mut self, path: &str) -> Response {
        self.request("GET", path, &[], b"")
    }

    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        fields: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        self.send(&request_bytes(method, path, fields, body));
        self.response()
    }

    /// `GET path` with `fields`, any failure returned: for a connection
    /// the proxy may end instead of answering. What it said before it
    /// ended (an alert that refuses a client's certificate, sent once the
    /// client's side of a TLS 1.3 handshake was done) is read even when
    /// the request could not be written: that failure is returned only
    /// when reading fails for want of bytes too.
    pub fn try_get(&mut self, path: &str, fields: &[(&str, &str)]) -> io::Result<Response> {
        let request = request_bytes("GET", path, fields, b"");
        let written =
            (self.reader.stream.write_all(&request)).and_then(|()| self.reader.stream.flush());
        match (written, self.reader.read_response(false)) {
            (Err(unwritten), Err(unread)) if unread.kind() != io::ErrorKind::InvalidData => {
                Err(unwritten)
            }
            (_, read) => read,
        }
    }

    /// Whether the proxy ended the connection: the next read ends the
    /// stream (a `close_notify`, the TCP end without one, or a reset)
    /// with no further bytes. A timeout counts as not closed.
    pub fn is_closed(&mut self) -> bool {
        self.reader.is_closed()
    }
}

/// A client's check of the proxy's certificate, by `ca`, as rustls makes
/// it, that keeps what the proxy stapled (its OCSP response), and with
/// `instead` checks the certificate against that name rather than the
/// one asked for (to see which certificate a name nobody serves gets).
#[derive(Debug)]
pub struct Verifier {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
    instead: Option<ServerName<'static>>,
    /// The OCSP response of the last handshake checked (empty: none).
    pub stapled: std::sync::Mutex<Option<Vec<u8>>>,
}

impl Verifier {
    pub fn of(ca: &Ca, instead: Option<&str>) -> Arc<Verifier> {
        let mut roots = RootCertStore::empty();
        roots.add(ca.der.clone()).unwrap();
        let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            provider(),
        )
        .build()
        .unwrap();
        Arc::new(Verifier {
            inner,
            instead: instead.map(|name| ServerName::try_from(name.to_string()).unwrap()),
            stapled: std::sync::Mutex::new(None),
        })
    }
}

impl rustls::client::danger::ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        asked: &ServerName<'_>,
        ocsp: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        *self.stapled.lock().unwrap() = Some(ocsp.to_vec());
        let name = self.instead.as_ref().unwrap_or(asked);
        (self.inner).verify_server_cert(end_entity, intermediates, name, ocsp, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
