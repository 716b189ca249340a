//! TLS for the HTTP API (`--tls-cert`, `--tls-key`) and for the client
//! subcommands (`--ca-cert`): PEM files read into rustls configurations with
//! the ring provider, errors that name the file and what is wrong with it.

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use rustls::crypto::ring::default_provider;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("reading certificates from {}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("parsing the PEM certificates in {}", path.display()))?;
    if certs.is_empty() {
        bail!(
            "{}: no PEM certificate (-----BEGIN CERTIFICATE-----) in it",
            path.display()
        );
    }
    Ok(certs)
}

/// The server side: the certificate chain (leaf first) and its private key
/// (PKCS#8, PKCS#1 or SEC1 PEM).
pub fn server_config(cert: &Path, key: &Path) -> Result<rustls::ServerConfig> {
    let chain = certificates(cert)?;
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("reading a PEM private key from {}", key.display()))?;
    rustls::ServerConfig::builder_with_provider(Arc::new(default_provider()))
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .with_context(|| {
            format!(
                "{} and its key do not make a usable TLS certificate",
                cert.display()
            )
        })
}

/// An HTTP client for the agent's API: plain http://, or https:// trusting
/// `ca` when given (else the system's public roots).
pub fn http_agent(timeout: std::time::Duration, ca: Option<&Path>) -> Result<ureq::Agent> {
    let mut agent = ureq::AgentBuilder::new().timeout(timeout);
    if let Some(ca) = ca {
        agent = agent.tls_config(Arc::new(client_config(ca)?));
    }
    Ok(agent.build())
}

/// The client side: trust exactly the certificates in `ca` (the agent's own
/// self-signed certificate, or the CA that signed it).
pub fn client_config(ca: &Path) -> Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in certificates(ca)? {
        roots
            .add(cert)
            .with_context(|| format!("{}: not a usable CA certificate", ca.display()))?;
    }
    Ok(
        rustls::ClientConfig::builder_with_provider(Arc::new(default_provider()))
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}
