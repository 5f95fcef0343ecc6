//! How a connector's config checks report problems without knowing the config file: the
//! connector names a key below its own entry, the config's validator turns that into a
//! diagnostic with file, line, column and snippet. Checks that several connectors share live
//! here too.

use super::units::HttpSettings;

/// One step of a path below a source's or target's entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathSeg<'a> {
    Key(&'a str),
    Index(usize),
}

/// Where a connector's config check reports.
pub trait Checks {
    /// `source `hr`` or `target `helpdesk``, for messages.
    fn owner(&self) -> String;
    /// An error at the value found at `path`; `help` says what to write instead.
    fn error(&mut self, path: &[PathSeg<'_>], message: String, help: Option<String>);
    /// An error at the value found at `path` whose text holds a secret: the value is masked
    /// in the snippet shown with it, as a literal secret is.
    fn secret_error(&mut self, path: &[PathSeg<'_>], message: String, help: Option<String>);
    /// An error at the key of `path` (a key that should not be there).
    fn error_at_key(&mut self, path: &[PathSeg<'_>], message: String, help: Option<String>);
    /// A warning at the key of `path`.
    fn warn_at_key(&mut self, path: &[PathSeg<'_>], message: String);
}

/// `key` must not be blank.
pub fn non_empty(c: &mut dyn Checks, key: &str, value: &str) {
    if value.trim().is_empty() {
        let msg = format!("`{key}` of {} is empty", c.owner());
        c.error(&[PathSeg::Key(key)], msg, None);
    }
}

/// `key`, when set, must be an http(s) URL with a host, and without credentials in it
/// (`https://user:password@host` is a literal secret in a file that lives in git).
/// Returns false when it was refused.
pub fn url(c: &mut dyn Checks, key: &str, value: Option<&str>) -> bool {
    let Some(value) = value else { return true };
    let rest = value
        .strip_prefix("https://")
        .or_else(|| value.strip_prefix("http://"));
    let authority = rest.map(|r| r.split(['/', '?', '#']).next().unwrap_or_default());
    if authority.is_some_and(|a| a.contains('@')) || (rest.is_none() && value.contains('@')) {
        let msg = format!(
            "`{key}` of {} carries credentials (`user:password@`): a literal secret is not allowed in the config (it lives in git)",
            c.owner()
        );
        c.secret_error(
            &[PathSeg::Key(key)],
            msg,
            Some(
                "remove `user:password@` from the URL and give the credential as a secret reference: `{ env: VARIABLE }` or `{ file: PATH }`"
                    .to_string(),
            ),
        );
        return false;
    }
    let ok = rest.is_some_and(|rest| {
        !rest.is_empty() && !rest.starts_with('/') && !rest.contains(char::is_whitespace)
    });
    if !ok {
        let msg = format!("`{key}` of {} is not an http(s) URL: `{value}`", c.owner());
        c.error(
            &[PathSeg::Key(key)],
            msg,
            Some("give the full URL, e.g. `https://example.com`".to_string()),
        );
        return false;
    }
    true
}

/// A `base_url`: a [`url`] that request paths (`/Users`) are appended to, so it can hold no
/// query string or fragment (the path would land inside them, or be silently dropped).
pub fn base_url(c: &mut dyn Checks, key: &str, value: Option<&str>) {
    if !url(c, key, value) {
        return;
    }
    let Some(value) = value else { return };
    let what = if value.contains('?') {
        "a query string (`?...`)"
    } else if value.contains('#') {
        "a fragment (`#...`)"
    } else {
        return;
    };
    // The query may hold a key (`?access_key=...`): the value is masked, never echoed.
    let msg = format!(
        "`{key}` of {} has {what}: headcount appends API paths such as `/Users` to it, so it must end with the path",
        c.owner()
    );
    c.secret_error(
        &[PathSeg::Key(key)],
        msg,
        Some(
            "remove everything from the `?` or `#` on, e.g. `https://example.com/scim/v2`; credentials go in their own secret key"
                .to_string(),
        ),
    );
}

/// `rate_limit` and `timeout` must parse.
pub fn http_settings(c: &mut dyn Checks, rate_limit: Option<&str>, timeout: Option<&str>) {
    // Each is checked on its own so that both can be reported at once.
    for (rate, time) in [(rate_limit, None), (None, timeout)] {
        if let Err(e) = HttpSettings::parse(rate, time) {
            let key = e.key();
            let help = if key == "rate_limit" {
                "e.g. `rate_limit: 120/min` or `rate_limit: 10/s`"
            } else {
                "e.g. `timeout: 30s`, `2m` or `500ms`"
            };
            let msg = format!("`{key}` of {}: {e}", c.owner());
            c.error(&[PathSeg::Key(key)], msg, Some(help.to_string()));
        }
    }
}

/// `key` must look like an email address.
pub fn email(c: &mut dyn Checks, key: &str, value: &str) {
    if !value.contains('@') {
        let msg = format!(
            "`{key}` of {} is not an email address: `{value}`",
            c.owner()
        );
        c.error(&[PathSeg::Key(key)], msg, None);
    }
}

/// A list of custom field keys (`custom_fields`, `user_fields`): no blank or repeated entry.
pub fn custom_field_list(c: &mut dyn Checks, key: &str, fields: &[String]) {
    let mut seen: Vec<&str> = Vec::new();
    for (i, field) in fields.iter().enumerate() {
        let problem = if field.trim().is_empty() {
            Some(format!("`{key}` of {} has an empty entry", c.owner()))
        } else if seen.contains(&field.as_str()) {
            Some(format!("`{key}` of {} lists `{field}` twice", c.owner()))
        } else {
            None
        };
        if let Some(msg) = problem {
            c.error(&[PathSeg::Key(key), PathSeg::Index(i)], msg, None);
        }
        seen.push(field);
    }
}
