//! JWK Set keys for `[auth.jwt] jwks_url`: fetched in the background at start-up and
//! every `jwks_refresh_interval` (retrying with backoff while the endpoint is down),
//! and on demand when a token names an unknown `kid`, at most once per
//! `jwks_min_refresh`. The key set is swapped atomically; readers take a snapshot.

use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Empty;
use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::reana::{fetch, https_client, HttpsClient};
use crate::config::{ConfigError, JwksConfig};

/// Deadline for one JWK Set fetch.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// First retry delay after a failed fetch; doubled up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// Longest retry delay after failed fetches (also capped at the refresh interval).
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// One usable key of the set.
pub(crate) struct JwksKey {
    kid: Option<String>,
    alg: Option<Algorithm>,
    key: DecodingKey,
}

/// A snapshot of the keys. `loaded` is false until a fetch has succeeded.
#[derive(Default)]
pub(crate) struct KeySet {
    keys: Vec<JwksKey>,
    loaded: bool,
}

impl KeySet {
    /// Whether a fetch has succeeded yet.
    pub(crate) fn loaded(&self) -> bool {
        self.loaded
    }

    /// Keys that may verify a token with header `kid` and `alg`: the keys with that
    /// `kid`, or every key when the token has none; keys announcing another `alg`
    /// are left out.
    pub(crate) fn candidates(&self, kid: Option<&str>, alg: Algorithm) -> Vec<&DecodingKey> {
        self.keys
            .iter()
            .filter(|k| kid.is_none() || k.kid.as_deref() == kid)
            .filter(|k| k.alg.is_none_or(|a| a == alg))
            .map(|k| &k.key)
            .collect()
    }
}

/// What an on-demand refresh did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refresh {
    /// A new set was fetched (or one fetched meanwhile by another caller is there).
    Done,
    /// The last attempt was less than `min_refresh` ago: nothing was fetched.
    TooSoon,
    /// The fetch failed; the old keys stay.
    Failed,
}

/// A JWK Set source with its current keys.
pub(crate) struct Jwks {
    url: String,
    refresh_interval: Duration,
    min_refresh: Duration,
    family: AlgorithmFamily,
    algorithms: Vec<Algorithm>,
    client: HttpsClient,
    keys: RwLock<Arc<KeySet>>,
    /// Start of the last fetch attempt; held while fetching (one fetch at a time).
    last_attempt: tokio::sync::Mutex<Option<Instant>>,
    /// Counts successful swaps (for callers that waited on someone else's fetch).
    generation: std::sync::atomic::AtomicU64,
    stop: CancellationToken,
}

impl Drop for Jwks {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Jwks {
    /// A source for `cfg` whose keys must fit `algorithms` (all of one family).
    pub(crate) fn new(cfg: &JwksConfig, algorithms: &[Algorithm]) -> Result<Self, ConfigError> {
        let family = algorithms
            .first()
            .map(|a| a.family())
            .ok_or_else(|| ConfigError::key("auth.jwt.algorithms", "list at least one"))?;
        if family == AlgorithmFamily::Hmac {
            return Err(ConfigError::key(
                "auth.jwt.jwks_url",
                "HS* algorithms need a shared secret (`secret` or `secret_file`), not a JWK Set",
            ));
        }
        cfg.url
            .parse::<http::Uri>()
            .map_err(|_| ConfigError::key("auth.jwt.jwks_url", "is not a URL"))?;
        Ok(Jwks {
            url: cfg.url.clone(),
            refresh_interval: cfg.refresh_interval,
            min_refresh: cfg.min_refresh,
            family,
            algorithms: algorithms.to_vec(),
            client: https_client(FETCH_TIMEOUT, 1, "auth.jwt.jwks_url")?,
            keys: RwLock::new(Arc::new(KeySet::default())),
            last_attempt: tokio::sync::Mutex::new(None),
            generation: Default::default(),
            stop: CancellationToken::new(),
        })
    }

    /// Counts the key sets installed so far: a verification made under one
    /// generation says nothing about a later one.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The current keys (a cheap snapshot; the lock is not held afterwards).
    pub(crate) fn snapshot(&self) -> Arc<KeySet> {
        Arc::clone(&self.keys.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Starts the background refresher: fetch now, then every `refresh_interval`;
    /// after a failure retry after 1 s, 2 s, 4 s … (at most 60 s or the interval).
    /// The task ends when the `Jwks` is dropped. Needs a Tokio runtime.
    pub(crate) fn spawn_refresher(self: &Arc<Self>) {
        let weak: Weak<Jwks> = Arc::downgrade(self);
        let stop = self.stop.clone();
        tokio::spawn(async move {
            let mut backoff = FIRST_BACKOFF;
            loop {
                let Some(jwks) = weak.upgrade() else { return };
                let ok = jwks.fetch_locked().await;
                let wait = if ok {
                    backoff = FIRST_BACKOFF;
                    jwks.refresh_interval
                } else {
                    let wait = backoff.min(jwks.refresh_interval).min(MAX_BACKOFF);
                    backoff = backoff.saturating_mul(2);
                    wait
                };
                drop(jwks);
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = stop.cancelled() => return,
                }
            }
        });
    }

    /// A refresh asked for by a token with an unknown `kid`: at most one fetch per
    /// `min_refresh`; callers arriving during a fetch wait for it and share its result.
    pub(crate) async fn refresh_on_demand(&self) -> Refresh {
        let seen = self.generation.load(std::sync::atomic::Ordering::Acquire);
        let mut last = self.last_attempt.lock().await;
        if self.generation.load(std::sync::atomic::Ordering::Acquire) != seen {
            return Refresh::Done;
        }
        if last.is_some_and(|t| t.elapsed() < self.min_refresh) {
            return Refresh::TooSoon;
        }
        *last = Some(Instant::now());
        if self.fetch().await {
            Refresh::Done
        } else {
            Refresh::Failed
        }
    }

    /// One fetch under the attempt lock (the background refresher's path).
    async fn fetch_locked(&self) -> bool {
        let mut last = self.last_attempt.lock().await;
        *last = Some(Instant::now());
        self.fetch().await
    }

    /// Fetches and swaps in the set; keeps the old keys when the fetch fails or the
    /// set has no usable key. Logs the outcome (the URL is configuration, not secret).
    async fn fetch(&self) -> bool {
        let req = match Request::get(&self.url).body(Empty::<Bytes>::new()) {
            Ok(req) => req,
            Err(_) => return false,
        };
        let result = match fetch(&self.client, req, FETCH_TIMEOUT).await {
            Ok((status, body)) if status.is_success() => self.parse(&body),
            Ok((status, _)) => Err(format!("status {}", status.as_u16())),
            Err(why) => Err(why.to_string()),
        };
        match result {
            Ok(set) => {
                tracing::info!(url = self.url, keys = set.keys.len(), "jwks loaded");
                *self.keys.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(set);
                self.generation
                    .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
                true
            }
            Err(error) => {
                tracing::warn!(url = self.url, %error, "jwks fetch failed; keeping the previous keys");
                false
            }
        }
    }

    /// The usable keys of a JWK Set document: signing keys of the configured family
    /// whose `alg`, when given, is one of the configured algorithms.
    fn parse(&self, body: &[u8]) -> Result<KeySet, String> {
        let set: JwkSet =
            serde_json::from_slice(body).map_err(|e| format!("not a JWK Set: {e}"))?;
        let keys: Vec<JwksKey> = set.keys.iter().filter_map(|jwk| self.usable(jwk)).collect();
        if keys.is_empty() {
            return Err(format!(
                "none of its {} keys fits the configured algorithms",
                set.keys.len()
            ));
        }
        Ok(KeySet { keys, loaded: true })
    }

    fn usable(&self, jwk: &Jwk) -> Option<JwksKey> {
        if matches!(
            jwk.common.public_key_use,
            Some(PublicKeyUse::Encryption | PublicKeyUse::Other(_))
        ) {
            return None;
        }
        let alg = match jwk.common.key_algorithm {
            Some(ka) => Some(Algorithm::try_from(ka).ok()?),
            None => None,
        };
        if alg.is_some_and(|a| !self.algorithms.contains(&a)) {
            return None;
        }
        let key = DecodingKey::from_jwk(jwk).ok()?;
        (key.family() == self.family).then(|| JwksKey {
            kid: jwk.common.key_id.clone(),
            alg,
            key,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const N: &str = "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw";

    fn jwks(algs: &[Algorithm]) -> Jwks {
        let cfg = JwksConfig {
            url: "http://127.0.0.1:1/jwks.json".into(),
            refresh_interval: Duration::from_secs(300),
            min_refresh: Duration::from_secs(30),
        };
        Jwks::new(&cfg, algs).expect("valid")
    }

    fn rsa(kid: &str, extra: serde_json::Value) -> serde_json::Value {
        let mut k = json!({"kty": "RSA", "kid": kid, "n": N, "e": "AQAB"});
        if let (Some(k), Some(extra)) = (k.as_object_mut(), extra.as_object()) {
            k.extend(extra.clone());
        }
        k
    }

    #[test]
    fn parse_keeps_signing_keys_of_the_family() {
        let j = jwks(&[Algorithm::RS256]);
        let doc = json!({"keys": [
            rsa("a", json!({})),
            rsa("b", json!({"use": "sig", "alg": "RS256"})),
            rsa("enc", json!({"use": "enc"})),
            rsa("ps", json!({"alg": "PS256"})),
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
            {"kty": "EC", "kid": "ec", "crv": "P-256",
             "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
             "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
        ]});
        let set = j.parse(doc.to_string().as_bytes()).expect("usable keys");
        let kids: Vec<_> = set.keys.iter().filter_map(|k| k.kid.as_deref()).collect();
        assert_eq!(kids, ["a", "b"]);
        assert!(set.loaded());
        assert_eq!(set.candidates(Some("b"), Algorithm::RS256).len(), 1);
        assert_eq!(set.candidates(Some("b"), Algorithm::RS384).len(), 0);
        assert_eq!(set.candidates(Some("zzz"), Algorithm::RS256).len(), 0);
        assert_eq!(set.candidates(None, Algorithm::RS256).len(), 2);
    }

    #[test]
    fn parse_rejects_documents_without_usable_keys() {
        let j = jwks(&[Algorithm::ES256]);
        assert!(j.parse(b"not json").is_err());
        assert!(j.parse(br#"{"keys": []}"#).is_err());
        let only_rsa = json!({"keys": [rsa("a", json!({}))]});
        assert!(j.parse(only_rsa.to_string().as_bytes()).is_err());
        assert!(!j.snapshot().loaded());
    }

    #[test]
    fn hmac_and_bad_urls_are_configuration_errors() {
        let cfg = JwksConfig {
            url: "http://127.0.0.1:1/jwks.json".into(),
            refresh_interval: Duration::from_secs(1),
            min_refresh: Duration::from_secs(1),
        };
        assert!(Jwks::new(&cfg, &[Algorithm::HS256]).is_err());
        let bad = JwksConfig {
            url: "http://exa mple/".into(),
            ..cfg
        };
        assert!(Jwks::new(&bad, &[Algorithm::RS256]).is_err());
    }

    #[tokio::test]
    async fn on_demand_refresh_is_rate_limited() {
        let j = jwks(&[Algorithm::RS256]);
        // Nothing listens on port 1: the first attempt fails, the next is too soon.
        let first = tokio::time::timeout(Duration::from_secs(15), j.refresh_on_demand()).await;
        assert_eq!(first, Ok(Refresh::Failed));
        let second = tokio::time::timeout(Duration::from_secs(15), j.refresh_on_demand()).await;
        assert_eq!(second, Ok(Refresh::TooSoon));
    }
}
