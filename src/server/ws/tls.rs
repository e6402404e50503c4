//! WSS: the certificate chain and key for `wss_port`, loaded at start-up so
//! that a bad file is reported before hbd detaches.

use std::io::{self, ErrorKind};
use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;

/// The secure listener: `wss_port` with the certificate of `cert_path`.
pub struct Tls {
    pub listener: TcpListener,
    pub config: Arc<ServerConfig>,
}

/// Reads the certificate chain and key; errors name the file and what is wrong.
pub fn load_tls(cert: &Path, key: &Path) -> io::Result<Arc<ServerConfig>> {
    let invalid =
        |path: &Path, what: String| io::Error::new(ErrorKind::InvalidData, format!("{}: {what}", path.display()));
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| invalid(cert, format!("cannot read certificates: {e}")))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(cert, format!("bad certificate: {e}")))?;
    if chain.is_empty() {
        return Err(invalid(cert, "holds no PEM certificate".into()));
    }
    let key_der =
        PrivateKeyDer::from_pem_file(key).map_err(|e| invalid(key, format!("cannot read a private key: {e}")))?;
    let config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(|e| invalid(cert, format!("certificate and key {} do not fit: {e}", key.display())))?;
    Ok(Arc::new(config))
}
