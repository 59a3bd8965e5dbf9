//! HTTPS served directly (`--tls-cert`, `--tls-key`): the certificate chain and key read from
//! PEM files at start, and read again on SIGHUP so that a renewed certificate takes effect
//! without a restart. A reload that fails keeps the configuration in force.

use anyhow::Context;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::TlsAcceptor;

/// The files and the configuration last read from them.
#[derive(Debug)]
pub struct TlsFiles {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Arc<ServerConfig>>,
}

impl TlsFiles {
    /// Reads the files; fails, naming the file, when either cannot be used.
    pub fn load(cert: &Path, key: &Path) -> anyhow::Result<Arc<TlsFiles>> {
        let config = read(cert, key)?;
        Ok(Arc::new(TlsFiles {
            cert: cert.to_owned(),
            key: key.to_owned(),
            current: RwLock::new(config),
        }))
    }

    /// Reads the files again; on success new connections use them, on failure nothing changes.
    pub fn reload(&self) -> anyhow::Result<()> {
        let config = read(&self.cert, &self.key)?;
        let mut current = self
            .current
            .write()
            .map_err(|_| anyhow::anyhow!("the TLS configuration lock is poisoned"))?;
        *current = config;
        Ok(())
    }

    /// An acceptor with the configuration in force now.
    pub(crate) fn acceptor(&self) -> Option<TlsAcceptor> {
        let current = self.current.read().ok()?;
        Some(TlsAcceptor::from(current.clone()))
    }
}

fn read(cert: &Path, key: &Path) -> anyhow::Result<Arc<ServerConfig>> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("reading the TLS certificate {}", cert.display()))?;
    if chain.is_empty() {
        anyhow::bail!("no certificate in {}", cert.display());
    }
    let private_key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("reading the TLS key {}", key.display()))?;
    // The provider is named: more than one may be compiled in, and rustls then picks none.
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(chain, private_key)
        .with_context(|| {
            format!(
                "the TLS key {} does not go with the certificate {}",
                key.display(),
                cert.display()
            )
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
