//! Tests of `jwt.rs`.
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
    verify(c, token).map(|id| id.user.to_string())
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
    let token =
        |iss: &str, aud: Value| hs(json!({"sub": "a", "exp": exp_in(600), "iss": iss, "aud": aud}));
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
    assert_eq!(&*id.user, "alice");
    let left = id
        .expires_at
        .and_then(|t| t.duration_since(SystemTime::now()).ok());
    assert!(left.is_some_and(|d| d > Duration::from_secs(590)));
    let rsa = cfg(&[RS256], pem(RSA_PUB));
    assert!(mint(&rsa, "alice", Duration::from_secs(1)).is_err());
    assert!(mint(&c, "", Duration::from_secs(1)).is_err());
}
