//! The shell every HTML view shares: one self-contained document with its style, its data and its script
//! inline, and a Content-Security-Policy that forbids every network access and every script or style but the
//! document's own. Plain Rust, no database.
//!
//! How user data stays data:
//! - Text that goes into markup (the title, the heading) is HTML-escaped (`escape`).
//! - Everything else travels as one JSON document in `<script type="application/json">`, where every `<` is
//!   written `\u003c` (`script_json`), so no value can close the element; the view's script reads it with
//!   `JSON.parse` and puts values on the page with `textContent` only, never as markup.
//! - The policy allows the inline script and style by their SHA-256 hashes (`'sha256-…'`), not with
//!   `'unsafe-inline'`, so even markup that slipped through could run no script, load no image and send nothing:
//!   `default-src 'none'`, and no `connect-src`, `img-src` (but `data:`), `form-action` or `base-uri`.
//!   Hashes, not a nonce: a nonce must change on every call, which would make the view functions VOLATILE, and
//!   PostgREST serves only STABLE functions to GET.

use base64::Engine;
use sha2::{Digest, Sha256};

pub use crate::traces::svg::escape;

/// The script of a view drawn wholly on the server: it only says when the page has rendered (the browser tests and
/// the benchmark wait for `document.body.dataset.rendered`).
pub const RENDERED_SCRIPT: &str = "\"use strict\";document.body.dataset.rendered=performance.now().toFixed(1);";

/// A finite number field of a JSON object (the view documents SQL assembles), None when absent, not a number or not
/// finite.
pub fn number(v: &serde_json::Value, key: &str) -> Option<f64> {
    v.get(key).and_then(serde_json::Value::as_f64).filter(|x| x.is_finite())
}

/// The CSS every view starts with (colours, type, tables, the header).
pub const BASE_STYLE: &str = include_str!("base.css");

/// `'sha256-<base64>'`: the CSP source that allows exactly this inline script or style.
pub fn csp_hash(content: &str) -> String {
    let digest = Sha256::digest(content.as_bytes());
    format!("'sha256-{}'", base64::engine::general_purpose::STANDARD.encode(digest))
}

/// The policy of a document whose only script is `script` and whose only style is `style`.
pub fn content_security_policy(style: &str, script: &str) -> String {
    format!(
        "default-src 'none'; script-src {}; style-src {}; img-src data:; base-uri 'none'; form-action 'none'",
        csp_hash(script),
        csp_hash(style)
    )
}

/// JSON text made safe to sit inside `<script type="application/json">`: every `<` becomes `\u003c` (valid in a
/// JSON string, and JSON has no `<` outside strings), so `</script>` or `<!--` in a value cannot end the element.
/// U+2028 / U+2029 are escaped too, so the text is also a valid JavaScript literal.
pub fn script_json(json: &str) -> String {
    let mut out = String::with_capacity(json.len() + json.len() / 64);
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

/// A JSON string literal (quotes included) of `s`.
pub fn json_string(s: &str) -> String {
    serde_json::to_string(s).expect("a string always serialises")
}

/// 1234567 -> "1,234,567".
pub fn thousands(v: i64) -> String {
    let digits = v.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if v < 0 {
        out.push('-');
    }
    for (k, c) in digits.chars().enumerate() {
        if k > 0 && (digits.len() - k).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The whole document: `<!doctype html>`, the policy, `style` (after the base style), `body` (trusted markup
/// from the view; user text in it must already be escaped), the data as `<script type="application/json"
/// id="view-data">` and the view's `script`.
pub fn document(title: &str, style: &str, body: &str, data_json: &str, script: &str) -> String {
    let style = format!("{BASE_STYLE}{style}");
    let data = script_json(data_json);
    let mut out = String::with_capacity(style.len() + body.len() + data.len() + script.len() + 1024);
    out.push_str("<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    out.push_str("<meta http-equiv=\"Content-Security-Policy\" content=\"");
    out.push_str(&content_security_policy(&style, script));
    out.push_str("\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<meta name=\"referrer\" content=\"no-referrer\">\n<title>");
    out.push_str(&escape(title));
    out.push_str("</title>\n<style>");
    out.push_str(&style);
    out.push_str("</style>\n</head>\n<body>\n");
    out.push_str(body);
    out.push_str("\n<script type=\"application/json\" id=\"view-data\">");
    out.push_str(&data);
    out.push_str("</script>\n<script>");
    out.push_str(script);
    out.push_str("</script>\n</body>\n</html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_json_cannot_close_its_element() {
        let raw = serde_json::json!({"name": "</script><script>alert(1)</script>", "x": "<!-- \u{2028}"}).to_string();
        let safe = script_json(&raw);
        assert!(!safe.contains('<'));
        assert!(!safe.contains('\u{2028}'));
        // still the same JSON value
        let back: serde_json::Value = serde_json::from_str(&safe).unwrap();
        assert_eq!(back["name"], "</script><script>alert(1)</script>");
        assert_eq!(back["x"], "<!-- \u{2028}");
    }

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(2720), "2,720");
        assert_eq!(thousands(-1234567), "-1,234,567");
    }

    #[test]
    fn csp_hash_is_the_sha256_of_the_exact_text() {
        // `printf %s 'alert(1)' | openssl dgst -sha256 -binary | base64`
        assert_eq!(csp_hash("alert(1)"), "'sha256-bhHHL3z2vDgxUt0W3dWQOrprscmda2Y5pLsLg4GF+pI='");
    }

    #[test]
    fn document_allows_only_its_own_script_and_style() {
        let doc = document("<T&>", "p{}", "<p>x</p>", r#"{"a":"</script>"}"#, "go()");
        assert!(doc.starts_with("<!doctype html>"));
        assert!(doc.contains("<title>&lt;T&amp;&gt;</title>"));
        let style = format!("{BASE_STYLE}p{{}}");
        assert!(doc.contains(&format!("script-src {};", csp_hash("go()"))));
        assert!(doc.contains(&format!("style-src {};", csp_hash(&style))));
        assert!(doc.contains(&format!("<style>{style}</style>")));
        assert!(doc.contains("default-src 'none'"));
        assert!(!doc.contains("unsafe-inline"));
        assert!(doc.contains(r#"{"a":"\u003c/script>"}"#));
        assert_eq!(doc.matches("</script>").count(), 2);
    }
}
