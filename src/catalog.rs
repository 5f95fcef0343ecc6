//! What each target kind can hold: its fields, their types, whether they are writable, whether
//! they can identify an account, and how identity values are normalised.
//!
//! This is static data so that `validate` works offline and `headcount fields KIND` can print it.
//! Connectors and the planner both read it; nothing here does I/O.

use serde::Serialize;

/// The kinds of target this build knows about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum TargetKind {
    MojoHelpdesk,
    Zendesk,
    Scim,
    RequestTracker,
    CsvExport,
    EntraGuests,
}

impl TargetKind {
    pub const ALL: [TargetKind; 6] = [
        TargetKind::MojoHelpdesk,
        TargetKind::Zendesk,
        TargetKind::Scim,
        TargetKind::RequestTracker,
        TargetKind::CsvExport,
        TargetKind::EntraGuests,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TargetKind::MojoHelpdesk => "mojo_helpdesk",
            TargetKind::Zendesk => "zendesk",
            TargetKind::Scim => "scim",
            TargetKind::RequestTracker => "request_tracker",
            TargetKind::CsvExport => "csv_export",
            TargetKind::EntraGuests => "entra_guests",
        }
    }

    pub fn parse(s: &str) -> Option<TargetKind> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl std::fmt::Display for TargetKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

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

const fn field(name: &'static str, ty: FieldType, notes: &'static str) -> FieldSpec {
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

const fn ident(mut f: FieldSpec, norm: IdentityNorm) -> FieldSpec {
    f.identity = Some(norm);
    f
}

const fn create_only(mut f: FieldSpec) -> FieldSpec {
    f.writable = Writable::CreateOnly;
    f
}

const MOJO_ROLES: &[&str] = &[
    "user",
    "restricted_technician",
    "technician",
    "manager",
    "admin",
    "owner",
];

const PASSWORD: FieldSpec = FieldSpec {
    name: "password",
    ty: FieldType::String,
    writable: Writable::CreateOnly,
    identity: None,
    sensitive: true,
    min_len: Some(6),
    empty_means: None,
    notes: "create only; at least 6 characters; blank lets the target generate one",
};

const GROUP: FieldSpec = FieldSpec {
    name: "group",
    ty: FieldType::String,
    writable: Writable::Always,
    identity: None,
    sensitive: false,
    min_len: None,
    empty_means: Some("Individuals"),
    notes: "group (company) name; created when missing; empty means `Individuals`",
};

const MOJO: &[FieldSpec] = &[
    create_only(ident(
        field(
            "email",
            FieldType::Email,
            "unique; not updatable after create",
        ),
        IdentityNorm::Email,
    )),
    field("first_name", FieldType::String, "at most 45 characters"),
    field("middle_name", FieldType::String, ""),
    field("last_name", FieldType::String, "at most 45 characters"),
    field("work_phone", FieldType::String, "at most 30 characters"),
    field("cell_phone", FieldType::String, "at most 30 characters"),
    field("home_phone", FieldType::String, "at most 30 characters"),
    field("user_notes", FieldType::String, "multi-line text"),
    PASSWORD,
    field("role", FieldType::Enum(MOJO_ROLES), "maps to role_id"),
    GROUP,
];

const CSV_EXPORT: &[FieldSpec] = &[
    ident(
        field(
            "email",
            FieldType::Email,
            "column `Email`; the unique key of Mojo's import",
        ),
        IdentityNorm::Email,
    ),
    field("first_name", FieldType::String, "column `First Name`"),
    field("middle_name", FieldType::String, "column `Middle Name`"),
    field("last_name", FieldType::String, "column `Last Name`"),
    field("work_phone", FieldType::String, "column `Work Phone`"),
    field("cell_phone", FieldType::String, "column `Cell Phone`"),
    field("home_phone", FieldType::String, "column `Home Phone`"),
    field("user_notes", FieldType::String, "column `Notes`"),
    PASSWORD,
    GROUP,
];

const ZENDESK_ROLES: &[&str] = &["end-user", "agent", "admin"];

const ZENDESK: &[FieldSpec] = &[
    ident(
        field("email", FieldType::Email, "primary email"),
        IdentityNorm::Email,
    ),
    ident(
        field("external_id", FieldType::String, "case-insensitive"),
        IdentityNorm::CaseInsensitive,
    ),
    field("name", FieldType::String, "required on create"),
    field("phone", FieldType::String, ""),
    field("role", FieldType::Enum(ZENDESK_ROLES), ""),
    field("custom_role_id", FieldType::Integer, "agents only"),
    field("organization", FieldType::String, "organization name"),
];

const SCIM: &[FieldSpec] = &[
    ident(
        field("userName", FieldType::String, "unique; case-insensitive"),
        IdentityNorm::CaseInsensitive,
    ),
    ident(
        field(
            "externalId",
            FieldType::String,
            "set by the provisioning client",
        ),
        IdentityNorm::Exact,
    ),
    field("displayName", FieldType::String, ""),
    field("name.givenName", FieldType::String, ""),
    field("name.familyName", FieldType::String, ""),
    field("name.formatted", FieldType::String, ""),
    field("title", FieldType::String, ""),
    ident(
        field(
            "emails[type eq \"work\"].value",
            FieldType::Email,
            "work email",
        ),
        IdentityNorm::Email,
    ),
    field(
        "phoneNumbers[type eq \"work\"].value",
        FieldType::String,
        "work phone",
    ),
    field(
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber",
        FieldType::String,
        "enterprise extension",
    ),
    field(
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
        FieldType::String,
        "enterprise extension",
    ),
];

const REQUEST_TRACKER: &[FieldSpec] = &[
    ident(
        field("Name", FieldType::String, "login name"),
        IdentityNorm::CaseInsensitive,
    ),
    ident(
        field("EmailAddress", FieldType::Email, ""),
        IdentityNorm::Email,
    ),
    field("RealName", FieldType::String, ""),
    field("Organization", FieldType::String, ""),
    field("WorkPhone", FieldType::String, ""),
    field("MobilePhone", FieldType::String, ""),
    field("HomePhone", FieldType::String, ""),
    field("Privileged", FieldType::Bool, "privileged (staff) user"),
    field("Comments", FieldType::String, "multi-line text"),
];

const ENTRA_GUESTS: &[FieldSpec] = &[
    create_only(ident(
        field("email", FieldType::Email, "invited email address"),
        IdentityNorm::Email,
    )),
    field("display_name", FieldType::String, ""),
];

/// The fixed fields of a target kind (custom fields come on top, see [`lookup`]).
pub fn fields(kind: TargetKind) -> &'static [FieldSpec] {
    match kind {
        TargetKind::MojoHelpdesk => MOJO,
        TargetKind::CsvExport => CSV_EXPORT,
        TargetKind::Zendesk => ZENDESK,
        TargetKind::Scim => SCIM,
        TargetKind::RequestTracker => REQUEST_TRACKER,
        TargetKind::EntraGuests => ENTRA_GUESTS,
    }
}

/// The prefix of custom fields for kinds that have them, e.g. `custom_field_` for Mojo.
pub fn custom_field_prefix(kind: TargetKind) -> Option<&'static str> {
    match kind {
        TargetKind::MojoHelpdesk | TargetKind::CsvExport => Some("custom_field_"),
        TargetKind::Zendesk => Some("user_fields."),
        _ => None,
    }
}

/// Why a field name is not usable for a target.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    #[error("`{name}` is not a field of {kind}{}", suggestion(.nearest))]
    Unknown {
        name: String,
        kind: TargetKind,
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

/// Looks a field up, including the target's declared custom fields.
pub fn lookup(
    kind: TargetKind,
    name: &str,
    custom_fields: &[String],
) -> Result<FieldSpec, LookupError> {
    if let Some(f) = fields(kind).iter().find(|f| f.name == name) {
        return Ok(f.clone());
    }
    if let Some(prefix) = custom_field_prefix(kind)
        && let Some(key) = name.strip_prefix(prefix)
    {
        if custom_fields.iter().any(|c| c == key) {
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
            known: custom_fields.to_vec(),
        });
    }
    Err(LookupError::Unknown {
        name: name.to_string(),
        kind,
        nearest: crate::util::nearest(name, fields(kind).iter().map(|f| f.name)).map(String::from),
    })
}

#[cfg(test)]
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

    #[test]
    fn lookup_suggests_and_checks_custom_fields() {
        let err = lookup(TargetKind::MojoHelpdesk, "frist_name", &[]).unwrap_err();
        assert!(
            err.to_string().contains("did you mean `first_name`"),
            "{err}"
        );
        let err = lookup(
            TargetKind::MojoHelpdesk,
            "custom_field_dept",
            &["team".into()],
        )
        .unwrap_err();
        assert!(err.to_string().contains("custom field `dept`"), "{err}");
        assert!(
            lookup(
                TargetKind::MojoHelpdesk,
                "custom_field_team",
                &["team".into()]
            )
            .is_ok()
        );
        assert!(lookup(TargetKind::CsvExport, "role", &[]).is_err());
    }
}
