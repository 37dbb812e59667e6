//! Node credentials for the tests against the real control plane
//! (`tests/env/up --control-plane`): a TLS bootstrap as berth makes it, and
//! the subject of the requests it leaves behind.

use std::path::Path;
use std::time::Duration;

use kubelet::certificate::{BootstrapConfig, ClientCertSource, load_client_cert};

/// Bootstraps `node` from the control plane's bootstrap kubeconfig into
/// `dir` (`kubelet.conf`, `pki/`); returns the config and the CSR's name.
pub async fn bootstrap(dir: &Path, node: &str) -> (BootstrapConfig, String) {
    let mut cfg = BootstrapConfig::new(
        dir.join("kubelet.conf"),
        Some(test_support::cluster::bootstrap_kubeconfig()),
        dir.join("pki"),
        node,
    );
    cfg.csr_timeout = Duration::from_secs(60);
    match load_client_cert(&cfg).await {
        Ok(ClientCertSource::Bootstrapped { csr_name, .. }) => (cfg, csr_name),
        other => panic!("bootstrap of {node}: {other:?}"),
    }
}

/// The text of a PEM certificate request's DER, in which its subject's
/// names (`system:node:<node>`) can be found.
pub fn csr_subject(request: &[u8]) -> String {
    use base64::Engine;
    let pem = String::from_utf8_lossy(request);
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body.as_bytes())
        .unwrap_or_default();
    String::from_utf8_lossy(&der).into_owned()
}
