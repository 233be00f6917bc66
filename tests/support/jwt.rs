//! The one way the tests mint JWTs: HS256 with [`SECRET`] (what every test gateway
//! verifies unless its configuration says otherwise), or any algorithm and key.

use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header};

/// The HS256 secret of every test gateway ([`super::config::GatewayConfig::new`]).
pub const SECRET: &str = "gateway-test-secret-0123456789abcdef-0123456789";

/// A token for `user` signed with `key` under `header`, whose `exp` is `exp_offset`
/// seconds from now (negative: already expired).
pub fn sign(header: &Header, key: &EncodingKey, user: &str, exp_offset: i64) -> String {
    let now = jsonwebtoken::get_current_timestamp();
    let claims = serde_json::json!({
        "sub": user,
        "iat": now,
        "exp": now.saturating_add_signed(exp_offset),
    });
    jsonwebtoken::encode(header, &claims, key).expect("sign a test JWT")
}

/// An HS256 token for `user` signed with [`SECRET`], `exp` `exp_offset` seconds
/// from now. `exp` is whole seconds: a token of 2 s lives between 1 and 2 s.
pub fn with_exp(user: &str, exp_offset: i64) -> String {
    sign(
        &Header::new(Algorithm::HS256),
        &EncodingKey::from_secret(SECRET.as_bytes()),
        user,
        exp_offset,
    )
}

/// An HS256 token for `user` signed with [`SECRET`], valid for `lifetime`.
pub fn token(user: &str, lifetime: Duration) -> String {
    with_exp(user, i64::try_from(lifetime.as_secs()).expect("lifetime"))
}
