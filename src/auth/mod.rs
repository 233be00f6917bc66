//! Authentication (who is calling) and authorization (may they see this workflow).
//!
//! Credentials are extracted by [`credentials`] and verified by [`jwt`] (local keys
//! or a JWK Set, [`jwks`]) or by reana-server ([`reana`], behind [`cache`]); the
//! verified [`Identity`] is then checked against the route's owner and, for other
//! REANA users, against reana-server's sharing. [`limiter`] refuses clients with too
//! many failures before any of this runs.

pub mod cache;
pub mod credentials;
pub mod jwks;
pub mod jwt;
pub mod limiter;
pub mod reana;
pub mod verified;

use std::sync::Arc;
use std::time::SystemTime;

use crate::config::{AuthConfig, ConfigError};
use crate::routes::Route;
use credentials::{Credential, CredentialSource};
use jwt::JwtVerifier;
use limiter::FailureLimiter;
use reana::{Reana, ReanaCredential};

/// Which verifier accepted a credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verifier {
    /// A JWT checked locally (`[auth.jwt]`).
    Jwt,
    /// A REANA token or session checked by reana-server (`[auth.reana]`).
    Reana,
}

/// A verified caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The user id (REANA user UUID, or the JWT's `user_claim`).
    pub user: Arc<str>,
    /// When the credential stops being valid (a JWT's `exp`), if known.
    pub expires_at: Option<SystemTime>,
    /// Who vouched for the credential (an introspected one is re-checked later).
    pub verifier: Verifier,
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

/// What an identity may do with a workflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// The owner: everything.
    Owner,
    /// Shared with the user by reana-server: read-only (GET/HEAD and WebSocket).
    Shared,
    /// Nothing.
    Denied,
}

/// The verifiers and the failure limiter, built at start-up.
pub struct Authenticator {
    jwt: Option<JwtVerifier>,
    reana: Option<Reana>,
    limiter: FailureLimiter,
}

impl Authenticator {
    /// Builds every configured verifier (keys parsed once, here). Makes no request
    /// and needs no runtime: background work begins with [`Authenticator::start`].
    pub fn new(config: &AuthConfig) -> Result<Self, ConfigError> {
        let jwt = config.jwt.as_ref().map(JwtVerifier::new).transpose()?;
        let reana = config.reana.as_ref().map(Reana::new).transpose()?;
        Ok(Authenticator {
            jwt,
            reana,
            limiter: FailureLimiter::new(&config.rate_limit),
        })
    }

    /// Starts background work (the JWK Set refresher). Call once, inside a Tokio
    /// runtime; it ends when the authenticator is dropped.
    pub fn start(&self) {
        if let Some(jwt) = &self.jwt {
            jwt.start();
        }
    }

    /// The failed-authentication limiter.
    pub fn limiter(&self) -> &FailureLimiter {
        &self.limiter
    }

    /// Number of reana-server decisions cached (0 without `[auth.reana]`).
    pub fn cached_decisions(&self) -> usize {
        self.reana.as_ref().map_or(0, Reana::cached_decisions)
    }

    /// Verifies `credential` and returns who it belongs to. A token that looks like
    /// a JWT goes to `[auth.jwt]` when configured; other tokens and the `session`
    /// cookie go to reana-server when `[auth.reana]` is configured.
    pub async fn authenticate(&self, credential: &Credential) -> Result<Identity, AuthError> {
        match self.via(credential) {
            Via::Jwt(jwt) => jwt.verify(credential.secret()).await,
            Via::Reana(reana, cred) => {
                // Boxed, like the check below: reana-server's client keeps a large
                // state, which would otherwise be part of every request's future.
                let user = Box::pin(reana.identify(cred)).await?;
                Ok(Identity {
                    user,
                    expires_at: None,
                    verifier: Verifier::Reana,
                })
            }
            Via::None(error) => Err(error),
        }
    }

    /// Whether `identity` (verified from `credential`) may open `route`: its owner
    /// always; another user authenticated by reana-server when reana-server shows
    /// them the workflow (`GET /api/workflows/<id>/status` → 200). reana-server
    /// unreachable with nothing cached → [`AuthError::Unavailable`].
    pub async fn authorize(
        &self,
        identity: &Identity,
        credential: &Credential,
        route: &Route,
    ) -> Result<Access, AuthError> {
        if *identity.user == *route.owner {
            return Ok(Access::Owner);
        }
        let Via::Reana(reana, cred) = self.via(credential) else {
            return Ok(Access::Denied);
        };
        if identity.verifier != Verifier::Reana {
            return Ok(Access::Denied);
        }
        Ok(if Box::pin(reana.visible(cred, &route.workflow)).await? {
            Access::Shared
        } else {
            Access::Denied
        })
    }

    /// Which verifier handles `credential`.
    fn via<'a>(&'a self, credential: &'a Credential) -> Via<'a> {
        let secret = credential.secret();
        match credential.source() {
            CredentialSource::ReanaSession => match &self.reana {
                Some(reana) => Via::Reana(reana, ReanaCredential::Session(secret)),
                // Without [auth.reana] the session cookie means nothing to us.
                None => Via::None(AuthError::Missing),
            },
            CredentialSource::Bearer
            | CredentialSource::QueryAccessToken
            | CredentialSource::QueryToken
            | CredentialSource::GatewayCookie => match (&self.jwt, &self.reana) {
                // The token's shape only matters when both verifiers could take it.
                (Some(jwt), None) => Via::Jwt(jwt),
                (Some(jwt), Some(_)) if looks_like_jwt(secret) => Via::Jwt(jwt),
                (_, Some(reana)) => Via::Reana(reana, ReanaCredential::Token(secret)),
                (None, None) => Via::None(AuthError::Invalid("no verifier for this credential")),
            },
        }
    }
}

/// The verifier chosen for one credential.
enum Via<'a> {
    Jwt(&'a JwtVerifier),
    Reana(&'a Reana, ReanaCredential<'a>),
    None(AuthError),
}

/// Three non-empty base64url segments separated by dots (a JWS compact
/// serialization). REANA access tokens are single base64url strings.
pub fn looks_like_jwt(token: &str) -> bool {
    let bytes = token.as_bytes();
    // Whole-slice passes without early exits: the compiler runs them on vectors, and
    // a token is checked on every request.
    let alphabet = bytes.iter().fold(true, |ok, &b| {
        let letter = (b | 0x20).wrapping_sub(b'a') < 26;
        let digit = b.wrapping_sub(b'0') < 10;
        ok & (letter | digit | (b == b'-') | (b == b'_') | (b == b'.'))
    });
    if !alphabet || bytes.iter().filter(|&&b| b == b'.').count() != 2 {
        return false;
    }
    let first = bytes.iter().position(|&b| b == b'.');
    let last = bytes.iter().rposition(|&b| b == b'.');
    matches!((first, last), (Some(first), Some(last)) if first > 0 && last > first + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, JwtConfig};

    fn config(extra: &str) -> AuthConfig {
        let text = format!(
            "[auth]\n[auth.jwt]\nalgorithms = [\"HS256\"]\nsecret = \"0123456789abcdef0123456789abcdef\"\n{extra}\n[discovery]\nkind = \"static\"\n"
        );
        Config::from_toml(&text).expect("valid config").auth
    }

    fn route(owner: &str) -> Route {
        Route {
            workflow: "w1".into(),
            upstream: "127.0.0.1:1".into(),
            owner: owner.into(),
            ready: true,
        }
    }

    fn jwt_cfg(auth: &AuthConfig) -> &JwtConfig {
        auth.jwt.as_ref().expect("jwt")
    }

    #[test]
    fn jwt_shape() {
        assert!(looks_like_jwt("eyJh.eyJz.c2ln"));
        assert!(looks_like_jwt("a-_.b.")); // unsigned: still a JWT, rejected later
        assert!(!looks_like_jwt("Xk2s9fPq_7Lm3nBv-0aZ1w"));
        assert!(!looks_like_jwt("a.b"));
        assert!(!looks_like_jwt("a.b.c.d"));
        assert!(!looks_like_jwt("a..c"));
        assert!(!looks_like_jwt("a.b+c.d"));
        assert!(!looks_like_jwt(".b.c"));
        assert!(!looks_like_jwt("a.b.c@"));
        assert!(!looks_like_jwt("a.b.c\u{e9}"));
        assert!(!looks_like_jwt("a.b.c{")); // `{` is `[` | 0x20
        assert!(!looks_like_jwt(""));
    }

    #[tokio::test]
    async fn jwt_only_configuration() {
        let auth = config("");
        let a = Authenticator::new(&auth).expect("authenticator");
        let token =
            jwt::mint(jwt_cfg(&auth), "alice", std::time::Duration::from_secs(60)).expect("mint");
        let cred = Credential::new(CredentialSource::Bearer, token);
        let id = a.authenticate(&cred).await.expect("valid");
        assert_eq!((&*id.user, id.verifier), ("alice", Verifier::Jwt));
        assert_eq!(
            a.authorize(&id, &cred, &route("alice")).await,
            Ok(Access::Owner)
        );
        assert_eq!(
            a.authorize(&id, &cred, &route("bob")).await,
            Ok(Access::Denied)
        );
        let session = Credential::new(CredentialSource::ReanaSession, "s");
        assert_eq!(a.authenticate(&session).await, Err(AuthError::Missing));
        let opaque = Credential::new(CredentialSource::QueryAccessToken, "Xk2s9fPq_7Lm3nBv-0aZ1w");
        assert!(matches!(
            a.authenticate(&opaque).await,
            Err(AuthError::Invalid(_))
        ));
        assert_eq!(a.cached_decisions(), 0);
    }

    #[tokio::test]
    async fn opaque_tokens_and_sessions_go_to_reana() {
        let auth = config("[auth.reana]\nserver_url = \"http://127.0.0.1:9\"\ntimeout = \"2s\"\n");
        let a = Authenticator::new(&auth).expect("authenticator");
        for cred in [
            Credential::new(CredentialSource::ReanaSession, "s"),
            Credential::new(CredentialSource::GatewayCookie, "Xk2s9fPq_7Lm3nBv-0aZ1w"),
        ] {
            assert!(matches!(a.via(&cred), Via::Reana(..)));
        }
        let token =
            jwt::mint(jwt_cfg(&auth), "alice", std::time::Duration::from_secs(60)).expect("mint");
        let cred = Credential::new(CredentialSource::Bearer, token);
        assert!(matches!(a.via(&cred), Via::Jwt(_)));
        // A JWT user who is not the owner is never sent to reana-server.
        let id = a.authenticate(&cred).await.expect("valid");
        assert_eq!(
            a.authorize(&id, &cred, &route("bob")).await,
            Ok(Access::Denied)
        );
    }
}
