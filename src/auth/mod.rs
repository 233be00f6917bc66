//! Authentication (who is calling) and authorization (may they see this workflow).
//!
//! Credentials are extracted by [`credentials`], verified by [`jwt`]; the verified
//! [`Identity`] is then checked against the route's owner.

pub mod credentials;
pub mod jwt;

use std::time::SystemTime;

/// A verified caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The user id (REANA user UUID, or the JWT's `user_claim`).
    pub user: String,
    /// When the credential stops being valid (a JWT's `exp`), if known.
    pub expires_at: Option<SystemTime>,
}

/// Why a credential was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No credential in the request.
    #[error("no credential")]
    Missing,
    /// The credential is malformed, badly signed, or has wrong claims. The reason is
    /// a fixed string (never the credential itself).
    #[error("invalid credential: {0}")]
    Invalid(&'static str),
    /// The credential has expired.
    #[error("credential expired")]
    Expired,
    /// The verifier (reana-server, the JWKS endpoint) could not answer and nothing
    /// valid is cached: the caller is refused, never let through.
    #[error("verifier unavailable")]
    Unavailable,
}

use crate::config::{AuthConfig, ConfigError};
use crate::routes::Route;
use credentials::{Credential, CredentialSource};
use jwt::JwtVerifier;

/// The verifiers configured at start-up.
pub struct Authenticator {
    jwt: Option<JwtVerifier>,
}

impl Authenticator {
    /// Builds every configured verifier (keys parsed once, here).
    pub fn new(config: &AuthConfig) -> Result<Self, ConfigError> {
        let jwt = config.jwt.as_ref().map(JwtVerifier::new).transpose()?;
        Ok(Authenticator { jwt })
    }

    /// Verifies `credential` and returns who it belongs to.
    pub async fn authenticate(
        &self,
        credential: Option<&Credential>,
    ) -> Result<Identity, AuthError> {
        let credential = credential.ok_or(AuthError::Missing)?;
        match credential.source() {
            // REANA's session cookie can only be checked by reana-server.
            CredentialSource::ReanaSession => Err(AuthError::Missing),
            CredentialSource::Bearer
            | CredentialSource::QueryAccessToken
            | CredentialSource::QueryToken
            | CredentialSource::GatewayCookie => match &self.jwt {
                Some(jwt) => jwt.verify(credential.secret()),
                None => Err(AuthError::Invalid("no verifier for this credential")),
            },
        }
    }

    /// Whether `identity` may open `route`: only its owner.
    pub fn authorize(&self, identity: &Identity, route: &Route) -> bool {
        identity.user == route.owner
    }
}
