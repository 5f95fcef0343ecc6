//! The JSON Schema of the config, generated from the Rust types so it cannot drift from what the
//! loader accepts. Committed as `schemas/headcount.schema.json` for editors (the starter file's
//! `yaml-language-server` modeline points at it); a test keeps the committed copy current.

use schemars::schema_for;

use super::model::Config;

/// `$id` of the schema. A URN: the schema is found through the modeline's relative path, not
/// fetched from anywhere.
pub const SCHEMA_ID: &str = "urn:headcount:config:v1";

/// The schema as pretty-printed JSON with a trailing newline, byte for byte what
/// `headcount schema` prints and `schemas/headcount.schema.json` holds.
pub fn schema_json() -> String {
    let mut schema = schema_for!(Config);
    schema.insert("$id".to_string(), SCHEMA_ID.into());
    schema.insert("title".to_string(), "headcount configuration".into());
    schema.insert(
        "description".to_string(),
        "headcount config, format version 1: sources of people, targets where accounts are kept, and the syncs between them. See `headcount init` for a commented example.".into(),
    );
    let mut out = serde_json::to_string_pretty(&schema)
        .unwrap_or_else(|e| format!("{{\"error\": \"cannot serialise the schema: {e}\"}}"));
    out.push('\n');
    out
}
