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

/// The `Referer` values left after [`strip_request_credentials`].
fn referers_after(referers: &[&str]) -> Vec<String> {
    let pairs: Vec<(&str, &str)> = referers.iter().map(|r| ("referer", *r)).collect();
    let mut h = headers(&pairs);
    strip_request_credentials(&mut h, GW);
    let values = h.get_all(http::header::REFERER).iter();
    values
        .map(|v| v.to_str().expect("ascii").to_owned())
        .collect()
}

#[test]
fn referer_loses_query_credentials() {
    let base = "https://reana.example/dashboard/wf/status";
    #[rustfmt::skip]
    let cases: &[(&str, &str)] = &[
        // Only the token: no `?` is left.
        ("?access_token=SECRET", ""),
        ("?token=SECRET", ""),
        ("?access_token=SECRET&token=", ""),
        // Other parameters kept verbatim and in order, empty ones dropped.
        ("?access_token=SECRET&x=1", "?x=1"),
        ("?b=%20&token=SECRET&a=1+2&&c", "?b=%20&a=1+2&c"),
        ("?z=9&access_token=SECRET", "?z=9"),
        // Percent-encoded names, as in the request's own query.
        ("?acc%65ss_token=SECRET&y=2", "?y=2"),
        ("?t%6Fken=SECRET", ""),
        // A fragment carrying one goes (a Referer has none, RFC 9110 §10.1.3).
        ("?x=1#access_token=SECRET", "?x=1"),
        ("#token=SECRET&state=s", ""),
        ("?token=SECRET#frag", ""),
    ];
    for (tail, want) in cases {
        let got = referers_after(&[&format!("{base}{tail}")]);
        assert_eq!(got, [format!("{base}{want}")], "{tail:?}");
    }
}

#[test]
fn referer_without_credentials_stays_as_sent() {
    for referer in [
        "https://reana.example/dashboard/wf/status",
        "https://reana.example/dashboard/wf/status?tokens=1&my_token=2&x=%41",
        "https://reana.example/dashboard/wf/status?x=1#frag",
        "https://reana.example/dashboard/wf/token?a=b",
        "https://reana.example/p?x=1&&y=#",
    ] {
        assert_eq!(referers_after(&[referer]), [referer]);
    }
    assert!(referers_after(&[]).is_empty());
}

#[test]
fn every_referer_header_is_stripped() {
    let got = referers_after(&["/a?x=1", "/b?token=t&y=2", "?access_token=t"]);
    assert_eq!(got, ["/a?x=1", "/b?y=2"]);
    let mut h = headers(&[("referer", "/b?x=1"), ("cookie", "a=1")]);
    let before = h.clone();
    strip_request_credentials(&mut h, GW);
    assert_eq!(h, before);
}

#[test]
fn referer_with_obs_text_is_stripped_too() {
    let mut h = HeaderMap::new();
    let value = HeaderValue::from_bytes(b"/d\xe9?token=t&x=\xff").expect("obs-text value");
    h.insert(http::header::REFERER, value);
    strip_request_credentials(&mut h, GW);
    assert_eq!(h[http::header::REFERER].as_bytes(), b"/d\xe9?x=\xff");
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
