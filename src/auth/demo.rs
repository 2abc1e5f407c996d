//! The demo page's admin: with `demo.enabled`, `/demo` signs its admin panel in as the
//! account [`DEMO_ADMIN`] without a password. That account is created on first use with a
//! random password nobody is told (so no one can log in as it otherwise), and a session is
//! started for it only while it is still an enabled admin.
//!
//! What stands in for the password is the [`DemoKey`]: random at every start, held only in
//! memory, and printed once on claimd's standard output as part of the demo's URL
//! (`/demo#key=…`, a fragment no server or proxy log sees). A reverse proxy on the same host
//! forwards a loopback `Host`, so the loopback checks of `http::demo` alone could not keep
//! a remote client out; the key can: only whoever reads claimd's terminal has it.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::RngCore as _;

use secrecy::ExposeSecret as _;
use subtle::ConstantTimeEq as _;

use super::accounts::{Accounts, Registration};
use super::{AuthError, TokenResponse};
use crate::domain::Username;
use crate::secret::SecretString;

/// The key the demo page's admin panel must show: 32 random bytes in base64url, new at
/// every start, never stored or logged.
pub struct DemoKey(SecretString);

impl DemoKey {
    /// A fresh key.
    pub fn generate() -> DemoKey {
        let mut bytes = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut bytes);
        DemoKey(URL_SAFE_NO_PAD.encode(bytes).into())
    }

    /// The key's text, for the demo URL printed at start-up.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// Whether `presented` is this key (constant time).
    pub fn matches(&self, presented: &str) -> bool {
        self.expose().as_bytes().ct_eq(presented.as_bytes()).into()
    }
}

/// The account the demo's admin panel acts as.
pub const DEMO_ADMIN: &str = "demo-admin";

impl Accounts {
    /// A new session for [`DEMO_ADMIN`], creating the account first if it does not exist.
    /// The caller (the demo route) answers only the access token.
    ///
    /// # Errors
    /// `Forbidden` when an account of that name exists but is not an enabled admin (someone
    /// registered the name first: the demo will not hand out its session); storage errors.
    pub async fn demo_admin_session(&self) -> Result<TokenResponse, AuthError> {
        let name =
            Username::parse(DEMO_ADMIN).map_err(|why| AuthError::Internal(why.to_string()))?;
        if self.core.store.user_id_by_name(&name).await?.is_none() {
            let mut secret = [0u8; 32];
            rand::thread_rng().fill_bytes(&mut secret);
            let created = self
                .register(Registration {
                    username: DEMO_ADMIN.to_string(),
                    password: URL_SAFE_NO_PAD.encode(secret).into(),
                    tenant: None,
                    invitation: None,
                    roles: vec!["admin".to_string()],
                    email: None,
                })
                .await;
            match created {
                Ok(view) => tracing::info!(user = %view.id, "demo admin created"),
                Err(AuthError::UsernameTaken) => {}
                Err(err) => return Err(err),
            }
        }
        let id = self
            .core
            .store
            .user_id_by_name(&name)
            .await?
            .ok_or_else(|| AuthError::Internal("demo admin vanished".into()))?;
        let user = self
            .core
            .store
            .user(id)
            .await?
            .ok_or_else(|| AuthError::Internal("demo admin vanished".into()))?;
        if user.disabled || !user.roles.iter().any(|role| role == "admin") {
            return Err(AuthError::Forbidden(format!(
                "the account `{DEMO_ADMIN}` is not an enabled admin; the demo will not sign in as it"
            )));
        }
        self.sessions.start_session(id, &user).await
    }
}
