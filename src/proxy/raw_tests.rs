use http::header::{COOKIE, HOST};
use http::HeaderValue;

use super::{Fields, RawHead};
use crate::proxy::headers::Survey;

const GW: &str = "dask_dashboard_token";

fn rewritten(raw: &RawHead, host: &str) -> String {
    let survey = Fields::Raw(raw).survey();
    let mut out = Vec::new();
    raw.rewrite(
        &mut out,
        survey,
        GW,
        &HeaderValue::from_str(host).expect("host"),
    );
    String::from_utf8(out).expect("ascii")
}

#[test]
fn values_are_found_by_name_in_any_case_and_in_order() {
    let raw = RawHead::from_fields(&[
        ("Cookie", "a=1"),
        ("Host", "h"),
        ("COOKIE", "b=2"),
        ("x-cookie", "no"),
    ]);
    let cookies: Vec<&[u8]> = Fields::Raw(&raw).values(&COOKIE).collect();
    assert_eq!(cookies, [&b"a=1"[..], b"b=2"]);
    assert_eq!(raw.host(), Some(HeaderValue::from_static("h")));
    assert_eq!(raw.to_map().get_all(COOKIE).iter().count(), 2);
    let map = raw.to_map();
    assert_eq!(
        Fields::Raw(&raw).size(),
        crate::proxy::headers::header_bytes(&map)
    );
}

#[test]
fn a_survey_of_raw_names_is_the_survey_of_their_map() {
    let raw = RawHead::from_fields(&[
        ("ACCEPT", "text/html"),
        ("Connection", "keep-alive"),
        ("X-Forwarded-Proto", "https"),
        ("Proxy-Authorization", "x"),
        ("a-name-longer-than-any-the-survey-knows", "v"),
        ("Referer", "https://h/"),
    ]);
    assert_eq!(Fields::Raw(&raw).survey(), Survey::of(&raw.to_map()));
}

#[test]
fn the_rewrite_keeps_the_clients_fields_but_credentials_hops_and_the_gateways_own() {
    let raw = RawHead::from_fields(&[
        ("Host", "reana.example.org"),
        ("User-Agent", "Mozilla/5.0"),
        ("Cookie", "_xsrf=1; dask_dashboard_token=secret; session=s"),
        ("Authorization", "Bearer secret"),
        (
            "Referer",
            "https://reana.example.org/w?access_token=secret&tab=2",
        ),
        ("Connection", "keep-alive, X-Hop"),
        ("X-Hop", "gone"),
        ("Keep-Alive", "timeout=5"),
        ("X-Forwarded-Host", "spoofed"),
        ("X-Request-Id", "client-id"),
        ("Accept", "*/*"),
        ("Host", "second.example.org"),
    ]);
    assert_eq!(
        rewritten(&raw, "reana.example.org"),
        "host: reana.example.org\r\n\
         user-agent: Mozilla/5.0\r\n\
         cookie: _xsrf=1\r\n\
         referer: https://reana.example.org/w?tab=2\r\n\
         accept: */*\r\n"
    );
}

#[test]
fn a_cookie_field_left_empty_is_not_sent() {
    let raw = RawHead::from_fields(&[("cookie", "dask_dashboard_token=t"), ("cookie", "a=1")]);
    assert_eq!(rewritten(&raw, "h"), "host: h\r\ncookie: a=1\r\n");
    // No secret: every cookie field as sent.
    let raw = RawHead::from_fields(&[("Cookie", " a=1 ;; b=2")]);
    assert_eq!(rewritten(&raw, "h"), "host: h\r\ncookie:  a=1 ;; b=2\r\n");
}

#[test]
fn forwarded_for_values_go_on_unless_connection_names_the_field() {
    let raw = RawHead::from_fields(&[("X-Forwarded-For", "10.0.0.1")]);
    let survey = Fields::Raw(&raw).survey();
    assert_eq!(raw.forwarded_for(survey).collect::<Vec<_>>(), [b"10.0.0.1"]);
    let raw = RawHead::from_fields(&[
        ("x-forwarded-for", "10.0.0.1"),
        ("connection", "X-Forwarded-For"),
    ]);
    let survey = Fields::Raw(&raw).survey();
    assert_eq!(raw.forwarded_for(survey).count(), 0);
    assert!(raw.nominates(b"x-forwarded-for", survey));
    assert!(!raw.nominates(HOST.as_str().as_bytes(), survey));
}
