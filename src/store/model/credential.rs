//! The server's own credentials as both backends store them: signing keys
//! ([`KeyRecord`]) and service credentials ([`ServiceRecord`]).

/// A signing key as the store hands it out (its on-disk shapes are in `disk::key`).
#[derive(Clone, PartialEq)]
pub struct KeyRecord {
    /// The JOSE `alg` name.
    pub alg: String,
    /// PKCS#8 PEM, or the base64url HMAC secret for HS256.
    pub private_key: String,
    pub created_at: u64,
    /// From this unix second the key signs new tokens.
    pub signs_from: u64,
    /// Reserved, always `None` today: when a key stops signing is derived from its
    /// successor's `signs_from` (see `KeyRing`), so it cannot disagree with the ring.
    pub retired_at: Option<u64>,
}

impl std::fmt::Debug for KeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRecord")
            .field("alg", &self.alg)
            .field("created_at", &self.created_at)
            .field("signs_from", &self.signs_from)
            .field("retired_at", &self.retired_at)
            .finish_non_exhaustive()
    }
}

/// A service credential as the store hands it out (its on-disk shapes are in
/// `disk::service`).
#[derive(Clone, PartialEq)]
pub struct ServiceRecord {
    pub name: String,
    /// SHA-256 of the client secret.
    pub secret_digest: [u8; 32],
    pub created_at: u64,
}

impl std::fmt::Debug for ServiceRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceRecord")
            .field("name", &self.name)
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}
