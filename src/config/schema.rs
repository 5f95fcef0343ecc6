//! The JSON Schema of the config, generated from the Rust types so it cannot drift from what the
//! loader accepts. Committed as `schemas/headcount.schema.json` for editors (the starter file's
//! `yaml-language-server` modeline points at it); a test keeps the committed copy current.

use schemars::schema_for;
use serde_json::{Map, Value, json};

use super::load::SUPPORTED_VERSIONS;
use super::model::Config;

/// `$id` of the schema. A URN: the schema is found through the modeline's relative path, not
/// fetched from anywhere.
pub const SCHEMA_ID: &str = "urn:headcount:config:v1";

/// The schema as pretty-printed JSON with a trailing newline, byte for byte what
/// `headcount schema` prints and `schemas/headcount.schema.json` holds.
pub fn schema_json() -> String {
    let mut schema = schema_for!(Config).to_value();
    if let Value::Object(root) = &mut schema {
        let mut head = Map::new();
        head.insert("$id".into(), SCHEMA_ID.into());
        for (k, v) in std::mem::take(root) {
            head.insert(k, v);
        }
        head.insert("title".into(), "headcount configuration".into());
        head.insert(
            "description".into(),
            "headcount config, format version 1: sources of people, targets where accounts are kept, and the syncs between them. `headcount init` writes a commented example.".into(),
        );
        // `version` takes exactly the versions this build reads, so editors offer and check it.
        if let Some(Value::Object(version)) = head
            .get_mut("properties")
            .and_then(|p| p.get_mut("version"))
        {
            version.remove("format");
            version.remove("minimum");
            version.insert("enum".into(), json!(SUPPORTED_VERSIONS));
        }
        *root = head;
    }
    polish(&mut schema);
    let mut out = serde_json::to_string_pretty(&schema)
        .unwrap_or_else(|e| format!("{{\"error\": \"cannot serialise the schema: {e}\"}}"));
    out.push('\n');
    out
}

/// Editor-friendly touches: doc comments wrapped in the source become one paragraph, and a
/// `oneOf` of documented string constants (unit enums like `removed`) becomes a plain `enum`
/// with `enumDescriptions`, which completion lists show directly.
fn polish(v: &mut Value) {
    match v {
        Value::Object(map) => {
            if let Some(Value::String(d)) = map.get_mut("description") {
                *d = unwrap_lines(d);
            }
            if let Some(Value::Array(items)) = map.get("oneOf")
                && !items.is_empty()
                && items
                    .iter()
                    .all(|i| i.get("type") == Some(&json!("string")) && i.get("const").is_some())
            {
                let values: Vec<Value> = items
                    .iter()
                    .filter_map(|i| i.get("const").cloned())
                    .collect();
                let docs: Vec<Value> = items
                    .iter()
                    .map(|i| {
                        i.get("description")
                            .and_then(Value::as_str)
                            .map_or(Value::String(String::new()), |d| {
                                Value::String(unwrap_lines(d))
                            })
                    })
                    .collect();
                map.remove("oneOf");
                map.insert("type".into(), "string".into());
                map.insert("enum".into(), Value::Array(values));
                map.insert("enumDescriptions".into(), Value::Array(docs));
            }
            for (_, child) in map.iter_mut() {
                polish(child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(polish),
        _ => {}
    }
}

/// Joins lines of one paragraph; keeps blank-line paragraph breaks.
fn unwrap_lines(text: &str) -> String {
    text.split("\n\n")
        .map(|p| p.split('\n').map(str::trim).collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("\n\n")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn unit_enums_become_enums_and_paragraphs_are_joined() {
        let mut v = json!({
            "description": "a\nb",
            "oneOf": [
                {"type": "string", "const": "x", "description": "X\nx"},
                {"type": "string", "const": "y"}
            ]
        });
        polish(&mut v);
        assert_eq!(
            v,
            json!({
                "description": "a b",
                "type": "string",
                "enum": ["x", "y"],
                "enumDescriptions": ["X x", ""]
            })
        );
    }
}
