//! The session token Bokeh embeds in a server page. Shared by the tests
//! (`support::bokeh`) and the benchmark tool (`bench/wsbench.rs`); depends on
//! `serde_json` only.

use serde_json::Value;

/// The session token of the (first) render item of a Bokeh server page.
///
/// Bokeh renders `const render_items = [{"token":"…","roots":{…},…}];` into the
/// page's script (`core/_templates/doc_js.js.jinja`).
pub fn session_token_from_html(html: &str) -> Option<String> {
    const MARK: &str = "const render_items = ";
    if let Some(at) = html.find(MARK) {
        let rest = &html[at + MARK.len()..];
        let mut values = serde_json::Deserializer::from_str(rest).into_iter::<Value>();
        if let Some(Ok(Value::Array(items))) = values.next() {
            return items
                .iter()
                .find_map(|item| item.get("token")?.as_str().map(str::to_owned));
        }
    }
    // A future template might lay the script out differently: take the first
    // `"token":"…"` of the page.
    let at = html.find("\"token\":\"")? + "\"token\":\"".len();
    let len = html[at..].find('"')?;
    Some(html[at..at + len].to_owned())
}
