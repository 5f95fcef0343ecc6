//! The committed JSON Schema must be exactly what the types generate (SPEC section 4).

use std::path::PathBuf;

fn committed_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("schemas/headcount.schema.json")
}

#[test]
fn committed_schema_is_up_to_date() {
    let generated = headcount::config::schema_json();
    let path = committed_path();
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "schemas/headcount.schema.json is out of date with the config types: run `headcount schema > schemas/headcount.schema.json` (or `UPDATE_SCHEMA=1 cargo test --test it config_schema`) and commit the result"
    );
}

fn schema() -> serde_json::Value {
    serde_json::from_str(&headcount::config::schema_json()).expect("the schema is JSON")
}

#[test]
fn schema_has_id_title_and_a_trailing_newline() {
    let text = headcount::config::schema_json();
    assert!(text.ends_with("}\n"));
    let s = schema();
    assert!(s["$id"].is_string());
    assert_eq!(s["title"], "headcount configuration");
    assert!(s["description"].is_string());
    assert_eq!(s["properties"]["version"]["enum"], serde_json::json!([1]));
    assert_eq!(s["required"], serde_json::json!(["version"]));
}

#[test]
fn every_mapping_is_closed_and_documented() {
    let s = schema();
    assert_eq!(s["additionalProperties"], false);
    for def in [
        "StateConfig",
        "SyncConfig",
        "OnCreate",
        "Limits",
        "GoogleCredentials",
    ] {
        let d = &s["$defs"][def];
        assert_eq!(d["additionalProperties"], false, "{def}");
        for (name, prop) in d["properties"].as_object().unwrap() {
            assert!(
                prop["description"].is_string(),
                "{def}.{name} has no description"
            );
        }
    }
    for (name, prop) in s["properties"].as_object().unwrap() {
        assert!(prop["description"].is_string(), "{name} has no description");
    }
}

#[test]
fn sources_and_targets_are_discriminated_by_kind() {
    let s = schema();
    let kinds = |def: &str| -> Vec<String> {
        let variants = s["$defs"][def]["oneOf"].as_array().unwrap();
        variants
            .iter()
            .map(|v| {
                assert_eq!(v["additionalProperties"], false, "{def}: {v}");
                assert!(v["required"].as_array().unwrap().contains(&"kind".into()));
                for (name, prop) in v["properties"].as_object().unwrap() {
                    if name != "kind" {
                        assert!(prop["description"].is_string(), "{def} {name}");
                    }
                }
                v["properties"]["kind"]["const"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect()
    };
    assert_eq!(
        kinds("SourceConfig"),
        [
            "csv",
            "google_workspace",
            "entra_id",
            "zendesk",
            "ldap",
            "scim"
        ]
    );
    assert_eq!(
        kinds("TargetConfig"),
        [
            "csv_export",
            "mojo_helpdesk",
            "zendesk",
            "scim",
            "request_tracker",
            "entra_guests"
        ]
    );
}

#[test]
fn unit_enums_are_enums_with_descriptions() {
    let s = schema();
    assert_eq!(
        s["$defs"]["RemovedPolicy"]["enum"],
        serde_json::json!(["deactivate", "delete", "keep"])
    );
    assert_eq!(
        s["$defs"]["ManagePolicy"]["enum"],
        serde_json::json!(["owned", "all"])
    );
    assert_eq!(
        s["$defs"]["ManagePolicy"]["enumDescriptions"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    // Secret references offer exactly `env` and `file`.
    let secret = s["$defs"]["SecretRef"]["oneOf"].as_array().unwrap();
    let keys: Vec<&str> = secret
        .iter()
        .map(|v| v["required"][0].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["env", "file"]);
}
