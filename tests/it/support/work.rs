//! A scratch copy of a fixture folder and the binary run in it: what every end-to-end test of
//! the CLI starts from.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command as StdCommand, Stdio};

use assert_cmd::Command;

pub struct Work {
    pub dir: tempfile::TempDir,
}

impl Work {
    /// A scratch copy of `tests/fixtures/<fixture>`.
    pub fn new(fixture: &str) -> Work {
        let dir = tempfile::tempdir().expect("tempdir");
        let src = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(fixture);
        for entry in fs::read_dir(&src).expect("fixtures") {
            let entry = entry.expect("entry");
            fs::copy(entry.path(), dir.path().join(entry.file_name())).expect("copy");
        }
        Work { dir }
    }

    /// A scratch copy of `examples/<name>` with each `(from, to)` replaced in its
    /// `headcount.yaml`: the examples keep the vendors' real URLs, tests point them at emulators.
    pub fn example(name: &str, rewrites: &[(&str, &str)]) -> Work {
        let dir = tempfile::tempdir().expect("tempdir");
        let src = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("examples")
            .join(name);
        for entry in fs::read_dir(&src).expect("example") {
            let entry = entry.expect("entry");
            if entry.file_type().expect("type").is_file() {
                fs::copy(entry.path(), dir.path().join(entry.file_name())).expect("copy");
            }
        }
        let config = dir.path().join("headcount.yaml");
        let mut text = fs::read_to_string(&config).expect("example config");
        for (from, to) in rewrites {
            assert!(text.contains(from), "`{from}` is not in examples/{name}");
            text = text.replace(from, to);
        }
        fs::write(&config, text).expect("write config");
        Work { dir }
    }

    /// Replaces `from` with `to` in the scratch file `rel` (the source data of an example).
    pub fn edit(&self, rel: &str, from: &str, to: &str) {
        let text = fs::read_to_string(self.path(rel)).expect("read");
        assert!(text.contains(from), "`{from}` is not in {rel}");
        fs::write(self.path(rel), text.replace(from, to)).expect("write");
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// The binary in the scratch folder, without colour or an inherited config path.
    pub fn cmd(&self) -> Command {
        let mut c = Command::cargo_bin("headcount").expect("binary");
        c.current_dir(self.dir.path())
            .env_remove("HEADCOUNT_CONFIG")
            .env("NO_COLOR", "1");
        c
    }

    /// The binary as a plain process, for tests that hold its pipes themselves.
    pub fn spawnable(&self) -> StdCommand {
        let mut c = StdCommand::new(assert_cmd::cargo::cargo_bin("headcount"));
        c.current_dir(self.dir.path())
            .env_remove("HEADCOUNT_CONFIG")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        c
    }

    pub fn run(&self, args: &[&str]) -> assert_cmd::assert::Assert {
        self.cmd().args(args).write_stdin("").assert()
    }

    pub fn write(&self, rel: &str, text: &str) {
        fs::write(self.path(rel), text).expect("write");
    }
}
