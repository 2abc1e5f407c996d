//! Micro-benchmarks of the CPU-bound token work: minting and verifying an access token for
//! each algorithm, and checking a refresh-token MAC. `cargo bench --bench tokens`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable,
    clippy::disallowed_methods,
    reason = "a benchmark's harness stops at the first surprise and measures real time"
)]

use criterion::{criterion_group, criterion_main, Criterion};

use claimd::config::{SigningAlgorithm, TokenSettings};
use claimd::domain::SessionId;
use claimd::tokens::keys::{generate_private_key, load_signing_key};
use claimd::tokens::{
    mint_refresh_token, AccessTokens, KeyRing, PresentedRefreshToken, SessionKey,
};

#[path = "support/claims.rs"]
mod support_claims;
use support_claims::member_claims;

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn access_tokens(c: &mut Criterion) {
    for alg in [
        SigningAlgorithm::EdDSA,
        SigningAlgorithm::ES256,
        SigningAlgorithm::RS256,
        SigningAlgorithm::HS256,
    ] {
        let settings = TokenSettings {
            algorithm: alg,
            ..TokenSettings::default()
        };
        let tokens = AccessTokens::new(&settings);
        let pem = generate_private_key(alg).expect("key generation");
        let ring = KeyRing::new(vec![
            load_signing_key("bench", alg, &pem, 0).expect("key loads")
        ]);
        let key = ring.signing_key(now()).expect("a signing key");
        let claims = member_claims(&settings.issuer, now());
        c.bench_function(&format!("mint/{}", alg.as_str()), |b| {
            b.iter(|| tokens.mint(key, &claims).expect("mint"))
        });
        let token = tokens.mint(key, &claims).expect("mint");
        c.bench_function(&format!("verify/{}", alg.as_str()), |b| {
            b.iter(|| tokens.verify(&ring, &token, now()).expect("verify"))
        });
    }
}

fn refresh_mac(c: &mut Criterion) {
    let key = SessionKey::generate();
    let token = mint_refresh_token(SessionId::generate(), &key, 42);
    c.bench_function("refresh_token/parse+mac", |b| {
        b.iter(|| {
            PresentedRefreshToken::parse(&token)
                .expect("parses")
                .mac_is_valid(&key)
        })
    });
}

criterion_group!(benches, access_tokens, refresh_mac);
criterion_main!(benches);
