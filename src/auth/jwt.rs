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
    pub async fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        match &self.keys {
            Keys::Static(key) => self.verify_with(token, key),
            Keys::Jwks(jwks) => self.verify_jwks(jwks, token).await,
        }
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
            user,
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
mod tests {
    use super::*;
    use crate::auth::AuthError::{Expired, Invalid};
    use base64::{engine::general_purpose::URL_SAFE_NO_PAD as B64, Engine};
    use serde_json::json;
    use Algorithm::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-test";
    macro_rules! key {
        ($file:literal) => {
            include_bytes!(concat!("../../tests/fixtures/keys/", $file)).as_slice()
        };
    }
    const RSA_PUB: &[u8] = key!("rsa_public.pem");
    const RSA_PRIV: &[u8] = key!("rsa_private.pem");
    const P256_PUB: &[u8] = key!("ec_p256_public.pem");

    fn cfg(algorithms: &[Algorithm], key: JwtKey) -> JwtConfig {
        JwtConfig {
            algorithms: algorithms.to_vec(),
            key,
            issuer: None,
            audience: None,
            leeway_seconds: 0,
            user_claim: "sub".into(),
        }
    }
    fn pem(p: &[u8]) -> JwtKey {
        JwtKey::PublicKeyPem(p.to_vec())
    }
    fn hs256() -> JwtConfig {
        cfg(&[HS256], JwtKey::Secret(SECRET.to_vec()))
    }
    fn exp_in(secs: i64) -> u64 {
        jsonwebtoken::get_current_timestamp().saturating_add_signed(secs)
    }
    fn sign(alg: Algorithm, key: &EncodingKey, claims: &Value) -> String {
        jsonwebtoken::encode(&Header::new(alg), claims, key).expect("sign")
    }
    fn hs(claims: Value) -> String {
        sign(HS256, &EncodingKey::from_secret(SECRET), &claims)
    }
    fn good() -> Value {
        json!({"sub": "alice", "exp": exp_in(600)})
    }
    fn verify(c: &JwtConfig, token: &str) -> Result<Identity, AuthError> {
        let v = JwtVerifier::new(c).expect("valid config");
        match &v.keys {
            Keys::Static(key) => v.verify_with(token, key),
            Keys::Jwks(_) => panic!("static keys only"),
        }
    }
    fn user(c: &JwtConfig, token: &str) -> Result<String, AuthError> {
        verify(c, token).map(|id| id.user)
    }

    #[test]
    fn every_family_accepts_a_good_token() {
        let rsa = || EncodingKey::from_rsa_pem(RSA_PRIV).expect("rsa");
        let (hmac, secret) = (
            EncodingKey::from_secret(SECRET),
            JwtKey::Secret(SECRET.to_vec()),
        );
        let ec256 = EncodingKey::from_ec_pem(key!("ec_p256_private.pem")).expect("p256");
        let ec384 = EncodingKey::from_ec_pem(key!("ec_p384_private.pem")).expect("p384");
        let ed = EncodingKey::from_ed_pem(key!("ed25519_private.pem")).expect("ed");
        let cases = [
            (HS256, hmac.clone(), secret.clone()),
            (HS384, hmac.clone(), secret.clone()),
            (HS512, hmac, secret),
            (RS256, rsa(), pem(RSA_PUB)),
            (PS256, rsa(), pem(RSA_PUB)),
            (ES256, ec256, pem(P256_PUB)),
            (ES384, ec384, pem(key!("ec_p384_public.pem"))),
            (EdDSA, ed, pem(key!("ed25519_public.pem"))),
        ];
        let exp = exp_in(600);
        let want = Identity {
            user: "alice".into(),
            expires_at: Some(UNIX_EPOCH + Duration::from_secs(exp)),
            verifier: Verifier::Jwt,
        };
        for (alg, signing, key) in cases {
            let token = sign(alg, &signing, &json!({"sub": "alice", "exp": exp}));
            assert_eq!(
                verify(&cfg(&[alg], key), &token),
                Ok(want.clone()),
                "{alg:?}"
            );
        }
    }

    #[test]
    fn wrong_key_is_rejected() {
        let wrong = EncodingKey::from_rsa_pem(key!("rsa_wrong_private.pem")).expect("rsa");
        let rsa = cfg(&[RS256, PS256], pem(RSA_PUB));
        for alg in [RS256, PS256] {
            let token = sign(alg, &wrong, &good());
            assert_eq!(user(&rsa, &token), Err(Invalid("bad signature")));
        }
        let wrong = EncodingKey::from_secret(b"another-secret-of-at-least-32-bytes");
        let token = sign(HS256, &wrong, &good());
        assert_eq!(user(&hs256(), &token), Err(Invalid("bad signature")));
        let ed = EncodingKey::from_ed_pem(key!("ed25519_private.pem")).expect("ed");
        let token = sign(EdDSA, &ed, &good());
        let ec = cfg(&[ES256], pem(P256_PUB));
        assert_eq!(user(&ec, &token), Err(Invalid("algorithm not allowed")));
    }

    #[test]
    fn expiry_leeway_and_nbf() {
        let mut c = hs256();
        c.leeway_seconds = 30;
        let expired = hs(json!({"sub": "alice", "exp": exp_in(-100)}));
        assert_eq!(user(&c, &expired), Err(Expired));
        c.leeway_seconds = 300;
        assert_eq!(user(&c, &expired), Ok("alice".into()));
        let early = hs(json!({"sub": "a", "exp": exp_in(900), "nbf": exp_in(600)}));
        assert_eq!(user(&c, &early), Err(Invalid("not yet valid")));
        let almost = hs(json!({"sub": "a", "exp": exp_in(900), "nbf": exp_in(200)}));
        assert_eq!(user(&c, &almost), Ok("a".into()));
        let no_exp = hs(json!({"sub": "alice"}));
        assert_eq!(user(&c, &no_exp), Err(Invalid("exp missing")));
    }

    #[test]
    fn issuer_and_audience() {
        let mut c = hs256();
        c.issuer = Some("https://reana.example.org".into());
        c.audience = Some(vec!["dask".into(), "other".into()]);
        let token = |iss: &str, aud: Value| {
            hs(json!({"sub": "a", "exp": exp_in(600), "iss": iss, "aud": aud}))
        };
        let reana = "https://reana.example.org";
        assert_eq!(user(&c, &token(reana, json!("other"))), Ok("a".into()));
        assert_eq!(
            user(&c, &token(reana, json!(["x", "dask"]))),
            Ok("a".into())
        );
        let evil = token("https://evil.example.org", json!("dask"));
        assert_eq!(user(&c, &evil), Err(Invalid("wrong issuer")));
        assert_eq!(
            user(&c, &token(reana, json!("no"))),
            Err(Invalid("wrong audience"))
        );
        let no_iss = hs(json!({"sub": "a", "exp": exp_in(600), "aud": "dask"}));
        assert_eq!(user(&c, &no_iss), Err(Invalid("issuer missing")));
        let no_aud = hs(json!({"sub": "a", "exp": exp_in(600), "iss": reana}));
        assert_eq!(user(&c, &no_aud), Err(Invalid("audience missing")));
        // Without a configured issuer/audience, a token's `iss`/`aud` are not checked.
        assert_eq!(user(&hs256(), &token("x", json!("any"))), Ok("a".into()));
    }

    #[test]
    fn forged_tokens_are_rejected() {
        let b64 = |v: Value| B64.encode(v.to_string());
        let none = format!(
            "{}.{}.",
            b64(json!({"alg": "none", "typ": "JWT"})),
            b64(good())
        );
        assert!(matches!(user(&hs256(), &none), Err(Invalid(_))));
        let token = hs(good());
        let parts: Vec<&str> = token.split('.').collect();
        let forged = b64(json!({"sub": "mallory", "exp": exp_in(600)}));
        let tampered = format!("{}.{forged}.{}", parts[0], parts[2]);
        assert_eq!(user(&hs256(), &tampered), Err(Invalid("bad signature")));
        let hs384 = sign(HS384, &EncodingKey::from_secret(SECRET), &good());
        assert_eq!(
            user(&hs256(), &hs384),
            Err(Invalid("algorithm not allowed"))
        );
        for junk in ["", "abc", "a.b.c", "a.b.c.d"] {
            assert_eq!(user(&hs256(), junk), Err(Invalid("malformed token")));
        }
        // Key confusion: an RS256 verifier must not accept HS256 keyed by its public PEM.
        let confused = sign(HS256, &EncodingKey::from_secret(RSA_PUB), &good());
        let rsa = cfg(&[RS256], pem(RSA_PUB));
        assert_eq!(user(&rsa, &confused), Err(Invalid("algorithm not allowed")));
    }

    #[test]
    fn custom_user_claim() {
        let mut c = hs256();
        c.user_claim = "preferred_username".into();
        let exp = exp_in(600);
        let with = |name: Value| hs(json!({"sub": "u-1", "preferred_username": name, "exp": exp}));
        assert_eq!(user(&c, &with(json!("bob"))), Ok("bob".into()));
        let missing = hs(json!({"sub": "u-1", "exp": exp}));
        for token in [missing, with(json!("")), with(json!(7)), with(Value::Null)] {
            assert_eq!(user(&c, &token), Err(Invalid("user claim missing")));
        }
    }

    #[test]
    fn bad_configurations_are_rejected() {
        let err = |c: JwtConfig| JwtVerifier::new(&c).expect_err("must be rejected").0;
        let secret = || JwtKey::Secret(SECRET.to_vec());
        assert!(err(cfg(&[HS256, RS256], secret())).contains("auth.jwt.algorithms"));
        assert!(err(cfg(&[RS256, ES256], pem(RSA_PUB))).contains("auth.jwt.algorithms"));
        assert!(err(cfg(&[], secret())).contains("auth.jwt.algorithms"));
        assert!(err(cfg(&[RS256], secret())).contains("auth.jwt.secret"));
        assert!(err(cfg(&[HS256], JwtKey::Secret(vec![]))).contains("auth.jwt.secret"));
        assert!(err(cfg(&[HS256], pem(RSA_PUB))).contains("auth.jwt.public_key_file"));
        let pem_err = |alg, key: &[u8]| err(cfg(&[alg], pem(key)));
        assert!(pem_err(RS256, b"not a pem").contains("auth.jwt.public_key_file"));
        assert!(pem_err(RS256, RSA_PRIV).contains("private key"));
        // A private key relabelled as public parses as PEM but is no public key.
        let relabelled = |k: &[u8]| String::from_utf8_lossy(k).replace("PRIVATE", "PUBLIC");
        let fake_rsa = relabelled(RSA_PRIV);
        assert!(pem_err(RS256, fake_rsa.as_bytes()).contains("not a valid"));
        let fake_ed = relabelled(key!("ed25519_private.pem"));
        assert!(pem_err(EdDSA, fake_ed.as_bytes()).contains("not a valid"));
        assert!(pem_err(ES256, RSA_PUB).contains("auth.jwt.public_key_file"));
        assert!(pem_err(ES256, key!("ec_p384_public.pem")).contains("ES256"));
        assert!(pem_err(EdDSA, P256_PUB).contains("auth.jwt.public_key_file"));
        assert!(err(cfg(&[ES256, ES384], pem(P256_PUB))).contains("ES384"));
        let mut c = hs256();
        c.leeway_seconds = u64::MAX;
        assert!(err(c).contains("auth.jwt.leeway_seconds"));
    }

    #[test]
    fn mint_round_trips() {
        let mut c = hs256();
        c.algorithms = vec![HS512, HS256];
        c.issuer = Some("gw".into());
        c.audience = Some(vec!["dask".into()]);
        let token = mint(&c, "alice", Duration::from_secs(600)).expect("mint");
        let id = verify(&c, &token).expect("valid");
        assert_eq!(id.user, "alice");
        let left = id
            .expires_at
            .and_then(|t| t.duration_since(SystemTime::now()).ok());
        assert!(left.is_some_and(|d| d > Duration::from_secs(590)));
        let rsa = cfg(&[RS256], pem(RSA_PUB));
        assert!(mint(&rsa, "alice", Duration::from_secs(1)).is_err());
        assert!(mint(&c, "", Duration::from_secs(1)).is_err());
    }
}
