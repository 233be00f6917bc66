//! Tests of `credentials.rs`.

use super::*;

const GW: &str = "gw";

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (name, value) in pairs {
        let name = http::header::HeaderName::from_bytes(name.as_bytes()).expect("name");
        h.append(name, HeaderValue::from_str(value).expect("value"));
    }
    h
}

fn found(h: &HeaderMap, q: Option<&str>) -> Option<(CredentialSource, String)> {
    extract(h, q, GW).map(|c| (c.source(), c.secret().to_string()))
}

#[test]
fn bearer_scheme_is_case_insensitive_and_needs_a_token() {
    use CredentialSource::Bearer;
    let got = |v| found(&headers(&[("authorization", v)]), None);
    assert_eq!(got("Bearer abc"), Some((Bearer, "abc".into())));
    assert_eq!(got("bEaReR  abc "), Some((Bearer, "abc".into())));
    assert_eq!(got("Bearer "), None);
    assert_eq!(got("Basic dXNlcjpwdw=="), None);
    assert_eq!(got("Bearerabc"), None);
}

#[test]
fn sources_in_spec_order() {
    use CredentialSource::*;
    let all = [
        ("authorization", "Bearer b"),
        ("cookie", "gw=c"),
        ("cookie", "session=s"),
    ];
    let q = Some("token=t&access_token=a");
    assert_eq!(found(&headers(&all), q), Some((Bearer, "b".into())));
    assert_eq!(
        found(&headers(&all[1..]), q),
        Some((QueryAccessToken, "a".into()))
    );
    assert_eq!(
        found(&headers(&all[1..]), Some("x=1&token=t")),
        Some((QueryToken, "t".into()))
    );
    assert_eq!(
        found(&headers(&all[1..]), Some("x=1")),
        Some((GatewayCookie, "c".into()))
    );
    assert_eq!(
        found(&headers(&all[2..]), None),
        Some((ReanaSession, "s".into()))
    );
    assert_eq!(found(&headers(&[]), Some("x=1")), None);
}

#[test]
fn query_values_are_percent_decoded_and_empty_ones_skipped() {
    let h = headers(&[("cookie", "gw=c")]);
    assert_eq!(
        found(&h, Some("access_token=a%2Bb%3D&token=t")),
        Some((CredentialSource::QueryAccessToken, "a+b=".into()))
    );
    assert_eq!(
        found(&h, Some("access_token=&token=")),
        Some((CredentialSource::GatewayCookie, "c".into()))
    );
}

#[test]
fn cookies_from_several_headers() {
    let h = headers(&[
        ("cookie", "a=1; gw="),
        ("cookie", "session=s"),
        ("cookie", "b=2;  gw = \"tok\" ;c=3"),
    ]);
    let c = extract(&h, None, GW).expect("cookie found");
    assert_eq!(c.source(), CredentialSource::GatewayCookie);
    assert_eq!(c.secret(), "tok");
    assert!(!c.from_query());
    let h = headers(&[("cookie", "xgw=1; gwx=2"), ("cookie", "session=s")]);
    assert_eq!(
        found(&h, None),
        Some((CredentialSource::ReanaSession, "s".into()))
    );
}

#[test]
fn strip_query_keeps_others_verbatim() {
    assert_eq!(
        strip_query("a=1&access_token=x&b=%20&token=y").as_deref(),
        Some("a=1&b=%20")
    );
    assert_eq!(
        strip_query("acc%65ss_token=x&b=2&t%6Fken").as_deref(),
        Some("b=2")
    );
    assert_eq!(
        strip_query("tokens=1&x=a+b&&").as_deref(),
        Some("tokens=1&x=a+b")
    );
    assert_eq!(strip_query("access_token=x&token="), None);
    assert_eq!(strip_query(""), None);
}

#[test]
fn query_has_credential_detects_encoded_names() {
    assert!(query_has_credential("a=1&token="));
    assert!(query_has_credential("%61ccess_token=x"));
    assert!(!query_has_credential("tokens=1&my_token=2"));
}

#[test]
fn strip_request_credentials_keeps_other_cookies() {
    let mut h = headers(&[
        ("authorization", "Bearer b"),
        ("cookie", "a=1; gw=t"),
        ("cookie", "session=s"),
        ("cookie", "b=2;session=s;c=3"),
        ("x-other", "kept"),
    ]);
    strip_request_credentials(&mut h, GW);
    assert!(h.get(AUTHORIZATION).is_none());
    let cookies: Vec<_> = h.get_all(COOKIE).iter().collect();
    assert_eq!(cookies, ["a=1", "b=2; c=3"]);
    assert_eq!(h["x-other"], "kept");
    assert_eq!(extract(&h, None, GW), None);

    let mut h = headers(&[("cookie", "a=1;b=2")]);
    strip_request_credentials(&mut h, GW);
    assert_eq!(h[COOKIE], "a=1;b=2");
}

#[test]
fn debug_and_display_hide_the_secret() {
    let c = Credential::new(CredentialSource::Bearer, "s3cr3t-value");
    let debug = format!("{c:?}");
    assert_eq!(debug, "Credential { source: Bearer, secret: <redacted> }");
    assert!(!format!("{c}").contains("s3cr3t"));
    assert!(Credential::new(CredentialSource::QueryToken, "x").from_query());
}

#[test]
fn set_cookie_attributes() {
    let max_age = Duration::from_secs(3600);
    let v = set_cookie("gw", "a.b-c_d", "/w1/", max_age, true).expect("valid");
    assert_eq!(
        v,
        "gw=a.b-c_d; Path=/w1/; Max-Age=3600; HttpOnly; SameSite=Lax; Secure"
    );
    let v = set_cookie("gw", "tok", "/", max_age, false).expect("valid");
    assert_eq!(v, "gw=tok; Path=/; Max-Age=3600; HttpOnly; SameSite=Lax");
}

#[test]
fn set_cookie_rejects_unsafe_values() {
    let d = Duration::from_secs(60);
    assert!(set_cookie("gw", "a;b", "/", d, true).is_none());
    assert!(set_cookie("gw", "a b", "/", d, true).is_none());
    assert!(set_cookie("gw", "a\"b", "/", d, true).is_none());
    assert!(set_cookie("gw", "", "/", d, true).is_none());
    assert!(set_cookie("g w", "tok", "/", d, true).is_none());
    assert!(set_cookie("gw", "tok", "/x;Domain=evil", d, true).is_none());
}
