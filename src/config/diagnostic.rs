//! Config errors a person reads: `path:line:column: message`, the offending line with a caret,
//! and what to do next. They are `miette` diagnostics too, so a graphical report works, but the
//! CLI and tests use [`ConfigError::render`], whose plain form is stable and grep-able.

use std::fmt;
use std::sync::Arc;

use miette::{Diagnostic, LabeledSpan, NamedSource, SourceCode, SourceSpan};

/// What kind of problem a [`ConfigError`] is, for callers that react differently (and tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The file does not exist.
    NotFound,
    /// The file could not be read.
    Io,
    /// The file is larger than the loader accepts, or exceeds another input budget.
    Budget,
    /// The file is not UTF-8.
    Encoding,
    /// Malformed YAML.
    Syntax,
    /// `version` missing or not one this build reads.
    Version,
    /// A key that the mapping does not have.
    UnknownKey,
    /// A key the mapping needs is missing.
    MissingKey,
    /// A literal secret or a malformed secret reference.
    Secret,
    /// A value of the wrong type or shape.
    Type,
    /// A semantic problem found by validation.
    Invalid,
}

impl ErrorKind {
    fn code(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "headcount::config::not_found",
            ErrorKind::Io => "headcount::config::io",
            ErrorKind::Budget => "headcount::config::too_large",
            ErrorKind::Encoding => "headcount::config::encoding",
            ErrorKind::Syntax => "headcount::config::syntax",
            ErrorKind::Version => "headcount::config::version",
            ErrorKind::UnknownKey => "headcount::config::unknown_key",
            ErrorKind::MissingKey => "headcount::config::missing_key",
            ErrorKind::Secret => "headcount::config::secret",
            ErrorKind::Type => "headcount::config::type",
            ErrorKind::Invalid => "headcount::config::invalid",
        }
    }
}

/// Where in the file an error points: 1-based line, 1-based column in characters, and how many
/// characters to underline on that line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct At {
    pub line: u32,
    pub column: u32,
    pub len: u32,
}

/// One problem in a config file. Boxed inside so that `Result<_, ConfigError>` stays small.
/// Displays as `path:line:column: message`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}: {}", self.location(), self.inner.message)]
pub struct ConfigError {
    inner: Box<Inner>,
}

#[derive(Debug, Clone)]
struct Inner {
    kind: ErrorKind,
    path: String,
    message: String,
    help: Option<String>,
    label: Option<String>,
    at: Option<At>,
    source: Option<NamedSource<Arc<String>>>,
    span: Option<SourceSpan>,
}

impl ConfigError {
    /// An error about the file as a whole (no position).
    pub fn new(kind: ErrorKind, path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            inner: Box::new(Inner {
                kind,
                path: path.into(),
                message: message.into(),
                help: None,
                label: None,
                at: None,
                source: None,
                span: None,
            }),
        }
    }

    /// Points the error at `line:column` of `text`, underlining `len` characters.
    pub fn at(mut self, text: &Arc<String>, line: u32, column: u32, len: u32) -> Self {
        if line == 0 {
            return self;
        }
        let column = column.max(1);
        let start = byte_of(text, line, column);
        let end = start_plus_chars(text, start, len.max(1) as usize);
        self.inner.at = Some(At {
            line,
            column,
            len: len.max(1),
        });
        self.inner.source = Some(NamedSource::new(&self.inner.path, Arc::clone(text)));
        self.inner.span = Some(SourceSpan::from((start, end.saturating_sub(start))));
        self
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.inner.help = Some(help.into());
        self
    }

    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.inner.label = Some(label.into());
        self
    }

    /// Masks `bytes` of the source shown with this error: used for literal secrets, which must
    /// never be echoed back (errors end up in CI logs).
    pub fn redact(mut self, bytes: std::ops::Range<usize>) -> Self {
        if let Some(src) = &self.inner.source {
            let masked = redact_text(src.inner(), bytes);
            self.inner.source = Some(NamedSource::new(&self.inner.path, Arc::new(masked)));
        }
        self
    }

    /// Changes the kind (a validation error that is about a secret).
    pub fn with_kind(mut self, kind: ErrorKind) -> Self {
        self.inner.kind = kind;
        self
    }

    pub fn kind(&self) -> ErrorKind {
        self.inner.kind
    }

    /// The message without location.
    pub fn message(&self) -> &str {
        &self.inner.message
    }

    pub fn help_text(&self) -> Option<&str> {
        self.inner.help.as_deref()
    }

    /// The file name used in messages.
    pub fn path(&self) -> &str {
        &self.inner.path
    }

    pub fn position(&self) -> Option<At> {
        self.inner.at
    }

    pub fn line(&self) -> Option<u32> {
        self.inner.at.map(|a| a.line)
    }

    pub fn column(&self) -> Option<u32> {
        self.inner.at.map(|a| a.column)
    }

    /// `path:line:column` or just `path`.
    pub fn location(&self) -> String {
        match self.inner.at {
            Some(at) => format!("{}:{}:{}", self.inner.path, at.line, at.column),
            None => self.inner.path.clone(),
        }
    }

    /// Human form: `path:line:column: message`, the offending line with a caret under the
    /// problem, and the help. With `color`, ANSI colours; the text is otherwise identical.
    pub fn render(&self, color: bool) -> String {
        let p = Palette::new(color);
        let mut out = format!(
            "{}{}{}: {}{}{}\n",
            p.bold,
            self.location(),
            p.reset,
            p.bold_red,
            self.inner.message,
            p.reset
        );
        if let (Some(at), Some(src)) = (self.inner.at, &self.inner.source) {
            out.push_str(&snippet(src.inner(), at, self.inner.label.as_deref(), &p));
        }
        if let Some(help) = &self.inner.help {
            out.push_str(&format!("  {}= help:{} {help}\n", p.cyan, p.reset));
        }
        out
    }
}

impl Diagnostic for ConfigError {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(self.inner.kind.code()))
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.inner
            .help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        self.inner.source.as_ref().map(|s| s as &dyn SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let span = self.inner.span?;
        Some(Box::new(std::iter::once(
            LabeledSpan::new_primary_with_span(
                Some(
                    self.inner
                        .label
                        .clone()
                        .unwrap_or_else(|| "here".to_string()),
                ),
                span,
            ),
        )))
    }
}

/// Several problems found at once (validation reports everything it finds, not just the first).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", summary(.0))]
pub struct ConfigErrors(pub Vec<ConfigError>);

fn summary(errors: &[ConfigError]) -> String {
    match errors {
        [] => "the config has problems".to_string(),
        [one] => one.to_string(),
        [first, ..] => format!(
            "{} problems in {}; the first: {first}",
            errors.len(),
            first.path()
        ),
    }
}

impl ConfigErrors {
    /// Every error rendered one after the other, then a count when there are several.
    pub fn render(&self, color: bool) -> String {
        let mut out = String::new();
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                out.push('\n');
            }
            out.push_str(&e.render(color));
        }
        if self.0.len() > 1 {
            out.push_str(&format!(
                "\n{} problems in {}\n",
                self.0.len(),
                self.0[0].path()
            ));
        }
        out
    }

    pub fn iter(&self) -> std::slice::Iter<'_, ConfigError> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<ConfigError> for ConfigErrors {
    fn from(e: ConfigError) -> Self {
        ConfigErrors(vec![e])
    }
}

impl Diagnostic for ConfigErrors {
    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn Diagnostic> + 'a>> {
        Some(Box::new(self.0.iter().map(|e| e as &dyn Diagnostic)))
    }
}

struct Palette {
    bold: &'static str,
    bold_red: &'static str,
    blue: &'static str,
    cyan: &'static str,
    reset: &'static str,
}

impl Palette {
    fn new(color: bool) -> Self {
        if color {
            Palette {
                bold: "\x1b[1m",
                bold_red: "\x1b[1;31m",
                blue: "\x1b[34m",
                cyan: "\x1b[36m",
                reset: "\x1b[0m",
            }
        } else {
            Palette {
                bold: "",
                bold_red: "",
                blue: "",
                cyan: "",
                reset: "",
            }
        }
    }
}

/// Longest source line shown in full; longer ones are cropped around the column.
const MAX_SHOWN: usize = 120;

fn snippet(text: &str, at: At, label: Option<&str>, p: &Palette) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let idx = at.line as usize - 1;
    let Some(line) = lines.get(idx) else {
        return String::new();
    };
    let first = idx.saturating_sub(1);
    let width = (idx + 1).to_string().len();
    let mut out = format!("{:width$} {}|{}\n", "", p.blue, p.reset);
    for (n, l) in lines.iter().enumerate().take(idx).skip(first) {
        let (shown, _) = crop(l, at.column as usize);
        out.push_str(&format!(
            "{}{:>width$} |{} {shown}\n",
            p.blue,
            n + 1,
            p.reset
        ));
    }
    let (shown, caret_col) = crop(line, at.column as usize);
    out.push_str(&format!(
        "{}{:>width$} |{} {shown}\n",
        p.blue,
        idx + 1,
        p.reset
    ));
    let available = shown.chars().count().saturating_sub(caret_col - 1).max(1);
    let carets = "^".repeat((at.len as usize).min(available).max(1));
    let label = label.map(|l| format!(" {l}")).unwrap_or_default();
    out.push_str(&format!(
        "{:width$} {}|{} {}{}{carets}{label}{}\n",
        "",
        p.blue,
        p.reset,
        " ".repeat(caret_col - 1),
        p.bold_red,
        p.reset
    ));
    out
}

/// Makes a line safe and short enough to print: control characters (a terminal escape in a
/// config value) become `?`, tabs a space, and long lines a window around `column`. Returns the
/// text and the column of the caret inside it.
fn crop(line: &str, column: usize) -> (String, usize) {
    let chars: Vec<char> = line
        .chars()
        .filter(|c| *c != '\r')
        .map(|c| match c {
            '\t' => ' ',
            c if c.is_control() => '?',
            c => c,
        })
        .collect();
    let column = column.max(1);
    if chars.len() <= MAX_SHOWN {
        return (chars.into_iter().collect(), column);
    }
    let start = column.saturating_sub(MAX_SHOWN / 2).min(chars.len());
    let end = (start + MAX_SHOWN).min(chars.len());
    let mut shown = String::new();
    let mut caret = column - start;
    if start > 0 {
        shown.push('…');
        caret += 1;
    }
    shown.extend(&chars[start..end]);
    if end < chars.len() {
        shown.push('…');
    }
    (shown, caret.max(1))
}

/// Byte offset of 1-based `line:column` (column in characters), clamped to the text.
pub(crate) fn byte_of(text: &str, line: u32, column: u32) -> usize {
    let mut offset = 0;
    for (n, l) in text.split_inclusive('\n').enumerate() {
        if n + 1 == line as usize {
            let in_line = l
                .char_indices()
                .nth(column.saturating_sub(1) as usize)
                .map_or(l.trim_end_matches(['\n', '\r']).len(), |(b, _)| b);
            return offset + in_line;
        }
        offset += l.len();
    }
    text.len()
}

/// The byte offset `n` characters after `start`, stopping at the end of the line.
fn start_plus_chars(text: &str, start: usize, n: usize) -> usize {
    let rest = text.get(start..).unwrap_or_default();
    let mut end = start;
    for (i, c) in rest.chars().enumerate() {
        if i >= n || c == '\n' {
            break;
        }
        end += c.len_utf8();
    }
    end
}

/// True for config keys whose values are secrets (the secret-reference keys of every
/// connector, and names that say so).
fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    !k.ends_with("_url")
        && !k.ends_with("_file")
        && !k.ends_with("_path")
        && (matches!(k.as_str(), "token" | "key" | "password" | "secret")
            || k.contains("password")
            || k.contains("secret")
            || k.ends_with("_token")
            || k.ends_with("_key"))
}

/// The config text with the scalar values of secret keys masked (`*`, byte for byte, so that
/// positions still hold), for the snippets of errors found before the file could be read as
/// a config (a YAML syntax error next to `token: abc`). References (`{ env: ... }`) stay.
pub(crate) fn mask_secret_values(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    // Indentation of a `key: |` block scalar whose lines are masked.
    let mut block: Option<usize> = None;
    for line in text.split_inclusive('\n') {
        let indent = line.len() - line.trim_start_matches([' ', '-']).len();
        if let Some(at) = block {
            if line.trim().is_empty() || indent > at {
                out.push_str(&mask_range(line, indent..line.trim_end().len()));
                continue;
            }
            block = None;
        }
        let (masked, opens_block) = mask_line(line);
        if opens_block {
            block = Some(indent);
        }
        out.push_str(&masked);
    }
    out
}

/// Masks `key: value` pairs with a secret key on one line (block or flow style). Returns the
/// line and whether a block scalar (`key: |`, or a value on the next lines) starts.
fn mask_line(line: &str) -> (String, bool) {
    if line.trim_start().starts_with('#') {
        return (line.to_string(), false);
    }
    let bytes = line.as_bytes();
    let mut ranges = Vec::new();
    let mut opens_block = false;
    // The next character boundary after `i` (`i` is always on one).
    let next = |i: usize| i + line[i..].chars().next().map_or(1, char::len_utf8);
    let mut i = 0;
    while i < bytes.len() {
        // A key starts at the line's start (after indentation and `- `) or after `{` or `,`.
        let at_start = line[..i].trim_start_matches([' ', '-', '\t']).is_empty();
        let after_flow = i > 0 && matches!(line[..i].trim_end().chars().last(), Some('{' | ','));
        if !(at_start || after_flow) || bytes[i] == b' ' || bytes[i] == b'-' {
            i = next(i);
            continue;
        }
        let rest = &line[i..];
        let key_len = rest
            .find(|c: char| !(c.is_alphanumeric() || matches!(c, '_' | '"' | '\'')))
            .unwrap_or(rest.len());
        let key = rest[..key_len].trim_matches(['"', '\'']);
        if key.is_empty() || !rest[key_len..].starts_with(':') || !is_secret_key(key) {
            i = if key_len == 0 { next(i) } else { i + key_len };
            continue;
        }
        let value_start = i + key_len + 1;
        let value = &line[value_start..];
        let lead = value.len() - value.trim_start().len();
        let v = value.trim_start();
        let vs = value_start + lead;
        let v_trim = v.trim_end();
        if v_trim.is_empty() || v_trim.starts_with('|') || v_trim.starts_with('>') {
            // The value is on the next, deeper lines (a block scalar, or a reference mapping
            // whose `env:`/`file:` lines are not secret keys and stay readable).
            opens_block = v_trim.starts_with('|') || v_trim.starts_with('>');
            i = vs.max(i + 1);
            continue;
        }
        if v.starts_with('{') || v.starts_with('&') || v.starts_with('*') {
            i = vs;
            continue;
        }
        let end = if after_flow && !at_start {
            match v.chars().next() {
                Some(q @ ('"' | '\'')) => v[1..].find(q).map_or(v_trim.len(), |p| p + 2),
                _ => v.find([',', '}']).unwrap_or(v_trim.len()),
            }
        } else {
            v_trim.len()
        };
        ranges.push(vs..vs + end);
        i = if end == 0 { next(vs) } else { vs + end };
    }
    let mut out = line.to_string();
    for r in ranges {
        out = mask_range(&out, r);
    }
    (out, opens_block)
}

/// `line` with the non-blank characters of byte range `r` replaced by `*` (one per byte).
fn mask_range(line: &str, r: std::ops::Range<usize>) -> String {
    let mut out = String::with_capacity(line.len());
    for (i, c) in line.char_indices() {
        if r.contains(&i) && !c.is_whitespace() {
            out.extend(std::iter::repeat_n('*', c.len_utf8()));
        } else {
            out.push(c);
        }
    }
    out
}

fn redact_text(text: &str, bytes: std::ops::Range<usize>) -> String {
    text.char_indices()
        .map(|(i, c)| {
            if bytes.contains(&i) && !c.is_whitespace() {
                '*'
            } else {
                c
            }
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn secret_values_are_masked_in_any_style_and_references_stay() {
        let text = "a:\n  token: s3cr3t-tok: x\n  api_token: \"q s3cr3t\"\n  t: {kind: scim, token: \"s3cr3t, x\", base_url: http://h}\n  access_key: { env: KEY }\n  client_secret: |\n    s3cr3t-block\n  token_url: https://h/token\n  bind_password:\n    env: LDAP_PW\n  # token: s3cr3t-comment\n";
        let masked = mask_secret_values(text);
        assert_eq!(masked.len(), text.len());
        // Multi-byte characters anywhere never split (a panic would be a crash on bad input).
        let odd = "é: → {é: ü, token: „ß“, ключ: 値}\n  token: ключ→\n- ü\n  token: |\n   日本\n";
        let m = mask_secret_values(odd);
        assert_eq!(m.len(), odd.len());
        assert!(
            !m.contains("„ß“") && !m.contains("ключ→") && !m.contains("日本"),
            "{m}"
        );
        assert!(m.contains("ключ: 値"), "{m}");
        // No prefix or suffix of a tricky text makes it panic.
        let tricky = format!("{odd}{text}token:\n  x\ntoken: '\n{{token: \"é, ,}}: |");
        let cuts: Vec<usize> = tricky.char_indices().map(|(i, _)| i).collect();
        for &c in &cuts {
            mask_secret_values(&tricky[..c]);
            mask_secret_values(&tricky[c..]);
        }
        assert_eq!(masked.lines().count(), text.lines().count());
        assert!(!masked.contains("s3cr3t-tok"), "{masked}");
        assert!(!masked.contains("q s3cr3t"), "{masked}");
        assert!(!masked.contains("\"s3cr3t, x\""), "{masked}");
        assert!(!masked.contains("s3cr3t-block"), "{masked}");
        assert!(masked.contains("base_url: http://h"), "{masked}");
        assert!(masked.contains("access_key: { env: KEY }"), "{masked}");
        assert!(masked.contains("token_url: https://h/token"), "{masked}");
        assert!(masked.contains("    env: LDAP_PW"), "{masked}");
        assert!(masked.contains("kind: scim"), "{masked}");
    }

    #[test]
    fn renders_location_snippet_and_help() {
        let text = Arc::new("version: 1\nsyncs:\n  - name: a\n    frm: b\n".to_string());
        let e = ConfigError::new(ErrorKind::UnknownKey, "hc.yaml", "unknown key `frm`")
            .at(&text, 4, 5, 3)
            .with_label("unknown key")
            .with_help("did you mean `from`?");
        let out = e.render(false);
        assert!(out.starts_with("hc.yaml:4:5: unknown key `frm`\n"), "{out}");
        assert!(out.contains("4 |     frm: b\n"), "{out}");
        assert!(out.contains("  |     ^^^ unknown key\n"), "{out}");
        assert!(out.contains("= help: did you mean `from`?"), "{out}");
        assert!(e.render(true).contains("\x1b["));
        assert_eq!(e.to_string(), "hc.yaml:4:5: unknown key `frm`");
        let labels: Vec<_> = e.labels().unwrap().collect();
        assert_eq!(labels[0].offset(), text.find("frm").unwrap());
        assert_eq!(labels[0].len(), 3);
    }

    #[test]
    fn crops_long_lines_and_escapes_control_characters() {
        let (shown, caret) = crop(&format!("{}X\x1b", "a".repeat(300)), 301);
        assert!(shown.chars().count() <= MAX_SHOWN + 2);
        assert_eq!(shown.chars().nth(caret - 1), Some('X'));
        assert!(!shown.contains('\x1b'));
    }

    #[test]
    fn redaction_masks_the_secret() {
        let text = Arc::new("token: hunter2\n".to_string());
        let e = ConfigError::new(ErrorKind::Secret, "c.yaml", "literal secret")
            .at(&text, 1, 8, 7)
            .redact(7..14);
        let out = e.render(false);
        assert!(!out.contains("hunter2"), "{out}");
        assert!(out.contains("token: *******"), "{out}");
    }
}
