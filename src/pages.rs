//! The small HTML pages a person meets instead of a dashboard (401, 403, 404, 5xx).

/// Escapes text for an HTML text or attribute context.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Seconds between reloads of a self-refreshing page.
const REFRESH_SECONDS: u32 = 5;

/// A complete page with `title` and already-escaped `body_html`; with `refresh` the
/// browser reloads it every few seconds.
pub(crate) fn page(title: &str, body_html: &str, refresh: bool) -> String {
    let refresh = if refresh {
        format!("<meta http-equiv=\"refresh\" content=\"{REFRESH_SECONDS}\">")
    } else {
        String::new()
    };
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">{refresh}\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{title} · Dask dashboard</title>\
<style>body{{font-family:system-ui,sans-serif;max-width:40em;margin:4em auto;padding:0 1em;color:#222}}\
h1{{font-size:1.4em}}a{{color:#1565c0}}</style></head>\
<body><h1>{title}</h1>{body_html}</body></html>\n",
        title = escape(title),
    )
}
