//! HTTPS against a real registry: Debian's `docker-registry` serving TLS with a certificate
//! from a throwaway CA made by `openssl`, asked with and without that CA trusted.

use std::path::Path;
use std::process::Command;

use super::*;
use crate::runtime::registry_process::RegistryProcess;

/// A registry serving TLS with a certificate for 127.0.0.1 from its own CA (`ca.pem`).
struct TlsRegistry {
    process: RegistryProcess,
    certs: tempfile::TempDir,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").current_dir(dir).args(args).output().expect("openssl runs");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A CA (`ca.pem`) and a server certificate for 127.0.0.1 that it signed.
fn certificates(dir: &Path) {
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
    let mut ca = vec!["req", "-x509", "-days", "2", "-subj", "/CN=slipway test CA", "-keyout", "ca.key"];
    ca.extend(ec);
    ca.extend(["-out", "ca.pem"]);
    openssl(dir, &ca);
    let mut csr = vec!["req", "-subj", "/CN=127.0.0.1", "-keyout", "key.pem", "-out", "leaf.csr"];
    csr.extend(ec);
    openssl(dir, &csr);
    std::fs::write(
        dir.join("leaf.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            "leaf.ext",
            "-out",
            "cert.pem",
        ],
    );
}

fn trusting(pem: &Path) -> Arc<ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    let text = std::fs::read(pem).unwrap();
    for cert in rustls::pki_types::pem::PemObject::pem_slice_iter(&text) {
        roots.add(cert.unwrap()).unwrap();
    }
    client_config(roots).unwrap()
}

impl TlsRegistry {
    async fn start() -> Self {
        let certs = tempfile::tempdir().unwrap();
        certificates(certs.path());
        let (cert, key) = (certs.path().join("cert.pem"), certs.path().join("key.pem"));
        let process = RegistryProcess::spawn(false, Some((&cert, &key)));
        let tls = trusting(&certs.path().join("ca.pem"));
        for _ in 0..100 {
            if request_with(&tls, &process.authority, Method::GET, "/v2/")
                .await
                .is_ok_and(|a| a.status == 200)
            {
                return Self { process, certs };
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("docker-registry did not answer over TLS on {}", process.authority);
    }
}

#[tokio::test]
async fn a_tls_registry_is_asked_over_https_and_an_untrusted_one_is_an_error_not_a_downgrade() {
    let reg = TlsRegistry::start().await;
    let tls = trusting(&reg.certs.path().join("ca.pem"));
    // Over TLS: a plain HTTP request would get 400 ("an HTTP request to an HTTPS server").
    let a = request_with(&tls, &reg.process.authority, Method::GET, "/v2/").await.unwrap();
    assert_eq!(a.status, 200);
    let missing = request_with(&tls, &reg.process.authority, Method::HEAD, "/v2/slipway/shop/manifests/v1")
        .await
        .unwrap();
    assert_eq!(missing.status, 404, "a tag the registry does not have");

    // A certificate from a CA this machine does not trust: an error naming TLS, never a
    // plain-HTTP retry (which would have answered 400 and looked like an answer).
    let stranger = tempfile::tempdir().unwrap();
    certificates(stranger.path());
    let other = trusting(&stranger.path().join("ca.pem"));
    let err = request_with(&other, &reg.process.authority, Method::GET, "/v2/").await.err().expect("refused");
    assert!(err.contains("TLS") && err.contains("certificate"), "{err}");
}
