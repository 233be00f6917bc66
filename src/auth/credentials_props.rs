//! Properties of credential extraction and stripping: whatever a request carries,
//! nothing the gateway accepts as a credential is forwarded, everything else is.

use http::header::{HeaderName, AUTHORIZATION, COOKIE, REFERER};
use percent_encoding::percent_decode;
use proptest::prelude::*;
use proptest::sample::select;

use super::*;
use crate::props::header_value;

/// The gateway's cookie name in these properties.
const GW: &str = "dask_dashboard_token";

/// Letters, digits and what else a secret or a value is made of.
const ALNUM: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-";
/// Lowercase letters.
const LOWER: &str = "abcdefghijklmnopqrstuvwxyz";

/// A secret no other generated piece can contain (the others are lowercase, and no
/// other value starts with `S3`).
fn secret() -> impl Strategy<Value = String> {
    crate::props::chars(ALNUM, 1..24).prop_map(|s| format!("S3CR3T{s}"))
}

/// A piece of one of a request's parts: kept (and expected verbatim downstream) or a
/// credential (expected gone). Generated with `{s}` standing for the secret and `{e}`
/// for it with its first byte percent-encoded.
#[derive(Debug, Clone)]
enum Piece {
    Kept(String),
    Credential(String),
}

impl Piece {
    fn fill(&mut self, secret: &str) {
        if let Piece::Credential(s) = self {
            let encoded = format!("%{:02X}{}", secret.as_bytes()[0], &secret[1..]);
            *s = s.replace("{s}", secret).replace("{e}", &encoded);
        }
    }
}

/// Query (or fragment) parameters, credential ones anywhere.
fn params() -> impl Strategy<Value = Vec<Piece>> {
    let names = select(&[
        "access_token",
        "token",
        "acc%65ss_token",
        "t%6Fken",
        "%74oken",
    ]);
    let credential = (names, select(&["{s}", "{e}", ""]))
        .prop_map(|(name, value)| Piece::Credential(format!("{name}={value}")));
    let name = prop_oneof![
        select(&["tokens", "my_token", "x", "a", "b", "tok", "en"]).prop_map(str::to_owned),
        crate::props::chars(LOWER, 1..6),
    ];
    let value = proptest::option::of(crate::props::chars("abc019%+./=", 0..6));
    let kept = (name, value)
        .prop_map(|(n, v)| v.map_or(n.clone(), |v| format!("{n}={v}")))
        .prop_filter("a credential name", |p| !is_credential_param(p.as_bytes()))
        .prop_map(Piece::Kept);
    proptest::collection::vec(prop_oneof![2 => kept, 1 => credential], 0..6)
}

/// Parameters joined with `&`, some empty ones included (they are dropped).
fn join_params(pieces: &[Piece], doubled: bool) -> String {
    let all = pieces.iter().map(|p| match p {
        Piece::Kept(s) | Piece::Credential(s) => s.as_str(),
    });
    all.collect::<Vec<_>>()
        .join(if doubled { "&&" } else { "&" })
}

/// The kept parameters joined with `&`, as they must come out.
fn kept_params_of(pieces: &[Piece]) -> String {
    let kept = pieces.iter().filter_map(|p| match p {
        Piece::Kept(s) => Some(s.as_str()),
        Piece::Credential(_) => None,
    });
    kept.collect::<Vec<_>>().join("&")
}

/// Cookies: other cookies (names near the secret ones included) and the gateway's
/// and REANA's cookies, however spaced or quoted.
fn cookies() -> impl Strategy<Value = Vec<Piece>> {
    let forms = select(&["{n}={s}", " {n} = {s} ", "{n}=\"{s}\"", "{n}=", "{n}={s}=x"]);
    let name = select(&[GW, REANA_SESSION_COOKIE]);
    let credential =
        (forms, name).prop_map(|(form, name)| Piece::Credential(form.replace("{n}", name)));
    let names = prop_oneof![
        select(&[
            "Session",
            "xsession",
            "session2",
            "dask_dashboard_token2",
            "gw"
        ])
        .prop_map(str::to_owned),
        crate::props::chars("abcdefgijklmnos_", 1..8),
    ];
    let value = prop_oneof![
        Just(String::new()),
        crate::props::chars("abc01=%\"", 0..6).prop_map(|v| format!("={v}")),
        crate::props::chars("abc", 1..3).prop_map(|v| format!("=x {v}")),
    ];
    let kept = (names, value)
        .prop_filter("a credential name", |(n, _)| {
            n != GW && n != REANA_SESSION_COOKIE
        })
        .prop_map(|(n, v)| Piece::Kept(format!("{n}{v}")));
    proptest::collection::vec(prop_oneof![2 => kept, 1 => credential], 0..8)
}

/// A request's credential-bearing parts, each holding the secret in some places.
#[derive(Debug, Clone)]
struct Request {
    secret: String,
    authorization: Option<String>,
    /// Cookie pieces and the separator after each; a `None` separator starts a new
    /// `Cookie` header.
    cookies: Vec<(Piece, Option<&'static str>)>,
    query: Vec<Piece>,
    doubled: bool,
    referer: Option<(Vec<Piece>, Option<Vec<Piece>>)>,
}

/// A request with the secret in some of the places a credential is taken from, and
/// other cookies and parameters around it.
fn request() -> impl Strategy<Value = Request> {
    let separator = select(&[Some(";"), Some("; "), Some(" ; "), Some(";;"), None]);
    let separators = proptest::collection::vec(separator, 8);
    let auth = select(&["Bearer {s}", "bearer  {s} ", "Basic dTpw", "Bearer other"]);
    let referer = proptest::option::of((params(), proptest::option::of(params())));
    let parts = (cookies(), separators, params(), any::<bool>(), referer);
    (secret(), proptest::option::of(auth), parts).prop_map(|(secret, auth, parts)| {
        let (cookies, separators, mut query, doubled, mut referer) = parts;
        let mut cookies: Vec<_> = cookies.into_iter().zip(separators).collect();
        let referer_params = referer
            .iter_mut()
            .flat_map(|(q, f)| q.iter_mut().chain(f.iter_mut().flatten()));
        let all = cookies
            .iter_mut()
            .map(|(p, _)| p)
            .chain(query.iter_mut())
            .chain(referer_params);
        for piece in all {
            piece.fill(&secret);
        }
        Request {
            authorization: auth.map(|a| a.replace("{s}", &secret)),
            secret,
            cookies,
            query,
            doubled,
            referer,
        }
    })
}

const PAGE: &str = "https://reana.example/dashboard/wf/status";

impl Request {
    fn headers(&self) -> HeaderMap {
        let mut h = HeaderMap::new();
        let value = |s: &str| HeaderValue::from_str(s).expect("generated values are valid");
        if let Some(a) = &self.authorization {
            h.append(AUTHORIZATION, value(a));
        }
        let mut cookie = String::new();
        for (piece, separator) in &self.cookies {
            let (Piece::Kept(s) | Piece::Credential(s)) = piece;
            cookie.push_str(s);
            match separator {
                Some(sep) => cookie.push_str(sep),
                None => {
                    h.append(COOKIE, value(&std::mem::take(&mut cookie)));
                }
            }
        }
        if !cookie.is_empty() {
            h.append(COOKIE, value(&cookie));
        }
        if let Some((query, fragment)) = &self.referer {
            let mut referer = format!("{PAGE}?{}", join_params(query, self.doubled));
            if let Some(fragment) = fragment {
                referer.push('#');
                referer.push_str(&join_params(fragment, false));
            }
            h.append(REFERER, value(&referer));
        }
        h.append(HeaderName::from_static("x-other"), value("kept; as=is"));
        h
    }

    fn query(&self) -> String {
        join_params(&self.query, self.doubled)
    }

    /// The other cookies, in order, as the scheduler must get them.
    fn kept_cookies(&self) -> Vec<String> {
        let kept = self.cookies.iter().filter_map(|(p, _)| match p {
            Piece::Kept(s) => Some(s.trim().to_owned()),
            Piece::Credential(_) => None,
        });
        kept.filter(|s| !s.is_empty()).collect()
    }
}

/// True when `text`, as it is or percent-decoded, holds `secret`.
fn holds(text: &[u8], secret: &str) -> bool {
    let decoded: Vec<u8> = percent_decode(text).collect();
    let find = |t: &[u8]| memchr::memmem::find(t, secret.as_bytes()).is_some();
    find(text) || find(&decoded)
}

/// The `;`-separated, trimmed, non-empty pieces of every `Cookie` header, in order.
fn cookie_pieces(h: &HeaderMap) -> Vec<String> {
    let all = h.get_all(COOKIE).iter().flat_map(|v| {
        let text = v.to_str().expect("generated cookies are ASCII");
        text.split(';')
            .map(|p| p.trim().to_owned())
            .collect::<Vec<_>>()
    });
    all.filter(|p| !p.is_empty()).collect()
}

/// Bytes made mostly of the pieces credentials are made of, plus any byte at all.
fn tricky_bytes() -> impl Strategy<Value = Vec<u8>> {
    let token = prop_oneof![
        3 => select(&[
            "gw", "session", "=", ";", " ", "\"", "\t", "token", "access_token", "?", "#",
            "&", "%74", "%", "+", "Bearer ", "x", "\u{e9}",
        ]).prop_map(|t| t.as_bytes().to_vec()),
        1 => any::<u8>().prop_map(|b| vec![b]),
    ];
    proptest::collection::vec(token, 0..16).prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(crate::props::config())]

    /// After stripping, the secret is in no header (as sent or percent-decoded), not
    /// in the query, and nothing is left for `extract` to find; every other cookie,
    /// query and Referer parameter is kept byte-for-byte and in order.
    #[test]
    fn stripping_leaves_no_credential(req in request()) {
        let mut h = req.headers();
        strip_request_credentials(&mut h, GW);
        let query = strip_query(&req.query());
        for (name, value) in &h {
            prop_assert!(!holds(value.as_bytes(), &req.secret), "{name}: {value:?}");
        }
        prop_assert!(!query.as_deref().is_some_and(|q| holds(q.as_bytes(), &req.secret)));
        prop_assert_eq!(extract(&h, query.as_deref(), GW), None);

        let want_query = kept_params_of(&req.query);
        prop_assert_eq!(query.as_deref().unwrap_or_default(), want_query);
        prop_assert_eq!(cookie_pieces(&h), req.kept_cookies());
        prop_assert!(h.get(AUTHORIZATION).is_none());
        prop_assert_eq!(h["x-other"].as_bytes(), b"kept; as=is");
        let referers: Vec<&[u8]> = h.get_all(REFERER).iter().map(|v| v.as_bytes()).collect();
        if let Some((params, fragment)) = &req.referer {
            let carried = params.iter().chain(fragment.iter().flatten())
                .any(|p| matches!(p, Piece::Credential(_)));
            let kept = kept_params_of(params);
            let want = if !carried {
                req.headers()[REFERER].as_bytes().to_vec()
            } else if kept.is_empty() {
                PAGE.as_bytes().to_vec()
            } else {
                format!("{PAGE}?{kept}").into_bytes()
            };
            prop_assert_eq!(referers, [want.as_slice()]);
        } else {
            prop_assert!(referers.is_empty());
        }
    }

    /// On any bytes at all: neither extracting nor stripping panics, after stripping
    /// `extract` finds nothing, and no Referer holds a credential parameter.
    #[test]
    fn stripping_any_bytes(
        authorization in proptest::option::of(tricky_bytes()),
        cookies in proptest::collection::vec(tricky_bytes(), 0..3),
        referer in proptest::option::of(tricky_bytes()),
        query in proptest::option::of(prop_oneof![
            crate::props::text(0..12),
            crate::props::joined(&["token", "access_token", "%74oken", "=", "&", "%", "+"], 0..8),
        ]),
        gateway_cookie in prop_oneof![
            Just(GW.to_owned()),
            Just(String::new()),
            crate::props::chars("az=; ", 1..4),
        ],
    ) {
        let mut h = HeaderMap::new();
        if let Some(a) = authorization {
            h.append(AUTHORIZATION, header_value(&a));
        }
        for c in cookies {
            h.append(COOKIE, header_value(&c));
        }
        if let Some(r) = referer {
            h.append(REFERER, header_value(&r));
        }
        let _ = extract(&h, query.as_deref(), &gateway_cookie);
        strip_request_credentials(&mut h, &gateway_cookie);
        let query = query.as_deref().and_then(strip_query);
        prop_assert_eq!(extract(&h, query.as_deref(), &gateway_cookie), None);
        prop_assert!(!query.as_deref().is_some_and(query_has_credential));
        for value in h.get_all(REFERER) {
            let (_, query, fragment) = url_parts(value.as_bytes());
            prop_assert!(!query.is_some_and(has_credential_param), "{value:?}");
            prop_assert!(!fragment.is_some_and(has_credential_param), "{value:?}");
        }
    }

    /// `extract` takes the first source in SPEC §4 order that holds a non-empty
    /// credential, whatever else the request carries.
    #[test]
    fn extract_follows_spec_order(
        present in proptest::array::uniform5(any::<bool>()),
        decoys in proptest::array::uniform5(any::<bool>()),
        encode in any::<bool>(),
    ) {
        use CredentialSource::*;
        let sources = [Bearer, QueryAccessToken, QueryToken, GatewayCookie, ReanaSession];
        let secrets = ["Sb", "Sa+b", "St", "Sg", "Sr"];
        let mut h = HeaderMap::new();
        let (mut query, mut cookie) = (Vec::new(), vec!["a=1".to_owned()]);
        for (i, source) in sources.iter().enumerate() {
            let value = |s: &str| if present[i] { s.to_owned() } else { String::new() };
            match source {
                Bearer if present[i] || decoys[i] => {
                    let a = if present[i] { "Bearer Sb" } else { "Bearer " };
                    h.append(AUTHORIZATION, HeaderValue::from_static(a));
                }
                QueryAccessToken | QueryToken if present[i] || decoys[i] => {
                    let name = if *source == QueryToken { "token" } else { "access_token" };
                    let v = value(secrets[i]);
                    let v = if encode { v.replace('+', "%2B") } else { v };
                    query.push(format!("{name}={v}"));
                }
                GatewayCookie | ReanaSession if present[i] || decoys[i] => {
                    let name = if *source == GatewayCookie { GW } else { REANA_SESSION_COOKIE };
                    cookie.push(format!("{name}={}", value(secrets[i])));
                }
                _ => {}
            }
        }
        query.push("x=1".to_owned());
        h.append(COOKIE, HeaderValue::from_str(&cookie.join("; ")).expect("cookie"));
        let query = query.join("&");
        let want = (0..5).find(|&i| present[i]).map(|i| {
            // A `+` in a query value is a space (form encoding), `%2B` a plus.
            let plus_is_space = (1..3).contains(&i) && !encode;
            let secret = secrets[i].replace('+', if plus_is_space { " " } else { "+" });
            (sources[i], secret)
        });
        let got = extract(&h, Some(&query), GW).map(|c| (c.source(), c.secret().to_owned()));
        prop_assert_eq!(got, want);
    }
}
