//! A request head as the gateway's HTTP/1.1 loop read it, without a header map: its
//! bytes and where each field lies. The proxy reads the few fields it needs from
//! here ([`Fields`]) and writes the scheduler's request head from the client's
//! lines, rewritten one by one ([`RawHead::rewrite`]): less work than a map built,
//! looked up, changed and written out again. The rules are the map's
//! (`remove_hop_by_hop`, `strip_surveyed`, `added_fields`); `raw_tests` holds the
//! two ways to the same fields.

use bytes::Bytes;
use http::header::{CONNECTION, COOKIE, HOST};
use http::{HeaderMap, HeaderName, HeaderValue};

use super::headers::{name_is, names_another_field, Survey};
use crate::auth::credentials;

/// `X-Forwarded-For`.
const X_FORWARDED_FOR: &str = "x-forwarded-for";

/// Where a field's name and value lie in a head: offsets and lengths.
pub(crate) type FieldAt = (usize, usize, usize, usize);

/// A request head and its fields, as the loop parsed them: names are tokens and
/// values hold no control characters but tabs (what `http` accepts too).
#[derive(Debug)]
pub(crate) struct RawHead {
    head: Bytes,
    fields: Vec<FieldAt>,
}

impl RawHead {
    /// The fields at `fields` (each inside `head`).
    pub(crate) fn new(head: Bytes, fields: Vec<FieldAt>) -> RawHead {
        RawHead { head, fields }
    }

    /// A head of these fields (for tests: the loop takes them from a client).
    #[cfg(test)]
    pub(crate) fn from_fields(fields: &[(&str, &str)]) -> RawHead {
        let mut head = b"GET / HTTP/1.1\r\n".to_vec();
        let mut at = Vec::new();
        for (name, value) in fields {
            let name_at = head.len();
            head.extend_from_slice(name.as_bytes());
            head.extend_from_slice(b": ");
            let value_at = head.len();
            head.extend_from_slice(value.as_bytes());
            head.extend_from_slice(b"\r\n");
            at.push((name_at, name.len(), value_at, value.len()));
        }
        head.extend_from_slice(b"\r\n");
        RawHead::new(Bytes::from(head), at)
    }

    /// Names and values, in the client's order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        self.fields
            .iter()
            .map(|&(name_at, name_len, value_at, value_len)| {
                (
                    &self.head[name_at..name_at + name_len],
                    &self.head[value_at..value_at + value_len],
                )
            })
    }

    /// The values of the fields named `name` (lower case), in order.
    pub(crate) fn values<'a>(&'a self, name: &'a str) -> RawValues<'a> {
        RawValues {
            raw: self,
            next: 0,
            name,
        }
    }

    /// The options of the `Connection` fields that name a field besides the
    /// always-removed hop-by-hop ones (those fields are for this hop only).
    fn nominated(&self, survey: Survey) -> impl Iterator<Item = &[u8]> + '_ {
        let name = if survey.has(Survey::CONNECTION) {
            CONNECTION.as_str()
        } else {
            // No field has an empty name: nothing.
            ""
        };
        self.values(name)
            .flat_map(|value| value.split(|&b| b == b','))
            .map(<[u8]>::trim_ascii)
            .filter(|option| names_another_field(option))
    }

    /// Whether a `Connection` field names `name` (see [`RawHead::nominated`]).
    pub(crate) fn nominates(&self, name: &[u8], survey: Survey) -> bool {
        self.nominated(survey)
            .any(|option| option.eq_ignore_ascii_case(name))
    }

    /// The value at `at` as a header value, sharing the head's bytes.
    fn shared(&self, (value_at, value_len): (usize, usize)) -> Option<HeaderValue> {
        HeaderValue::from_maybe_shared(self.head.slice(value_at..value_at + value_len)).ok()
    }

    /// The first value of `name` (lower case) as a header value, sharing the head's
    /// bytes.
    pub(crate) fn first_value(&self, name: &str) -> Option<HeaderValue> {
        let &(_, _, value_at, value_len) =
            self.fields.iter().find(|&&(name_at, name_len, _, _)| {
                name_is(&self.head[name_at..name_at + name_len], name)
            })?;
        self.shared((value_at, value_len))
    }

    /// The fields in a map (what hyper would have given the proxy).
    pub(crate) fn to_map(&self) -> HeaderMap {
        let mut map = HeaderMap::with_capacity(self.fields.len());
        for &(name_at, name_len, value_at, value_len) in &self.fields {
            let name = HeaderName::from_bytes(&self.head[name_at..name_at + name_len]);
            if let (Ok(name), Some(value)) = (name, self.shared((value_at, value_len))) {
                map.append(name, value);
            }
        }
        map
    }

    /// The head's size in bytes.
    pub(crate) fn len(&self) -> usize {
        self.head.len()
    }

    /// The client's `X-Forwarded-For` values that go on into the gateway's (none
    /// when `Connection` names the field).
    pub(crate) fn forwarded_for(&self, survey: Survey) -> RawValues<'_> {
        let name = if survey.has(Survey::FORWARDED_FOR)
            && !self.nominates(X_FORWARDED_FOR.as_bytes(), survey)
        {
            X_FORWARDED_FOR
        } else {
            // No field has an empty name: nothing.
            ""
        };
        self.values(name)
    }

    /// The client's `Host` (the first), as the scheduler gets it.
    pub(crate) fn host(&self) -> Option<HeaderValue> {
        self.first_value(HOST.as_str())
    }

    /// Writes the client's fields for the scheduler into `out` as `name: value`
    /// lines (names in lower case): `host` as the one `Host`; without hop-by-hop
    /// fields and those `Connection` names, `Authorization`, the gateway's own
    /// fields (see `Added`), the credentials in `Referer`s and the gateway's and
    /// REANA's cookies; framing fields are not there (the loop serves no body).
    pub(crate) fn rewrite(
        &self,
        out: &mut Vec<u8>,
        survey: Survey,
        gateway_cookie: &str,
        host: &HeaderValue,
    ) {
        // Nearly always `keep-alive` or nothing: then no name needs a look.
        let lists_fields = self.nominated(survey).next().is_some();
        let cookies_touched = survey.has(Survey::COOKIE)
            && self
                .values(COOKIE.as_str())
                .any(|value| credentials::has_secret_cookie(value, gateway_cookie));
        line(out, HOST.as_str().as_bytes(), host.as_bytes());
        // Not sent on: `Host` (written above), credentials, hop-by-hop fields and
        // the gateway's own.
        let dropped = Survey::HOST | Survey::AUTHORIZATION | Survey::HOP_BY_HOP | Survey::ADDED;
        for (name, value) in self.iter() {
            let bits = Survey::bits(name);
            if bits & dropped != 0 || (lists_fields && self.nominates(name, survey)) {
                continue;
            }
            if cookies_touched && bits & Survey::COOKIE != 0 {
                if let Some(kept) = credentials::other_cookie_bytes(value, gateway_cookie) {
                    line(out, COOKIE.as_str().as_bytes(), &kept);
                }
            } else if bits & Survey::REFERER != 0 {
                if let Some(value) = credentials::stripped_referer_bytes(value) {
                    line(out, b"referer", &value);
                }
            } else {
                let at = out.len();
                line(out, name, value);
                out[at..at + name.len()].make_ascii_lowercase();
            }
        }
    }
}

/// The values of one name in a raw head.
pub(crate) struct RawValues<'a> {
    raw: &'a RawHead,
    next: usize,
    name: &'a str,
}

impl<'a> Iterator for RawValues<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let head = &self.raw.head;
        while let Some(&(name_at, name_len, value_at, value_len)) = self.raw.fields.get(self.next) {
            self.next += 1;
            if name_is(&head[name_at..name_at + name_len], self.name) {
                return Some(&head[value_at..value_at + value_len]);
            }
        }
        None
    }
}

/// Appends `name: value\r\n`.
fn line(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// A request's fields, wherever they are: in its map, or in the raw head the
/// loop read (the map is empty then).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Fields<'a> {
    Map(&'a HeaderMap),
    Raw(&'a RawHead),
}

impl<'a> Fields<'a> {
    /// The fields of `req`: `raw` when there is one.
    pub(crate) fn of<B>(req: &'a http::Request<B>, raw: Option<&'a RawHead>) -> Fields<'a> {
        match raw {
            Some(raw) => Fields::Raw(raw),
            None => Fields::Map(req.headers()),
        }
    }

    /// The values of the fields named `name`, in order.
    pub(crate) fn values(self, name: &'a HeaderName) -> Values<'a> {
        match self {
            Fields::Map(map) => Values::Map(map.get_all(name).iter()),
            Fields::Raw(raw) => Values::Raw(raw.values(name.as_str())),
        }
    }

    /// Which of the fields the proxy reads or rewrites are there.
    pub(crate) fn survey(self) -> Survey {
        match self {
            Fields::Map(map) => Survey::of(map),
            Fields::Raw(raw) => Survey::of_names(raw.iter().map(|(name, _)| name)),
        }
    }

    /// The header section's size on the wire (see `headers::header_bytes`).
    pub(crate) fn size(self) -> usize {
        match self {
            Fields::Map(map) => super::headers::header_bytes(map),
            Fields::Raw(raw) => raw.iter().map(|(n, v)| n.len() + v.len() + 4).sum(),
        }
    }
}

/// The values of one name.
pub(crate) enum Values<'a> {
    Map(http::header::ValueIter<'a, HeaderValue>),
    Raw(RawValues<'a>),
}

impl<'a> Iterator for Values<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        match self {
            Values::Map(values) => values.next().map(HeaderValue::as_bytes),
            Values::Raw(values) => values.next(),
        }
    }
}

#[cfg(test)]
#[path = "raw_tests.rs"]
mod tests;
