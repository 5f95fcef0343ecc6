//! One real `scim2-server` (PyPI) per test binary, with `--dynamic-tenants` so every test gets
//! its own empty store under `http://127.0.0.1:PORT/<tenant>/v2`.
//!
//! The server is installed by `scripts/start-scim.sh` into `$HEADCOUNT_SCIM_VENV` (default
//! `$HOME/.cache/headcount-it/venv`). It is started through `sh`, which kills it as soon as its
//! stdin reaches end of file; the write end of that pipe lives in a static, so when the test
//! process exits (normally, by panic or by a signal) the kernel closes it and the server goes too.

use std::io::Read;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long the server may take to answer after being spawned.
const START_LIMIT: Duration = Duration::from_secs(20);
/// Attempts with a fresh port when the first one does not come up (port taken in between).
const START_ATTEMPTS: usize = 3;

pub struct ScimServer {
    pub port: u16,
    pub token: String,
    /// Closing it (process exit) makes the wrapper shell kill the server.
    _stdin: Mutex<ChildStdin>,
    _child: Mutex<Child>,
}

impl ScimServer {
    /// `http://127.0.0.1:PORT` (no path).
    pub fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A base URL with a fresh tenant, unique in this process: `http://127.0.0.1:PORT/<t>/v2`.
    pub fn new_tenant(&self, label: &str) -> String {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let label: String = label
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        format!("{}/{label}-{n}/v2", self.origin())
    }
}

/// The venv the installer script uses.
pub fn venv_dir() -> PathBuf {
    if let Some(v) = std::env::var_os("HEADCOUNT_SCIM_VENV") {
        return PathBuf::from(v);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    home.join(".cache/headcount-it/venv")
}

/// The shared server, started on first use. `None` when the venv is missing outside CI, after
/// [`super::missing_prerequisite`] printed a visible `SKIPPED:` line; under CI that fails the
/// test instead.
pub fn server() -> Option<&'static ScimServer> {
    static SERVER: OnceLock<Result<ScimServer, Start>> = OnceLock::new();
    match SERVER.get_or_init(start) {
        Ok(s) => Some(s),
        Err(Start::Missing(why)) => {
            super::missing_prerequisite(why);
            None
        }
        Err(Start::Failed(e)) => panic!("{e}"),
    }
}

/// One real-server test at a time in the test binary: they share one single-threaded Python
/// server and two cores, and the kill/SIGTERM tests need their timing undisturbed.
pub fn exclusive() -> MutexGuard<'static, ()> {
    static ONE: Mutex<()> = Mutex::new(());
    ONE.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Why the server is not there.
enum Start {
    /// Not installed: a missing prerequisite.
    Missing(String),
    /// Installed but did not come up: always a failure.
    Failed(String),
}

fn start() -> Result<ScimServer, Start> {
    let venv = venv_dir();
    let exe = venv.join("bin/scim2-server");
    if !exe.exists() {
        return Err(Start::Missing(format!(
            "scim2-server is not installed at {}: run ./scripts/start-scim.sh (or set HEADCOUNT_SCIM_VENV)",
            exe.display()
        )));
    }
    let token = format!(
        "hc-test-{}-{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0)
    );
    let mut last_error = String::new();
    for attempt in 1..=START_ATTEMPTS {
        match start_once(&exe, &token, attempt) {
            Ok(s) => return Ok(s),
            Err(e) => last_error = e,
        }
    }
    Err(Start::Failed(format!(
        "scim2-server did not start after {START_ATTEMPTS} attempts: {last_error}"
    )))
}

fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("local_addr: {e}"))
}

fn start_once(exe: &std::path::Path, token: &str, attempt: usize) -> Result<ScimServer, String> {
    let port = free_port()?;
    let log = std::env::temp_dir().join(format!(
        "headcount-scim2-server-{}-{attempt}.log",
        std::process::id()
    ));
    // The server runs in the background of `sh`; `cat` waits for our end of the pipe to close
    // (this process exits), then the server is killed. `exec`-free on purpose.
    let script = r#"
"$0" --hostname 127.0.0.1 --port "$1" --bearer-token "$2" --dynamic-tenants >"$3" 2>&1 </dev/null &
pid=$!
cat >/dev/null
kill "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
"#;
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(exe)
        .arg(port.to_string())
        .arg(token)
        .arg(&log)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("spawn sh: {e}"))?;
    let stdin = child.stdin.take().ok_or("no stdin")?;

    let deadline = Instant::now() + START_LIMIT;
    let probe = "/probe/v2/ServiceProviderConfig";
    loop {
        match http_get_status(port, probe, token) {
            Some(200) => break,
            Some(other) => {
                // Somebody else holds the port (wrong token or another service).
                drop(stdin);
                let _ = child.wait();
                return Err(format!("port {port} answered {other}, not our server"));
            }
            None => {}
        }
        if Instant::now() > deadline {
            drop(stdin);
            let _ = child.wait();
            let mut text = String::new();
            if let Ok(mut f) = std::fs::File::open(&log) {
                let _ = f.read_to_string(&mut text);
            }
            return Err(format!(
                "no answer on port {port} within {START_LIMIT:?}; log {}:\n{text}",
                log.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(30));
    }
    Ok(ScimServer {
        port,
        token: token.to_string(),
        _stdin: Mutex::new(stdin),
        _child: Mutex::new(child),
    })
}

/// A minimal blocking HTTP/1.0 GET (no runtime needed before the server is up). Returns the
/// status code, or `None` when nothing answers yet.
fn http_get_status(port: u16, path: &str, token: &str) -> Option<u16> {
    use std::io::Write;
    use std::net::TcpStream;
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.set_write_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n\r\n"
    )
    .ok()?;
    let mut buf = [0u8; 64];
    let mut got = 0;
    while got < 12 {
        let n = s.read(&mut buf[got..]).ok()?;
        if n == 0 {
            break;
        }
        got += n;
    }
    let head = std::str::from_utf8(&buf[..got]).ok()?;
    head.split_whitespace().nth(1)?.parse().ok()
}
