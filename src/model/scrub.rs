//! The scrubber: every secret value a run resolves is registered here, and every text that came
//! from a vendor (error bodies, messages, log lines) passes through [`Scrubber::scrub`] before it
//! reaches an error, a log line, a plan or the audit log. A vendor that echoes our
//! `Authorization` header back in a 400 must not put the token on a CI log.
//!
//! One handle per run, shared by clones: the engine's client pool registers what
//! `BuildContext::secret` resolves, HTTP clients register the credentials their auth providers
//! issue (refreshed tokens included), and the CLI scrubs its output and log lines with it.

use std::sync::{Arc, RwLock};

use base64::Engine as _;

/// What replaces a secret.
pub const REDACTED: &str = "[redacted]";

/// Secrets shorter than this are not scrubbed: replacing every `t` of a message would make
/// it unreadable, and no real credential is that short.
pub const MIN_SCRUBBED_LEN: usize = 4;

/// Replaces registered secrets (and their encoded forms) in text. Cheap to clone (shared).
#[derive(Clone, Default)]
pub struct Scrubber {
    /// Patterns, longest first, so that `user:secret` in base64 wins over a part of it.
    patterns: Arc<RwLock<Vec<String>>>,
}

impl std::fmt::Debug for Scrubber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Scrubber({} patterns)", self.len())
    }
}

impl Scrubber {
    /// A scrubber that knows no secret yet.
    pub fn new() -> Scrubber {
        Scrubber::default()
    }

    /// Registers `secret` and the forms it takes on the wire: base64 (standard and URL-safe,
    /// padded or not), percent-encoded (upper and lower case hex, `+` or `%20` for spaces)
    /// and JSON-escaped.
    pub fn register(&self, secret: &str) {
        let secret = secret.trim_matches(['\n', '\r']);
        if secret.chars().count() < MIN_SCRUBBED_LEN {
            return;
        }
        let mut forms = encoded_forms(secret);
        forms.push(secret.to_string());
        self.add(forms);
    }

    /// Registers the password of HTTP basic auth: the password itself and the base64 of
    /// `user:password` that the `Authorization` header carries.
    pub fn register_basic(&self, user: &str, password: &str) {
        self.register(password);
        let pair = format!("{user}:{password}");
        if password.chars().count() >= MIN_SCRUBBED_LEN {
            self.add(base64_forms(&pair));
        }
    }

    fn add(&self, forms: Vec<String>) {
        let Ok(mut patterns) = self.patterns.write() else {
            return;
        };
        let mut changed = false;
        for f in forms {
            if f.len() >= MIN_SCRUBBED_LEN && !patterns.contains(&f) {
                patterns.push(f);
                changed = true;
            }
        }
        if changed {
            patterns.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        }
    }

    /// How many patterns are registered.
    pub fn len(&self) -> usize {
        self.patterns.read().map(|p| p.len()).unwrap_or_default()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `text` with every registered pattern replaced by [`REDACTED`], in one left-to-right
    /// pass (a replacement is never scanned again).
    pub fn scrub(&self, text: &str) -> String {
        let Ok(patterns) = self.patterns.read() else {
            // A poisoned lock means a panic elsewhere: say nothing rather than leak.
            return REDACTED.to_string();
        };
        if patterns.is_empty() || text.len() < MIN_SCRUBBED_LEN {
            return text.to_string();
        }
        // Only positions whose first byte starts some pattern are compared.
        let mut firsts = [false; 256];
        for p in patterns.iter() {
            if let Some(&b) = p.as_bytes().first() {
                firsts[usize::from(b)] = true;
            }
        }
        if !text.bytes().any(|b| firsts[usize::from(b)]) {
            return text.to_string();
        }
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        'outer: while let Some(c) = rest.chars().next() {
            let first = rest.as_bytes()[0];
            for p in patterns.iter().filter(|_| firsts[usize::from(first)]) {
                if rest.starts_with(p.as_str()) {
                    out.push_str(REDACTED);
                    rest = &rest[p.len()..];
                    continue 'outer;
                }
            }
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
        out
    }

    /// Scrubs in place (for fields of errors and events).
    pub fn scrub_in_place(&self, text: &mut String) {
        if !self.is_empty() {
            *text = self.scrub(text);
        }
    }

    /// True when `text` holds a registered pattern.
    pub fn finds(&self, text: &str) -> bool {
        self.patterns
            .read()
            .map(|p| p.iter().any(|s| text.contains(s.as_str())))
            .unwrap_or(true)
    }
}

fn base64_forms(s: &str) -> Vec<String> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .map(|e| e.encode(s.as_bytes()))
        .collect()
}

fn encoded_forms(s: &str) -> Vec<String> {
    let mut forms = base64_forms(s);
    let upper = percent(s, false, true);
    forms.push(upper.clone());
    forms.push(upper.to_ascii_lowercase_hex());
    forms.push(percent(s, true, true));
    forms.push(percent(s, true, false));
    // `serde_json` escapes quotes, backslashes and control characters.
    if let Ok(json) = serde_json::to_string(s) {
        forms.push(json[1..json.len() - 1].to_string());
    }
    forms.retain(|f| f != s);
    forms
}

/// Percent-encoding of everything but RFC 3986 unreserved characters; `plus` writes a space as
/// `+` (forms), `all_reserved` also encodes `*` (which form encoders keep).
fn percent(s: &str, plus: bool, all_reserved: bool) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            b'*' if !all_reserved => out.push('*'),
            b' ' if plus => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

trait LowerHex {
    fn to_ascii_lowercase_hex(&self) -> String;
}

impl LowerHex for String {
    /// The `%XX` escapes in lower case, the rest unchanged.
    fn to_ascii_lowercase_hex(&self) -> String {
        let mut out = String::with_capacity(self.len());
        let mut hex = 0;
        for c in self.chars() {
            if c == '%' {
                hex = 2;
                out.push(c);
            } else if hex > 0 {
                hex -= 1;
                out.push(c.to_ascii_lowercase());
            } else {
                out.push(c);
            }
        }
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;

    #[test]
    fn secrets_and_their_encodings_are_replaced() {
        let s = Scrubber::new();
        let secret = "s3cr3t tok/en+=";
        s.register(secret);
        let b64 = STANDARD.encode(secret);
        let url: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
        let text = format!("a {secret} b {b64} c {url} d s3cr3t%20tok%2fen%2b%3d e");
        let out = s.scrub(&text);
        assert_eq!(
            out, "a [redacted] b [redacted] c [redacted] d [redacted] e",
            "{out}"
        );
    }

    #[test]
    fn basic_auth_pairs_are_replaced() {
        let s = Scrubber::new();
        s.register_basic("agent@x.io/token", "zd-secret-1");
        let header = format!("Basic {}", STANDARD.encode("agent@x.io/token:zd-secret-1"));
        assert_eq!(s.scrub(&header), "Basic [redacted]");
        assert_eq!(s.scrub("pw zd-secret-1."), "pw [redacted].");
    }

    #[test]
    fn short_values_are_not_scrubbed_and_clones_share_patterns() {
        let s = Scrubber::new();
        s.register("t");
        assert!(s.is_empty());
        let clone = s.clone();
        clone.register("hunter22");
        assert_eq!(s.scrub("pw=hunter22"), "pw=[redacted]");
        assert!(s.finds("hunter22") && !s.finds("hunter2"));
        assert_eq!(s.scrub("é hunter22 é"), "é [redacted] é");
    }

    #[test]
    fn json_escaped_secrets_are_replaced() {
        let s = Scrubber::new();
        s.register("a\"quoted\\secret");
        assert_eq!(
            s.scrub(r#"{"detail":"token a\"quoted\\secret"}"#),
            r#"{"detail":"token [redacted]"}"#
        );
    }
}
