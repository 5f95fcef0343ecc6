//! Redaction of secrets in what the HTTP layer logs. Debug logs (`-vv`) end up in CI output and
//! bug reports, so credentials and sensitive values are replaced before anything is formatted.

use reqwest::header::HeaderMap;
use serde_json::Value;
use url::Url;

/// What replaces a secret in logs.
pub const REDACTED: &str = crate::model::scrub::REDACTED;

/// How much of a body is logged; bodies are for diagnosis, not archives.
const MAX_LOGGED_BODY: usize = 4096;

/// Header names whose values are credentials.
const SECRET_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
    "api-key",
    "x-auth-token",
];

/// True for query parameter or JSON key names that hold secrets (`access_key` is Mojo's API key,
/// `password` a sensitive field value). Matched case-insensitively on the whole name or a
/// recognisable part of it.
pub fn is_secret_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    matches!(
        n.as_str(),
        "access_key"
            | "accesskey"
            | "api_key"
            | "apikey"
            | "key"
            | "token"
            | "access_token"
            | "refresh_token"
            | "id_token"
            | "client_secret"
            | "secret"
            | "password"
            | "passwd"
            | "signature"
            | "sig"
            | "assertion"
    ) || n.contains("password")
        || n.contains("secret")
        || n.ends_with("_token")
        || n.ends_with("assertion")
        || n.ends_with("jwt")
        || n.ends_with("api_key")
        || n.ends_with("access_key")
}

/// The URL with the values of secret query parameters (and any userinfo) replaced.
pub fn url(url: &Url) -> String {
    let mut out = url.clone();
    if !out.username().is_empty() {
        let _ = out.set_username(REDACTED);
    }
    if out.password().is_some() {
        let _ = out.set_password(Some(REDACTED));
    }
    if out.query().is_some() {
        let pairs: Vec<(String, String)> = out
            .query_pairs()
            .map(|(k, v)| {
                let v = if is_secret_name(&k) {
                    REDACTED.to_string()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        out.query_pairs_mut().clear().extend_pairs(pairs);
    }
    out.to_string()
}

/// Headers as `name: value` lines joined by `; `, credentials replaced.
pub fn headers(headers: &HeaderMap) -> String {
    headers
        .iter()
        .map(|(name, value)| {
            let shown = if SECRET_HEADERS.contains(&name.as_str()) || value.is_sensitive() {
                REDACTED.to_string()
            } else {
                String::from_utf8_lossy(value.as_bytes()).into_owned()
            };
            format!("{name}: {shown}")
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// A JSON value with the scalar values of secret keys replaced, at any depth. Objects under
/// such keys are walked instead (SCIM's `changePassword: {supported: true}` is no secret).
pub fn json(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let scalar = !(v.is_null() || v.is_object() || v.is_array());
                    let v = if is_secret_name(k) && scalar {
                        Value::String(REDACTED.to_string())
                    } else {
                        json(v)
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(json).collect()),
        other => other.clone(),
    }
}

/// A body for logging: JSON with secrets redacted, other text as is; both cut to a few KB.
/// Form bodies (`a=b&password=c`) are redacted too.
pub fn body(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return String::new();
    }
    let text = match serde_json::from_slice::<Value>(bytes) {
        Ok(v) => json(&v).to_string(),
        Err(_) => {
            let raw = String::from_utf8_lossy(bytes);
            if raw.contains('=') && !raw.contains(char::is_whitespace) {
                form(&raw)
            } else {
                raw.into_owned()
            }
        }
    };
    truncate(&text, MAX_LOGGED_BODY)
}

fn form(raw: &str) -> String {
    raw.split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, _)) if is_secret_name(k) => format!("{k}={REDACTED}"),
            _ => pair.to_string(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Cuts `text` to at most `max` bytes on a character boundary, saying how much was cut.
pub fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} more bytes)", &text[..end], text.len() - end)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};

    #[test]
    fn authorization_headers_are_redacted() {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_static("Bearer s3cr3t"));
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        h.insert("x-api-key", HeaderValue::from_static("k3y"));
        let shown = headers(&h);
        assert!(
            !shown.contains("s3cr3t") && !shown.contains("k3y"),
            "{shown}"
        );
        assert!(shown.contains("authorization: [redacted]"), "{shown}");
        assert!(shown.contains("content-type: application/json"), "{shown}");
    }

    #[test]
    fn secret_query_parameters_are_redacted() {
        let u = Url::parse(
            "https://x.mojohelpdesk.com/api/v2/users?access_key=abc123&page=2&token=t0k&per_page=100",
        )
        .unwrap();
        let shown = url(&u);
        assert!(
            !shown.contains("abc123") && !shown.contains("t0k"),
            "{shown}"
        );
        assert!(shown.contains("page=2") && shown.contains("per_page=100"));
        assert!(shown.contains("access_key=%5Bredacted%5D"), "{shown}");
        let u = Url::parse("https://user:pw@h/x").unwrap();
        assert!(!url(&u).contains("pw@"));
    }

    #[test]
    fn password_keys_are_redacted_at_any_depth() {
        let body_in = serde_json::json!({
            "user": {"email": "a@x.io", "password": "hunter2", "nested": [{"client_secret": "cs"}]},
            "access_key": "ak",
            "emptyPassword": null,
            "changePassword": {"supported": true}
        });
        let shown = body(body_in.to_string().as_bytes());
        for secret in ["hunter2", "\"cs\"", "\"ak\""] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(shown.contains("a@x.io"), "{shown}");
        assert!(
            shown.contains(r#""changePassword":{"supported":true}"#),
            "{shown}"
        );
        assert_eq!(body(b"user=a&password=p"), "user=a&password=[redacted]");
        assert_eq!(body(b"plain text"), "plain text");
    }

    #[test]
    fn long_bodies_are_cut_on_a_character_boundary() {
        let t = truncate(&"é".repeat(10), 5);
        assert!(t.starts_with("éé…"), "{t}");
        assert!(t.ends_with("(16 more bytes)"), "{t}");
    }
}
