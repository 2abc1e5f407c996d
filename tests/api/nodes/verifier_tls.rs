//! claimd-verify reaching claimd over HTTPS: claimd behind a TLS-terminating relay whose
//! certificate is issued by a private CA. The library's `rustls` feature checks the
//! certificate against Mozilla's roots, so it refuses this one; given an HTTP client of
//! the service's own that trusts the CA, it starts, verifies, and follows the change feed
//! through TLS.

use std::sync::Arc;
use std::time::{Duration, Instant};

use claimd_verify::{Verifier, VerifierConfig, VerifyError};
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use tokio_rustls::rustls;

use crate::helpers::spawn_app_with_admin;

/// A TLS server for `localhost` on a port of its own, relaying the plain bytes to claimd.
struct TlsRelay {
    port: u16,
    /// The private CA's certificate (DER), for a client that trusts it.
    ca: Vec<u8>,
    task: tokio::task::JoinHandle<()>,
}

impl TlsRelay {
    async fn start(claimd_port: u16) -> TlsRelay {
        let ca_key = KeyPair::generate().expect("a CA key");
        let mut ca_params = CertificateParams::new(Vec::new()).expect("CA parameters");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).expect("the CA certificate");
        let leaf_key = KeyPair::generate().expect("a server key");
        let leaf = CertificateParams::new(vec!["localhost".to_string()])
            .expect("server parameters")
            .signed_by(&leaf_key, &ca, &ca_key)
            .expect("the server certificate");
        // The one crypto provider built in (ring), as reqwest's client uses.
        let server = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(
                vec![leaf.der().clone()],
                rustls::pki_types::PrivatePkcs8KeyDer::from(leaf_key.serialize_der()).into(),
            )
            .expect("the server's TLS configuration");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the TLS relay");
        let port = listener.local_addr().expect("relay address").port();
        let task = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(inbound).await else {
                        return; // a client that refused the certificate
                    };
                    if let Ok(mut claimd) =
                        tokio::net::TcpStream::connect(("127.0.0.1", claimd_port)).await
                    {
                        let _ = tokio::io::copy_bidirectional(&mut tls, &mut claimd).await;
                    }
                });
            }
        });
        TlsRelay {
            port,
            ca: ca.der().to_vec(),
            task,
        }
    }
}

impl Drop for TlsRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test]
async fn over_https_it_trusts_only_what_its_client_trusts_and_follows_the_feed() {
    let (app, admin) =
        spawn_app_with_admin(|s| s.events.heartbeat = Duration::from_millis(200)).await;
    let service = app.create_service_ok(&admin.access_token, "verifier").await;
    let (_, alice) = app.signed_up("alice").await;
    let relay = TlsRelay::start(app.port).await;
    let base_url = format!("https://localhost:{}", relay.port);
    let builder = || {
        VerifierConfig::builder(
            &base_url,
            service.client_id.clone(),
            service.client_secret.clone(),
        )
        .max_staleness(Duration::from_secs(1))
        .start_timeout(Duration::from_secs(5))
    };

    // The `rustls` feature's own client checks against Mozilla's roots: a private CA's
    // certificate is refused, so nothing is fetched from an unverified claimd.
    let refused = Verifier::start(builder().build().expect("https with the rustls feature"))
        .await
        .err()
        .expect("a certificate of an unknown CA is refused");
    assert!(
        refused.to_string().contains("certificate"),
        "the refusal names the certificate: {refused}"
    );

    let trusting = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_der(&relay.ca).expect("the CA"))
        .build()
        .expect("a client trusting the CA");
    let config = builder()
        .http_client(trusting)
        .build()
        .expect("a valid configuration");
    let verifier = Verifier::start(config)
        .await
        .expect("the verifier starts over TLS");
    let claims = verifier
        .verify(&alice.access_token)
        .await
        .unwrap_or_else(|err| panic!("accepted over TLS, got {}: {err}", err.code()));
    assert_eq!(
        claims.sub,
        alice.claims()["sub"].as_str().unwrap_or_default()
    );

    // A revocation reaches it through the feed over TLS.
    assert_eq!(app.logout(&alice.access_token).await.status(), 204);
    let started = Instant::now();
    loop {
        match verifier.verify(&alice.access_token).await {
            Err(VerifyError::Revoked) => break,
            other if started.elapsed() > Duration::from_secs(5) => {
                panic!("the logout did not reach the verifier over TLS: {other:?}")
            }
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}
