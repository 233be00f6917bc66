//! Local JWT verification (`[auth.jwt]`, SPEC §4): the key (or the JWK Set source)
//! and validation rules are built once at start-up; `verify` only decodes and checks.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{Map, Value};

use crate::auth::jwks::{Jwks, Refresh};
use crate::auth::verified::Verified;
use crate::auth::{AuthError, Identity, Verifier};
use crate::config::{ConfigError, JwtConfig, JwtKey};

/// Largest accepted `leeway_seconds` (jsonwebtoken computes `now - leeway`).
const MAX_LEEWAY_SECONDS: u64 = 86_400;

/// Where verification keys come from.
enum Keys {
    /// One key from the configuration.
    Static(DecodingKey),
    /// A JWK Set, refreshed in the background.
    Jwks(Arc<Jwks>),
}

/// Verifies JWTs with a key and validation rules built once at start-up (no
/// per-request key parsing).
pub struct JwtVerifier {
    keys: Keys,
    validation: Validation,
    user_claim: String,
    verified: Verified,
}

impl fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("algorithms", &self.validation.algorithms)
            .field("user_claim", &self.user_claim)
            .finish_non_exhaustive()
    }
}

impl JwtVerifier {
    /// Builds the key and validation. Fails (naming the `auth.jwt.*` key) when the
    /// algorithms mix key families (HS* / RS*+PS* / ES* / EdDSA), a secret is given for
    /// an asymmetric algorithm or a PEM for HS*, or the PEM is not a public key that
    /// fits every configured algorithm.
    pub fn new(cfg: &JwtConfig) -> Result<Self, ConfigError> {
        let first = *cfg
            .algorithms
            .first()
            .ok_or_else(|| ConfigError::key("auth.jwt.algorithms", "list at least one"))?;
        let family = first.family();
        if cfg.algorithms.iter().any(|a| a.family() != family) {
            return Err(ConfigError::key(
                "auth.jwt.algorithms",
                "mixes key families (HS*, RS*/PS*, ES*, EdDSA); one key serves one family",
            ));
        }
        if cfg.leeway_seconds > MAX_LEEWAY_SECONDS {
            return Err(ConfigError::key(
                "auth.jwt.leeway_seconds",
                format!("must be at most {MAX_LEEWAY_SECONDS}"),
            ));
        }
        let keys = match &cfg.key {
            JwtKey::Jwks(jwks) => Keys::Jwks(Arc::new(Jwks::new(jwks, &cfg.algorithms)?)),
            key => Keys::Static(decoding_key(family, key, &cfg.algorithms)?),
        };

        let mut validation = Validation::new(first);
        validation.algorithms = cfg.algorithms.clone();
        validation.leeway = cfg.leeway_seconds;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        let mut required = vec!["exp"];
        if let Some(issuer) = &cfg.issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        match &cfg.audience {
            Some(audience) => {
                validation.set_audience(audience.as_slice());
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);

        Ok(JwtVerifier {
            keys,
            validation,
            user_claim: cfg.user_claim.clone(),
            verified: Verified::default(),
        })
    }

    /// Starts the JWK Set refresher when keys come from `jwks_url` (needs a Tokio
    /// runtime); nothing otherwise.
    pub fn start(&self) {
        if let Keys::Jwks(jwks) = &self.keys {
            jwks.spawn_refresher();
        }
    }

    /// Verifies the signature (only the configured algorithms are accepted; `alg: none`
    /// never is), `exp` (required), `nbf` if present, and `iss`/`aud` when configured,
    /// all with `leeway_seconds`. Returns the user from `user_claim` (a non-empty
    /// string) and `expires_at` from `exp`. Error reasons are fixed strings: nothing
    /// from the token is ever echoed.
    ///
    /// With a JWK Set, a token whose `kid` is unknown (or, without `kid`, that no key
    /// verifies) triggers one rate-limited refresh and is checked again. No keys yet
    /// and no fetch possible → [`AuthError::Unavailable`].
    ///
    /// A success is reused for the same token for up to
    /// [`VERIFIED_TTL`](crate::auth::verified::VERIFIED_TTL) (never past
    /// its `exp`).
    pub async fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        let generation = match &self.keys {
            Keys::Static(_) => 0,
            Keys::Jwks(jwks) => jwks.generation(),
        };
        if let Some(identity) = self.verified.get(token, generation) {
            return Ok(identity);
        }
        let result = match &self.keys {
            Keys::Static(key) => self.verify_with(token, key),
            // Boxed: only a JWK Set can wait (for a refresh), and its state would
            // otherwise be part of every request's future.
            Keys::Jwks(jwks) => Box::pin(self.verify_jwks(jwks, token)).await,
        };
        if let Ok(identity) = &result {
            self.verified.insert(token, identity, generation);
        }
        result
    }

    async fn verify_jwks(&self, jwks: &Jwks, token: &str) -> Result<Identity, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| auth_error(e.kind()))?;
        if !self.validation.algorithms.contains(&header.alg) {
            return Err(AuthError::Invalid("algorithm not allowed"));
        }
        let kid = header.kid.as_deref();
        let first = self.try_keys(&jwks.snapshot(), token, kid, header.alg);
        if let Some(result) = first.clone().filter(|r| !needs_new_keys(r, kid)) {
            return result;
        }
        let loaded = jwks.snapshot().loaded();
        match jwks.refresh_on_demand().await {
            Refresh::Done => {}
            // Keys are there and were fetched recently: the kid is simply unknown.
            Refresh::TooSoon if loaded => {
                return first.unwrap_or(Err(AuthError::Invalid("unknown key id")))
            }
            Refresh::Failed if loaded && first.is_some() => {
                return first.unwrap_or(Err(AuthError::Unavailable))
            }
            // No keys yet, or the endpoint failed while a new key was needed.
            Refresh::TooSoon | Refresh::Failed => return Err(AuthError::Unavailable),
        }
        self.try_keys(&jwks.snapshot(), token, kid, header.alg)
            .unwrap_or(Err(AuthError::Invalid("unknown key id")))
    }

    /// The first success among the candidate keys, else the first failure; `None`
    /// when there is no candidate key at all.
    fn try_keys(
        &self,
        set: &crate::auth::jwks::KeySet,
        token: &str,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Option<Result<Identity, AuthError>> {
        let mut first_error = None;
        for key in set.candidates(kid, alg) {
            match self.verify_with(token, key) {
                Ok(identity) => return Some(Ok(identity)),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map(Err)
    }

    fn verify_with(&self, token: &str, key: &DecodingKey) -> Result<Identity, AuthError> {
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, key, &self.validation)
            .map_err(|e| auth_error(e.kind()))?;
        let mut claims = data.claims;
        let user = match claims.remove(&self.user_claim) {
            Some(Value::String(user)) if !user.is_empty() => user,
            _ => return Err(AuthError::Invalid("user claim missing")),
        };
        let exp = claims
            .get("exp")
            .and_then(numeric_date)
            .ok_or(AuthError::Invalid("exp missing"))?;
        let expires_at = UNIX_EPOCH
            .checked_add(Duration::from_secs(exp))
            .ok_or(AuthError::Invalid("bad claim format"))?;
        Ok(Identity {
            user: user.into(),
            expires_at: Some(expires_at),
            verifier: Verifier::Jwt,
        })
    }
}

/// Whether a JWK Set result may change with fresh keys: no candidate key, or a
/// kid-less token that no key verified.
fn needs_new_keys(result: &Result<Identity, AuthError>, kid: Option<&str>) -> bool {
    kid.is_none() && *result == Err(AuthError::Invalid("bad signature"))
}

/// A JWT NumericDate as whole seconds, read the way jsonwebtoken validated it.
fn numeric_date(value: &Value) -> Option<u64> {
    value.as_u64().or_else(|| {
        let secs = value.as_f64()?;
        (secs.is_finite() && secs >= 0.0 && secs < u64::MAX as f64).then(|| secs.round() as u64)
    })
}

/// Maps a jsonwebtoken error to a fixed reason.
fn auth_error(kind: &ErrorKind) -> AuthError {
    let reason = match kind {
        ErrorKind::ExpiredSignature => return AuthError::Expired,
        ErrorKind::InvalidSignature => "bad signature",
        ErrorKind::InvalidIssuer => "wrong issuer",
        ErrorKind::InvalidAudience => "wrong audience",
        ErrorKind::ImmatureSignature => "not yet valid",
        ErrorKind::InvalidAlgorithm
        | ErrorKind::MissingAlgorithm
        | ErrorKind::UnsupportedAlgorithm
        | ErrorKind::InvalidAlgorithmName => "algorithm not allowed",
        ErrorKind::MissingRequiredClaim(claim) => match claim.as_str() {
            "exp" => "exp missing",
            "iss" => "issuer missing",
            "aud" => "audience missing",
            _ => "claim missing",
        },
        ErrorKind::InvalidClaimFormat(_) => "bad claim format",
        ErrorKind::InvalidToken
        | ErrorKind::Base64(_)
        | ErrorKind::Json(_)
        | ErrorKind::Utf8(_) => "malformed token",
        // ErrorKind is #[non_exhaustive]: key and provider errors end up here.
        _ => "invalid token",
    };
    AuthError::Invalid(reason)
}

/// Parses a PEM public key into a [`DecodingKey`].
type PemParser = fn(&[u8]) -> jsonwebtoken::errors::Result<DecodingKey>;

/// Builds the decoding key for `family` and checks it fits every algorithm, so a bad
/// key fails at start-up instead of on every request.
fn decoding_key(
    family: AlgorithmFamily,
    key: &JwtKey,
    algorithms: &[Algorithm],
) -> Result<DecodingKey, ConfigError> {
    let parse: PemParser = match family {
        AlgorithmFamily::Hmac => return secret_key(key),
        AlgorithmFamily::Rsa => DecodingKey::from_rsa_pem,
        AlgorithmFamily::Ec => DecodingKey::from_ec_pem,
        AlgorithmFamily::Ed => DecodingKey::from_ed_pem,
    };
    let JwtKey::PublicKeyPem(pem) = key else {
        let why = format!("{family:?} algorithms need `public_key_file` (PEM), not a secret");
        return Err(ConfigError::key("auth.jwt.secret", why));
    };
    let bad = |why: String| ConfigError::key("auth.jwt.public_key_file", why);
    if pem.windows(11).any(|w| w == b"PRIVATE KEY") {
        return Err(bad("is a private key; give the public key".into()));
    }
    let key = parse(pem).map_err(|_| bad(format!("is not a {family:?} public key PEM")))?;
    // Parses the key material (RSA modulus, EC point length, Ed25519 length).
    Jwk::from_decoding_key(&key, None)
        .map_err(|_| bad(format!("is not a valid {family:?} public key")))?;
    for alg in algorithms {
        // Building the verifier parses the key for `alg` (e.g. the curve of ES256 vs
        // ES384); the empty signature itself is simply rejected.
        jsonwebtoken::crypto::verify("", b"", &key, *alg)
            .map_err(|_| bad(format!("the key does not fit {alg:?}")))?;
    }
    Ok(key)
}

/// The key for HS* algorithms.
fn secret_key(key: &JwtKey) -> Result<DecodingKey, ConfigError> {
    match key {
        JwtKey::Secret(secret) if !secret.is_empty() => Ok(DecodingKey::from_secret(secret)),
        JwtKey::Secret(_) => Err(ConfigError::key("auth.jwt.secret", "must not be empty")),
        JwtKey::PublicKeyPem(_) => Err(ConfigError::key(
            "auth.jwt.public_key_file",
            "HS* algorithms need a shared secret (`secret` or `secret_file`), not a PEM",
        )),
        JwtKey::Jwks(_) => Err(ConfigError::key(
            "auth.jwt.jwks_url",
            "HS* algorithms need a shared secret (`secret` or `secret_file`), not a JWK Set",
        )),
    }
}

/// Mints a token for development and tests (the `token` CLI subcommand): claims
/// `user_claim` = `user`, `iat`, `exp` = now + `ttl`, plus `iss` and `aud` (the first
/// audience) when configured. Needs an HS* configuration (the first algorithm signs).
pub fn mint(cfg: &JwtConfig, user: &str, ttl: Duration) -> Result<String, String> {
    let alg = *cfg
        .algorithms
        .first()
        .ok_or("no algorithm in `auth.jwt.algorithms`")?;
    let secret = match (&cfg.key, alg.family()) {
        (JwtKey::Secret(secret), AlgorithmFamily::Hmac) => secret,
        _ => {
            return Err(format!(
                "minting needs a shared secret (an HS* algorithm with `auth.jwt.secret`); \
                 this configuration verifies {alg:?} with a public key"
            ))
        }
    };
    if user.is_empty() {
        return Err("the user must not be empty".into());
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|_| "the system clock is before 1970".to_string())?
        .as_secs();
    let mut claims = Map::new();
    claims.insert("iat".into(), now.into());
    claims.insert("exp".into(), now.saturating_add(ttl.as_secs()).into());
    if let Some(issuer) = &cfg.issuer {
        claims.insert("iss".into(), issuer.as_str().into());
    }
    if let Some(audience) = cfg.audience.as_ref().and_then(|a| a.first()) {
        claims.insert("aud".into(), audience.as_str().into());
    }
    claims.insert(cfg.user_claim.clone(), user.into());
    jsonwebtoken::encode(
        &Header::new(alg),
        &claims,
        &EncodingKey::from_secret(secret),
    )
    .map_err(|e| format!("cannot sign the token: {e}"))
}

#[cfg(test)]
#[path = "jwt_tests.rs"]
mod tests;
