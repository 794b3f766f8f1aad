//! The go-plugin side of the provider: handshake, unix socket, AutoMTLS,
//! signals and shutdown.
//!
//! Terraform starts the provider with a magic cookie and its own client
//! certificate (`PLUGIN_CLIENT_CERT`), reads one handshake line from stdout
//! (`1|6|unix|PATH|grpc|CERT`), then speaks gRPC over TLS on that socket. The
//! server requires the client to present exactly that certificate: any other
//! local process is refused. SIGINT is ignored because Terraform sends it to
//! its whole process group on Ctrl-C and then asks us to stop through
//! `StopProvider`; the controller's `Shutdown` ends the process.

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use base64::Engine as _;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{Notify, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::Connected;
use tonic::{Request, Response, Status};

use crate::proto::plugin as go_plugin;
use crate::server::AtriumProvider;

/// The cookie Terraform sets so that a provider knows it was started by Terraform.
pub const MAGIC_COOKIE_KEY: &str = "TF_PLUGIN_MAGIC_COOKIE";
pub const MAGIC_COOKIE_VALUE: &str = "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2";
/// The provider's source address, used in `TF_REATTACH_PROVIDERS`.
pub const PROVIDER_ADDRESS: &str = "registry.terraform.io/atrium-hosting/atrium";
/// Terraform's largest message; the default 4 MiB limit breaks big plans.
pub const MAX_MESSAGE_SIZE: usize = 256 << 20;

/// Errors that stop the provider from serving.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("this binary is a Terraform plugin and is not meant to be run directly")]
    NotStartedByTerraform,
    #[error(
        "Terraform offered plugin protocol versions {offered:?}, but this provider speaks only version 6 (Terraform 1.0 or newer)"
    )]
    ProtocolMismatch { offered: String },
    #[error("cannot create the plugin socket at {path}")]
    Socket {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot set up TLS for the plugin connection: {reason}")]
    Tls { reason: String },
    #[error("the gRPC server failed")]
    Serve(#[source] tonic::transport::Error),
}

/// How the server is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Started by Terraform: handshake line, mTLS required.
    Managed,
    /// `--debug`: no TLS, prints `TF_REATTACH_PROVIDERS`, runs until Ctrl-C.
    Debug,
}

/// A TLS or plain unix connection, as tonic's server wants it.
pub enum PluginConnection {
    Plain(UnixStream),
    Tls(Box<tokio_rustls::server::TlsStream<UnixStream>>),
}

impl Connected for PluginConnection {
    type ConnectInfo = ();
    fn connect_info(&self) -> Self::ConnectInfo {}
}

impl AsyncRead for PluginConnection {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            PluginConnection::Plain(stream) => Pin::new(stream).poll_read(cx, buf),
            PluginConnection::Tls(stream) => Pin::new(stream.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for PluginConnection {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            PluginConnection::Plain(stream) => Pin::new(stream).poll_write(cx, buf),
            PluginConnection::Tls(stream) => Pin::new(stream.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            PluginConnection::Plain(stream) => Pin::new(stream).poll_flush(cx),
            PluginConnection::Tls(stream) => Pin::new(stream.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            PluginConnection::Plain(stream) => Pin::new(stream).poll_shutdown(cx),
            PluginConnection::Tls(stream) => Pin::new(stream.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Accepts only the one client certificate Terraform announced.
#[derive(Debug)]
struct PinnedClientCertificate {
    certificate: CertificateDer<'static>,
    algorithms: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for PinnedClientCertificate {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        // go-plugin's client certificate is self-signed and marked as a CA, so
        // a WebPKI chain check would refuse it; pinning the exact certificate
        // is the stricter check (the handshake proves the client holds its key).
        if end_entity.as_ref() == self.certificate.as_ref() {
            Ok(ClientCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::ApplicationVerificationFailure))
        }
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

/// The server's side of AutoMTLS: a fresh self-signed certificate for
/// `localhost`, and a TLS config that requires `client_certificate_pem`.
pub fn tls_config(client_certificate_pem: &str) -> Result<(rustls::ServerConfig, Vec<u8>), PluginError> {
    let tls_error = |reason: String| PluginError::Tls { reason };
    let client_certificate = pem_certificate(client_certificate_pem)
        .ok_or_else(|| tls_error("PLUGIN_CLIENT_CERT holds no PEM certificate".into()))?;
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(|e| tls_error(e.to_string()))?;
    let mut params =
        rcgen::CertificateParams::new(vec!["localhost".to_owned()]).map_err(|e| tls_error(e.to_string()))?;
    params.distinguished_name.push(rcgen::DnType::CommonName, "localhost");
    params.distinguished_name.push(rcgen::DnType::OrganizationName, "Atrium");
    // Terraform puts this certificate itself in its root pool, so it needs no CA flag.
    params.is_ca = rcgen::IsCa::ExplicitNoCa;
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages =
        vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth, rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::seconds(30);
    params.not_after = now + time::Duration::days(365 * 10);
    let certificate = params.self_signed(&key).map_err(|e| tls_error(e.to_string()))?;
    let certificate_der = certificate.der().to_vec();

    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = Arc::new(PinnedClientCertificate {
        certificate: client_certificate,
        algorithms: provider.signature_verification_algorithms,
    });
    let private_key = PrivateKeyDer::try_from(key.serialize_der()).map_err(|e| tls_error(e.to_string()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![CertificateDer::from(certificate_der.clone())], private_key)
        .map_err(|e| tls_error(e.to_string()))?;
    // gRPC-Go (Terraform's client) insists on ALPN "h2".
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok((config, certificate_der))
}

fn pem_certificate(pem: &str) -> Option<CertificateDer<'static>> {
    let body: String = pem
        .lines()
        .skip_while(|line| !line.starts_with("-----BEGIN CERTIFICATE-----"))
        .skip(1)
        .take_while(|line| !line.starts_with("-----END CERTIFICATE-----"))
        .collect();
    let der = base64::engine::general_purpose::STANDARD.decode(body.trim()).ok()?;
    Some(CertificateDer::from(der))
}

/// The go-plugin controller and stdio services.
struct PluginServices {
    shutdown: Arc<Notify>,
}

#[tonic::async_trait]
impl go_plugin::grpc_controller_server::GrpcController for PluginServices {
    async fn shutdown(&self, _: Request<()>) -> Result<Response<()>, Status> {
        tracing::debug!("controller asked to shut down");
        self.shutdown.notify_one();
        Ok(Response::new(()))
    }
}

#[tonic::async_trait]
impl go_plugin::grpc_stdio_server::GrpcStdio for PluginServices {
    type StreamStdioStream = ReceiverStream<Result<go_plugin::StdioData, Status>>;

    async fn stream_stdio(&self, _: Request<()>) -> Result<Response<Self::StreamStdioStream>, Status> {
        // The provider writes nothing to stdout/stderr but logs, which go
        // through stderr directly; the stream stays open and empty until shutdown.
        let (sender, receiver) = mpsc::channel(1);
        let shutdown = Arc::clone(&self.shutdown);
        tokio::spawn(async move {
            tokio::select! {
                _ = sender.closed() => {}
                _ = shutdown.notified() => {}
            }
        });
        Ok(Response::new(ReceiverStream::new(receiver)))
    }
}

fn socket_path() -> PathBuf {
    let unique = format!(
        "atrium-plugin-{}-{}.sock",
        std::process::id(),
        time::OffsetDateTime::now_utc().unix_timestamp_nanos() % 1_000_000_000
    );
    std::env::temp_dir().join(unique)
}

struct SocketFile(PathBuf);

impl Drop for SocketFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Checks the environment Terraform sets before serving.
pub fn check_handshake_environment(cookie: Option<&str>, protocol_versions: Option<&str>) -> Result<(), PluginError> {
    if cookie != Some(MAGIC_COOKIE_VALUE) {
        return Err(PluginError::NotStartedByTerraform);
    }
    if let Some(offered) = protocol_versions
        && !offered.split(',').any(|v| v.trim() == "6")
    {
        return Err(PluginError::ProtocolMismatch { offered: offered.to_owned() });
    }
    Ok(())
}

/// Serves the provider until the controller's shutdown (or Ctrl-C in debug mode).
pub async fn serve(provider: Arc<AtriumProvider>, mode: Mode) -> Result<(), PluginError> {
    let path = socket_path();
    let listener = UnixListener::bind(&path).map_err(|source| PluginError::Socket { path: path.clone(), source })?;
    let _socket_file = SocketFile(path.clone());
    let shutdown = Arc::new(Notify::new());
    // Before the handshake line: a SIGTERM right after it must find the handler.
    stop_on_termination(Arc::clone(&shutdown), mode);

    let tls = match mode {
        Mode::Managed => match std::env::var("PLUGIN_CLIENT_CERT") {
            Ok(pem) if !pem.is_empty() => Some(tls_config(&pem)?),
            _ => None,
        },
        Mode::Debug => None,
    };
    match mode {
        Mode::Managed => {
            let certificate = tls
                .as_ref()
                .map(|(_, der)| base64::engine::general_purpose::STANDARD_NO_PAD.encode(der))
                .unwrap_or_default();
            println!("1|6|unix|{}|grpc|{}", path.display(), certificate);
            ignore_interrupts();
        }
        Mode::Debug => {
            print_reattach_instructions(&path);
            let shutdown = Arc::clone(&shutdown);
            tokio::spawn(async move {
                let _ = tokio::signal::ctrl_c().await;
                shutdown.notify_one();
            });
        }
    }
    let acceptor = tls.map(|(config, _)| tokio_rustls::TlsAcceptor::from(Arc::new(config)));
    let incoming = accept_connections(listener, acceptor);

    let services = PluginServices { shutdown: Arc::clone(&shutdown) };
    let stdio_services = PluginServices { shutdown: Arc::clone(&shutdown) };
    let provider_service = crate::proto::tfplugin6::provider_server::ProviderServer::from_arc(Arc::clone(&provider))
        .max_decoding_message_size(MAX_MESSAGE_SIZE)
        .max_encoding_message_size(MAX_MESSAGE_SIZE);
    let wait_for_shutdown = {
        let shutdown = Arc::clone(&shutdown);
        async move { shutdown.notified().await }
    };
    let result = tonic::transport::Server::builder()
        .add_service(provider_service)
        .add_service(go_plugin::grpc_controller_server::GrpcControllerServer::new(services))
        .add_service(go_plugin::grpc_stdio_server::GrpcStdioServer::new(stdio_services))
        .serve_with_incoming_shutdown(incoming, wait_for_shutdown)
        .await;
    provider.close().await;
    result.map_err(PluginError::Serve)
}

/// Accepts unix connections and completes TLS handshakes off the accept loop,
/// so one slow or hostile client cannot hold up the others.
fn accept_connections(
    listener: UnixListener,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
) -> ReceiverStream<std::io::Result<PluginConnection>> {
    let (sender, receiver) = mpsc::channel(16);
    tokio::spawn(async move {
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(error) => {
                    tracing::warn!(error = %error, "accepting a plugin connection failed");
                    continue;
                }
            };
            let sender = sender.clone();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let connection = match acceptor {
                    None => PluginConnection::Plain(stream),
                    Some(acceptor) => match acceptor.accept(stream).await {
                        Ok(tls) => PluginConnection::Tls(Box::new(tls)),
                        Err(error) => {
                            tracing::warn!(error = %error, "refused a plugin connection without Terraform's client certificate");
                            return;
                        }
                    },
                };
                let _ = sender.send(Ok(connection)).await;
            });
        }
    });
    ReceiverStream::new(receiver)
}

/// SIGTERM (a service manager, `kill`, or the parent Terraform dying: a
/// managed provider asks the kernel for SIGTERM then) stops the server like
/// the controller's shutdown: connections end, the registry is closed, and
/// the socket file is removed.
fn stop_on_termination(shutdown: Arc<Notify>, mode: Mode) {
    if mode == Mode::Managed {
        // SAFETY: prctl(PR_SET_PDEATHSIG) only sets this process's own parent-death signal.
        let result = unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM as libc::c_ulong, 0, 0, 0) };
        if result != 0 {
            tracing::debug!("cannot ask for SIGTERM when Terraform exits");
        }
    }
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut terminations) => {
            tokio::spawn(async move {
                if terminations.recv().await.is_some() {
                    tracing::info!("SIGTERM: stopping the provider");
                    shutdown.notify_one();
                }
            });
        }
        Err(error) => tracing::warn!(error = %error, "cannot handle SIGTERM"),
    }
}

/// Terraform sends SIGINT to its whole process group on Ctrl-C, then calls
/// StopProvider; dying on the signal would lose changes already made.
fn ignore_interrupts() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()) {
        Ok(mut interrupts) => {
            tokio::spawn(async move {
                while interrupts.recv().await.is_some() {
                    tracing::debug!("ignoring SIGINT; Terraform stops the provider through StopProvider");
                }
            });
        }
        Err(error) => tracing::warn!(error = %error, "cannot ignore SIGINT"),
    }
}

/// The `TF_REATTACH_PROVIDERS` value for a debug server on `path`.
pub fn reattach_value(path: &Path, pid: u32) -> String {
    serde_json::json!({
        PROVIDER_ADDRESS: {
            "Protocol": "grpc",
            "ProtocolVersion": 6,
            "Pid": pid,
            "Test": true,
            "Addr": {"Network": "unix", "String": path.display().to_string()}
        }
    })
    .to_string()
}

fn print_reattach_instructions(path: &Path) {
    let value = reattach_value(path, std::process::id());
    println!("Provider started in debug mode. To attach Terraform, set TF_REATTACH_PROVIDERS:");
    println!();
    println!("\tTF_REATTACH_PROVIDERS='{value}'");
    println!();
    println!("Press Ctrl-C to stop the provider.");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_requires_the_cookie_and_protocol_six() {
        assert!(matches!(check_handshake_environment(None, None), Err(PluginError::NotStartedByTerraform)));
        assert!(matches!(
            check_handshake_environment(Some("wrong"), Some("6")),
            Err(PluginError::NotStartedByTerraform)
        ));
        assert!(matches!(
            check_handshake_environment(Some(MAGIC_COOKIE_VALUE), Some("5")),
            Err(PluginError::ProtocolMismatch { .. })
        ));
        assert!(check_handshake_environment(Some(MAGIC_COOKIE_VALUE), Some("5,6")).is_ok());
    }

    #[test]
    fn reattach_value_names_the_provider_and_socket() {
        let value: serde_json::Value = serde_json::from_str(&reattach_value(Path::new("/tmp/x.sock"), 42)).unwrap();
        let entry = &value[PROVIDER_ADDRESS];
        assert_eq!(entry["ProtocolVersion"], 6);
        assert_eq!(entry["Addr"]["String"], "/tmp/x.sock");
        assert_eq!(entry["Pid"], 42);
    }

    #[test]
    fn tls_config_requires_the_announced_client_certificate() {
        let client_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        let client = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap().self_signed(&client_key).unwrap();
        let (config, server_der) = tls_config(&client.pem()).unwrap();
        assert!(!server_der.is_empty());
        assert_eq!(config.alpn_protocols, vec![b"h2".to_vec()]);
        let verifier = PinnedClientCertificate {
            certificate: CertificateDer::from(client.der().to_vec()),
            algorithms: rustls::crypto::aws_lc_rs::default_provider().signature_verification_algorithms,
        };
        assert!(verifier.client_auth_mandatory());
        assert!(verifier.verify_client_cert(client.der(), &[], UnixTime::now()).is_ok());
        let other_key = rcgen::KeyPair::generate().unwrap();
        let other = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap().self_signed(&other_key).unwrap();
        assert!(verifier.verify_client_cert(other.der(), &[], UnixTime::now()).is_err());
        assert!(verifier.supported_verify_schemes().contains(&SignatureScheme::ECDSA_NISTP521_SHA512));
    }
}
