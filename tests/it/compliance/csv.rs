//! `csv` source: a file in a temp dir. No HTTP, so paging, throttling, bad answers and
//! credentials are declared N/A.

use async_trait::async_trait;
use headcount::connectors::Source;
use headcount::connectors::csv::CsvSource;
use headcount::testkit::RequestLog;
use headcount::testkit::compliance::{Inject, NotApplicable, Paging, SourceHarness};

pub struct CsvHarness {
    dir: tempfile::TempDir,
    source: CsvSource,
}

impl CsvHarness {
    fn path(&self) -> std::path::PathBuf {
        self.dir.path().join("people.csv")
    }
}

#[async_trait]
impl SourceHarness for CsvHarness {
    const KIND: &'static str = "csv";

    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("people.csv");
        std::fs::write(&path, "email,first,last\n").unwrap();
        CsvHarness {
            source: CsvSource::new(path, b','),
            dir,
        }
    }

    fn source(&self) -> &dyn Source {
        &self.source
    }

    async fn seed(&self, n: usize) {
        let mut text = String::from("email,first,last\n");
        for i in 0..n {
            text.push_str(&format!("user{i}@example.com,Given{i},\"Family, {i}\"\n"));
        }
        std::fs::write(self.path(), text).unwrap();
    }

    fn log(&self) -> Option<&RequestLog> {
        None
    }

    fn paging(&self) -> Result<Paging, NotApplicable> {
        Err(NotApplicable("a CSV file is read whole: no pages"))
    }

    fn inject(&self, _: Inject) -> Result<(), NotApplicable> {
        Err(NotApplicable(
            "a local file has no HTTP answers, throttling or credentials",
        ))
    }

    fn secret(&self) -> Result<String, NotApplicable> {
        Err(NotApplicable("the csv source is given no credential"))
    }
}

headcount::source_compliance_suite!(CsvHarness);
