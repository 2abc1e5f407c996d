//! The access-token claims the micro-benchmarks sign, verify and cache: one member of no
//! tenant, valid for 15 minutes from now.

use serde_json::Map;

use claimd::tokens::AccessClaims;

/// Claims of a typical member token issued by `issuer` at `now`.
pub fn member_claims(issuer: &str, now: u64) -> AccessClaims {
    let mut claims = AccessClaims::default();
    claims.iss = issuer.into();
    claims.sub = "01a20d3d-3b97-77c1-a337-a5020458a8b2".into();
    claims.aud = "claimd".into();
    claims.exp = now + 900;
    claims.iat = now;
    claims.jti = "01a20d3d-3bd5-71a6-a535-b30a9c061972".into();
    claims.sid = "01a20d3d-3bd5-71a6-a535-b309e2240407".into();
    claims.tid = None;
    claims.roles = vec!["member".into()];
    claims.plan = "free".into();
    claims.attrs = Map::new();
    claims.uv = 1;
    claims.tv = 0;
    claims
}
