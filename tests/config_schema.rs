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
        "schemas/headcount.schema.json is out of date with the config types: run `headcount schema > schemas/headcount.schema.json` (or `UPDATE_SCHEMA=1 cargo test --test config_schema`) and commit the result"
    );
}
