//! `csv_export` target: export sets in a temp dir. Its secret is a `password` value: written
//! to the import file (Mojo reads it there), never to an error or a log line.

use std::collections::BTreeMap;

use async_trait::async_trait;
use headcount::connectors::mojo::CsvExportTarget;
use headcount::connectors::{ApplyOptions, Target, TargetOp};
use headcount::testkit::RequestLog;
use headcount::testkit::compliance::{Inject, NotApplicable, Paging, TargetHarness, apply_all};
use serde_json::{Value, json};

const SECRET: &str = "Pw-7c1e9a-compliance-secret";

pub struct CsvExportHarness {
    dir: tempfile::TempDir,
    target: CsvExportTarget,
}

#[async_trait]
impl TargetHarness for CsvExportHarness {
    const KIND: &'static str = "csv_export";

    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        // Two rows per file, so a seed spans several users files.
        let target = CsvExportTarget::new(dir.path().join("out"), 2, vec![]);
        CsvExportHarness { dir, target }
    }

    fn target(&self) -> &dyn Target {
        &self.target
    }

    /// The exports are the backing: seeding writes one through the target itself.
    async fn seed(&self, n: usize) {
        let ops: Vec<TargetOp> = (0..n).map(|i| self.create_op(i)).collect();
        for r in apply_all(&self.target, &ops, &ApplyOptions::default()).await {
            r.unwrap();
        }
    }

    fn create_op(&self, n: usize) -> TargetOp {
        let fields = BTreeMap::from([
            ("email".to_string(), json!(format!("User{n}@Example.com"))),
            ("first_name".to_string(), json!(format!("Given{n}"))),
            ("last_name".to_string(), json!("Family")),
            ("password".to_string(), json!(SECRET)),
        ]);
        TargetOp::Create {
            fields,
            active: true,
            notify: false,
        }
    }

    fn update_fields(&self, n: usize) -> BTreeMap<String, Value> {
        BTreeMap::from([
            ("first_name".to_string(), json!(format!("Renamed{n}"))),
            ("user_notes".to_string(), json!("moved to Ops")),
        ])
    }

    fn write_only(&self, field: &str) -> bool {
        field == "password"
    }

    /// Export sets written so far.
    async fn writes(&self) -> usize {
        std::fs::read_dir(self.dir.path().join("out"))
            .map(|d| {
                d.flatten()
                    .filter(|e| e.file_name().to_string_lossy().starts_with("export-"))
                    .count()
            })
            .unwrap_or(0)
    }

    fn log(&self) -> Option<&RequestLog> {
        None
    }

    fn paging(&self) -> Result<Paging, NotApplicable> {
        Err(NotApplicable("the exports are read whole: no pages"))
    }

    fn inject(&self, fault: Inject) -> Result<(), NotApplicable> {
        Err(NotApplicable(match fault {
            Inject::LostCreateAnswer => {
                "an export set is renamed into place at once: there is no answer to lose"
            }
            _ => "local files have no HTTP answers, throttling or credentials",
        }))
    }

    fn secret(&self) -> Result<String, NotApplicable> {
        Ok(SECRET.to_string())
    }
}

headcount::target_compliance_suite!(CsvExportHarness);
