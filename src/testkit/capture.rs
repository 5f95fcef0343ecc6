//! Captures tracing output at trace level (more than `-vv` shows) for the current thread, so a
//! test can assert that no log line holds a secret.
//!
//! The subscriber is the thread's default while the guard lives: use it from a current-thread
//! runtime (`#[tokio::test]`), where the connector and the emulator run on the same thread.

use std::io::Write;
use std::sync::{Arc, Mutex};

/// The text logged while the capture was active.
#[derive(Clone, Default)]
pub struct Captured {
    buf: Arc<Mutex<Vec<u8>>>,
}

impl Captured {
    pub fn text(&self) -> String {
        self.buf
            .lock()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }
}

struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut b) = self.0.lock() {
            b.extend_from_slice(data);
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Starts capturing every event at every level on this thread until the guard drops.
pub fn logs() -> (Captured, tracing::subscriber::DefaultGuard) {
    let captured = Captured::default();
    let buf = captured.buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || Sink(buf.clone()))
        .finish();
    (captured, tracing::subscriber::set_default(subscriber))
}
