//! What a target kind can hold: its fields, their types, whether they are writable, whether
//! they can identify an account, and how identity values are normalised. Each connector
//! declares its table (a `&'static [FieldSpec]`); validation, the planner and
//! `headcount fields KIND` read it through [`FieldTable`]. Static data, no I/O.

use serde::Serialize;

/// The value type a target field holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "type", content = "values")]
pub enum FieldType {
    String,
    Email,
    Bool,
    Integer,
    /// One of a fixed set of strings.
    Enum(&'static [&'static str]),
}

impl std::fmt::Display for FieldType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FieldType::String => f.write_str("string"),
            FieldType::Email => f.write_str("email"),
            FieldType::Bool => f.write_str("bool"),
            FieldType::Integer => f.write_str("integer"),
            FieldType::Enum(values) => write!(f, "enum({})", values.join("|")),
        }
    }
}

/// When a field can be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Writable {
    /// On create and on update.
    Always,
    /// Only when the account is created (e.g. Mojo's email, passwords). Later differences are
    /// shown as notes, never written.
    CreateOnly,
}

/// How identity values of a field are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IdentityNorm {
    /// Trimmed, lower-cased, Unicode NFC.
    Email,
    /// Trimmed, lower-cased.
    CaseInsensitive,
    /// Trimmed only.
    Exact,
}

impl IdentityNorm {
    /// Normalise an identity value so that equal identities compare equal.
    pub fn normalise(self, raw: &str) -> String {
        use unicode_normalization::UnicodeNormalization;
        let trimmed = raw.trim();
        match self {
            IdentityNorm::Email => trimmed.nfc().collect::<String>().to_lowercase(),
            IdentityNorm::CaseInsensitive => trimmed.to_lowercase(),
            IdentityNorm::Exact => trimmed.to_string(),
        }
    }
}

/// One field of a target kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldSpec {
    pub name: &'static str,
    #[serde(flatten)]
    pub ty: FieldType,
    pub writable: Writable,
    /// `Some` when the field can be used in `identity`.
    pub identity: Option<IdentityNorm>,
    /// Sensitive values never appear in plans, logs, state or the audit log.
    pub sensitive: bool,
    /// Minimum length of a non-empty value (e.g. Mojo passwords).
    pub min_len: Option<usize>,
    /// An empty or null value is replaced by this (e.g. Mojo's `Individuals` group).
    pub empty_means: Option<&'static str>,
    pub notes: &'static str,
}

pub const fn field(name: &'static str, ty: FieldType, notes: &'static str) -> FieldSpec {
    FieldSpec {
        name,
        ty,
        writable: Writable::Always,
        identity: None,
        sensitive: false,
        min_len: None,
        empty_means: None,
        notes,
    }
}

pub const fn ident(mut f: FieldSpec, norm: IdentityNorm) -> FieldSpec {
    f.identity = Some(norm);
    f
}

pub const fn create_only(mut f: FieldSpec) -> FieldSpec {
    f.writable = Writable::CreateOnly;
    f
}

/// Why a field name is not usable for a target.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    #[error("`{name}` is not a field of {kind}{}", suggestion(.nearest))]
    Unknown {
        name: String,
        kind: &'static str,
        nearest: Option<String>,
    },
    #[error(
        "custom field `{key}` is not declared for this target: add it to the target's `custom_fields` list (known: {})",
        known_list(.known)
    )]
    UnknownCustomField { key: String, known: Vec<String> },
}

fn suggestion(nearest: &Option<String>) -> String {
    match nearest {
        Some(n) => format!("; did you mean `{n}`? (see `headcount fields KIND`)"),
        None => "; see `headcount fields KIND` for the list".to_string(),
    }
}

fn known_list(known: &[String]) -> String {
    if known.is_empty() {
        "none".to_string()
    } else {
        known.join(", ")
    }
}

/// The fields of one target: its kind's fixed fields plus the custom fields the config declares.
/// A value the planner carries, so that it never needs to know which connector it plans for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldTable {
    /// The target kind's name, for messages (`mojo_helpdesk`).
    pub kind: &'static str,
    pub fixed: &'static [FieldSpec],
    /// The prefix of custom fields for kinds that have them (`custom_field_`, `user_fields.`).
    pub custom_prefix: Option<&'static str>,
    /// Custom field keys declared for this target.
    pub custom: Vec<String>,
}

impl FieldTable {
    /// Looks a field up, including the target's declared custom fields.
    pub fn lookup(&self, name: &str) -> Result<FieldSpec, LookupError> {
        if let Some(f) = self.fixed.iter().find(|f| f.name == name) {
            return Ok(f.clone());
        }
        if let Some(prefix) = self.custom_prefix
            && let Some(key) = name.strip_prefix(prefix)
        {
            if self.custom.iter().any(|c| c == key) {
                return Ok(FieldSpec {
                    name: "custom",
                    ty: FieldType::String,
                    writable: Writable::Always,
                    identity: None,
                    sensitive: false,
                    min_len: None,
                    empty_means: None,
                    notes: "custom field",
                });
            }
            return Err(LookupError::UnknownCustomField {
                key: key.to_string(),
                known: self.custom.clone(),
            });
        }
        Err(LookupError::Unknown {
            name: name.to_string(),
            kind: self.kind,
            nearest: crate::util::nearest(name, self.fixed.iter().map(|f| f.name))
                .map(String::from),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn email_normalisation_trims_lowercases_and_composes() {
        // "e" + combining acute accent → precomposed "é".
        assert_eq!(
            IdentityNorm::Email.normalise("  Ann.E\u{301}@Example.COM "),
            "ann.\u{e9}@example.com"
        );
        assert_eq!(IdentityNorm::Exact.normalise(" AbC "), "AbC");
    }

    const FIXED: &[FieldSpec] = &[
        ident(field("email", FieldType::Email, ""), IdentityNorm::Email),
        field("first_name", FieldType::String, ""),
    ];

    fn table(custom: &[&str]) -> FieldTable {
        FieldTable {
            kind: "mojo_helpdesk",
            fixed: FIXED,
            custom_prefix: Some("custom_field_"),
            custom: custom.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn lookup_suggests_and_checks_custom_fields() {
        let err = table(&[]).lookup("frist_name").unwrap_err();
        assert!(
            err.to_string().contains("did you mean `first_name`"),
            "{err}"
        );
        assert!(
            err.to_string().contains("not a field of mojo_helpdesk"),
            "{err}"
        );
        let err = table(&["team"]).lookup("custom_field_dept").unwrap_err();
        assert!(err.to_string().contains("custom field `dept`"), "{err}");
        assert!(table(&["team"]).lookup("custom_field_team").is_ok());
        let no_custom = FieldTable {
            custom_prefix: None,
            ..table(&["team"])
        };
        assert!(no_custom.lookup("custom_field_team").is_err());
    }
}
