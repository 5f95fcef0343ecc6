//! An LDAP entry as a source record (SPEC section 5):
//!
//! - `dn`: the entry's DN; `entryUUID` (OpenLDAP, RFC 4530) as the server writes it;
//!   `objectGUID` (Active Directory, 16 bytes) as the usual GUID string, lower case, without
//!   braces: `3f2504e0-4f89-11d3-9a0c-0305e82c3301` (the first three groups little-endian, as
//!   Windows and PowerShell show it).
//! - attributes listed in `multi_valued`: lists of strings (an absent attribute is absent, not
//!   an empty list); every other attribute: one string. An entry holding several values of a
//!   single-valued attribute yields the first value the server sent, and one warning per
//!   attribute per read saying how many entries had several and to list it in `multi_valued`.
//! - binary values (not UTF-8, e.g. `jpegPhoto`, `objectSid`) are never mangled: they are
//!   standard base64 strings.
//! - attribute names are written as in `attributes` when listed there (LDAP names are
//!   case-insensitive), as the server sends them otherwise; `memberOf` only when `attributes`
//!   names it (it is read for `groups` anyway).

use std::collections::{BTreeMap, HashMap, HashSet};

use base64::Engine;
use ldap3::SearchEntry;
use serde_json::{Map, Value};

/// How entries become records.
pub(super) struct Shape {
    /// Configured attribute names, by lower-case name.
    names: HashMap<String, String>,
    multi: HashSet<String>,
    /// `memberOf` is kept only when asked for.
    keep_member_of: bool,
}

/// Single-valued attributes that had several values, counted per attribute name.
#[derive(Default)]
pub(super) struct Notes {
    several: BTreeMap<String, usize>,
}

impl Notes {
    /// The warnings of one read (one line per attribute).
    pub(super) fn warnings(&self, source: &str) -> Vec<String> {
        self.several
            .iter()
            .map(|(attr, n)| {
                format!(
                    "LDAP source `{source}`: {n} entr{} had several values of `{attr}`, which is read as a single value: the first value was used; list `{attr}` in `multi_valued` to read them all",
                    if *n == 1 { "y" } else { "ies" }
                )
            })
            .collect()
    }
}

impl Shape {
    pub(super) fn new(attributes: &[String], multi_valued: &[String]) -> Shape {
        let names: HashMap<String, String> = attributes
            .iter()
            .map(|a| (a.to_ascii_lowercase(), a.clone()))
            .collect();
        let keep_member_of = names.contains_key("memberof");
        Shape {
            names,
            multi: multi_valued
                .iter()
                .map(|a| a.to_ascii_lowercase())
                .collect(),
            keep_member_of,
        }
    }

    /// The record of one entry.
    pub(super) fn record(&self, entry: &SearchEntry, notes: &mut Notes) -> Map<String, Value> {
        let mut out = Map::new();
        out.insert("dn".to_string(), Value::String(entry.dn.clone()));
        for (name, values) in &entry.attrs {
            let lower = name.to_ascii_lowercase();
            if lower == "objectguid" {
                if let Some(v) = values.first() {
                    out.insert("objectGUID".into(), guid_value(v.as_bytes()));
                }
                continue;
            }
            if let Some((key, value)) = self.value(name, &lower, values, notes, |s| s.clone()) {
                out.insert(key, value);
            }
        }
        for (name, values) in &entry.bin_attrs {
            let lower = name.to_ascii_lowercase();
            if lower == "objectguid" {
                if let Some(v) = values.first() {
                    out.insert("objectGUID".into(), guid_value(v));
                }
                continue;
            }
            let b64 = |v: &Vec<u8>| base64::engine::general_purpose::STANDARD.encode(v);
            if let Some((key, value)) = self.value(name, &lower, values, notes, b64) {
                out.insert(key, value);
            }
        }
        out
    }

    fn value<T>(
        &self,
        name: &str,
        lower: &str,
        values: &[T],
        notes: &mut Notes,
        text: impl Fn(&T) -> String,
    ) -> Option<(String, Value)> {
        if lower == "memberof" && !self.keep_member_of {
            return None;
        }
        let key = match lower {
            "entryuuid" => "entryUUID".to_string(),
            _ => self
                .names
                .get(lower)
                .cloned()
                .unwrap_or_else(|| name.to_string()),
        };
        if self.multi.contains(lower) {
            let list = values.iter().map(|v| Value::String(text(v))).collect();
            return Some((key, Value::Array(list)));
        }
        let first = values.first()?;
        if values.len() > 1 {
            *notes.several.entry(key.clone()).or_default() += 1;
        }
        Some((key, Value::String(text(first))))
    }
}

fn guid_value(bytes: &[u8]) -> Value {
    match guid_string(bytes) {
        Some(s) => Value::String(s),
        // Not a GUID: kept, never mangled.
        None => Value::String(base64::engine::general_purpose::STANDARD.encode(bytes)),
    }
}

/// Active Directory's binary `objectGUID` (16 bytes) as a GUID string: the first three groups
/// are little-endian (Windows' mixed-endian layout), lower case, no braces. `None` when the
/// value is not 16 bytes.
pub(super) fn guid_string(bytes: &[u8]) -> Option<String> {
    let b: &[u8; 16] = bytes.try_into().ok()?;
    Some(format!(
        "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
        b[3],
        b[2],
        b[1],
        b[0],
        b[5],
        b[4],
        b[7],
        b[6],
        b[8],
        b[9],
        b[10],
        b[11],
        b[12],
        b[13],
        b[14],
        b[15]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(attrs: &[(&str, &[&str])], bin: &[(&str, &[&[u8]])]) -> SearchEntry {
        SearchEntry {
            dn: "uid=alice,ou=people,dc=example,dc=com".to_string(),
            attrs: attrs
                .iter()
                .map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect()))
                .collect(),
            bin_attrs: bin
                .iter()
                .map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_vec()).collect()))
                .collect(),
        }
    }

    #[test]
    fn object_guid_is_the_mixed_endian_guid_string() {
        // {3F2504E0-4F89-11D3-9A0C-0305E82C3301} as Active Directory stores it.
        let bytes = [
            0xE0, 0x04, 0x25, 0x3F, 0x89, 0x4F, 0xD3, 0x11, 0x9A, 0x0C, 0x03, 0x05, 0xE8, 0x2C,
            0x33, 0x01,
        ];
        assert_eq!(
            guid_string(&bytes).as_deref(),
            Some("3f2504e0-4f89-11d3-9a0c-0305e82c3301")
        );
        assert_eq!(guid_string(&bytes[..15]), None);
        let shape = Shape::new(&[], &[]);
        let rec = shape.record(
            &entry(&[], &[("objectGUID", &[&bytes])]),
            &mut Notes::default(),
        );
        assert_eq!(
            rec["objectGUID"],
            json!("3f2504e0-4f89-11d3-9a0c-0305e82c3301")
        );
        // A GUID whose bytes happen to be UTF-8 arrives among the text attributes.
        let ascii = *b"0123456789abcdef";
        let text = std::str::from_utf8(&ascii).unwrap();
        let rec = shape.record(
            &entry(&[("objectGUID", &[text])], &[]),
            &mut Notes::default(),
        );
        assert_eq!(rec["objectGUID"], json!(guid_string(&ascii).unwrap()));
    }

    #[test]
    fn single_and_multi_valued_attributes_dn_and_entry_uuid() {
        let shape = Shape::new(
            &[
                "UID".to_string(),
                "mail".to_string(),
                "memberOf".to_string(),
            ],
            &["telephoneNumber".to_string(), "memberof".to_string()],
        );
        let mut notes = Notes::default();
        let rec = shape.record(
            &entry(
                &[
                    ("uid", &["alice"]),
                    ("mail", &["a@example.com", "alice@example.com"]),
                    ("telephoneNumber", &["1", "2"]),
                    ("memberOf", &["cn=x"]),
                    ("entryUUID", &["e6eab3fe-855f-1041-9bf5-cfa2e8684d78"]),
                ],
                &[("jpegPhoto", &[&[0xff, 0xd8, 0xff]])],
            ),
            &mut notes,
        );
        assert_eq!(
            Value::Object(rec),
            json!({
                "dn": "uid=alice,ou=people,dc=example,dc=com",
                "UID": "alice",
                "mail": "a@example.com",
                "telephoneNumber": ["1", "2"],
                "memberOf": ["cn=x"],
                "entryUUID": "e6eab3fe-855f-1041-9bf5-cfa2e8684d78",
                "jpegPhoto": "/9j/",
            })
        );
        let warnings = notes.warnings("dir");
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("1 entry had several values of `mail`"));
        assert!(warnings[0].contains("multi_valued"));
    }

    #[test]
    fn member_of_is_left_out_unless_asked_for() {
        let shape = Shape::new(&[], &[]);
        let rec = shape.record(
            &entry(&[("memberOf", &["cn=x"]), ("cn", &["A"])], &[]),
            &mut Notes::default(),
        );
        assert!(!rec.contains_key("memberOf"));
        assert_eq!(rec["cn"], json!("A"));
    }
}
