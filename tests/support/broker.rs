//! [`Tansu`]: a Kafka-protocol broker as a child process, one per test.

use super::clients::metadata_probe;
use super::{free_port, print_tail, tail, TestDir};
use std::fs;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The Tansu release `scripts/test` installs and these tests are written against.
pub const TANSU_VERSION: &str = "0.6.0";

/// How long a broker may take to answer its first metadata request.
const BROKER_START_TIMEOUT: Duration = Duration::from_secs(30);

/// Finds the `tansu` binary on PATH or in `~/.cargo/bin`, or fails the test.
pub fn tansu_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("TANSU_BIN") {
        return PathBuf::from(p);
    }
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    if let Some(home) = std::env::var_os("CARGO_HOME") {
        dirs.push(PathBuf::from(home).join("bin"));
    }
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(PathBuf::from(home).join(".cargo/bin"));
    }
    for d in dirs {
        let candidate = d.join("tansu");
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "the `tansu` broker binary was not found on PATH or in ~/.cargo/bin. Kafka tests need a real \
         broker: run scripts/test, which installs Tansu {TANSU_VERSION} \
         (cargo install tansu --locked --features dynostore,libsql --version {TANSU_VERSION})"
    );
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Storage {
    /// `memory://tansu/`: fast, forgets everything when the broker stops.
    Memory,
    /// `sqlite://tansu.db` in the broker's directory: survives `kill -9` and restart.
    Sqlite,
}

/// A Tansu broker running as a child process in its own temporary directory. Killed on drop;
/// if the test is panicking, the tail of the broker's log is printed first.
pub struct Tansu {
    dir: TestDir,
    port: u16,
    storage: Storage,
    child: Option<Child>,
    starts: u32,
}

impl Tansu {
    /// A broker with in-memory storage.
    pub fn start() -> Tansu {
        Tansu::start_with(Storage::Memory)
    }

    /// A broker with SQLite storage, so topics, records and committed offsets survive
    /// [`Tansu::kill9`] followed by [`Tansu::restart`].
    pub fn start_durable() -> Tansu {
        Tansu::start_with(Storage::Sqlite)
    }

    pub fn start_with(storage: Storage) -> Tansu {
        tansu_binary(); // fail with the install hint before anything else
        let dir = TestDir::new("tansu-");
        let mut t = Tansu {
            dir,
            port: 0,
            storage,
            child: None,
            starts: 0,
        };
        // Another process may grab the port between the probe and the broker's bind; then the
        // broker exits at once and we try another port.
        let mut last_err = String::new();
        for _ in 0..5 {
            t.port = free_port();
            match t.spawn_and_wait() {
                Ok(()) => return t,
                Err(e) => {
                    last_err = e;
                    t.kill9();
                }
            }
        }
        panic!("tansu did not start: {last_err}");
    }

    /// `127.0.0.1:PORT`, for `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The broker's combined stdout and stderr for its latest start.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join(format!("tansu-{}.log", self.starts))
    }

    fn storage_url(&self) -> &'static str {
        match self.storage {
            Storage::Memory => "memory://tansu/",
            Storage::Sqlite => "sqlite://tansu.db",
        }
    }

    fn spawn_and_wait(&mut self) -> Result<(), String> {
        self.starts += 1;
        let log =
            fs::File::create(self.log_path()).map_err(|e| format!("create tansu log: {e}"))?;
        let log2 = log
            .try_clone()
            .map_err(|e| format!("clone log handle: {e}"))?;
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let mut cmd = Command::new(tansu_binary());
        cmd.current_dir(self.dir.path())
            .arg("broker")
            .args(["--listener-url", &url, "--advertised-listener-url", &url])
            .args(["--storage-engine", self.storage_url()])
            .args(tansu_extra_args())
            .env(
                "RUST_LOG",
                std::env::var("TANSU_LOG").unwrap_or_else(|_| "warn".into()),
            )
            // Tansu reads these as defaults for its flags; keep a developer's shell out of it.
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .env_remove("SCHEMA_REGISTRY")
            .env_remove("CLUSTER_ID")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2));
        let child = cmd
            .spawn()
            .map_err(|e| format!("spawn {:?}: {e}", cmd.get_program()))?;
        self.child = Some(child);
        self.wait_ready()
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + BROKER_START_TIMEOUT;
        let bootstrap = self.bootstrap();
        let mut last = String::from("no attempt yet");
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(format!(
                        "tansu exited with {status} before accepting requests; log tail:\n{}",
                        tail(&self.log_path(), 40)
                    ));
                }
            }
            if TcpStream::connect_timeout(
                &format!("127.0.0.1:{}", self.port).parse().expect("addr"),
                Duration::from_millis(200),
            )
            .is_ok()
            {
                match metadata_probe(&bootstrap) {
                    Ok(()) => return Ok(()),
                    Err(e) => last = e,
                }
            } else {
                last = "port not accepting connections".into();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!(
            "tansu on {bootstrap} did not answer a metadata request within {BROKER_START_TIMEOUT:?} (last error: {last}); log tail:\n{}",
            tail(&self.log_path(), 40)
        ))
    }

    /// SIGKILL, no goodbye. The port is released once the process is reaped (here).
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the broker again on the same port with the same storage (which, for
    /// [`Storage::Memory`], means empty). Panics if it does not come up.
    pub fn restart(&mut self) {
        self.kill9();
        // The old listener may linger for a moment; retry the start a few times.
        let mut last = String::new();
        for _ in 0..5 {
            match self.spawn_and_wait() {
                Ok(()) => return,
                Err(e) => {
                    last = e;
                    self.kill9();
                    std::thread::sleep(Duration::from_millis(500));
                }
            }
        }
        panic!("tansu did not restart on port {}: {last}", self.port);
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }
}

/// Extra `tansu broker` arguments from `TANSU_ARGS` (whitespace-separated), for debugging.
fn tansu_extra_args() -> Vec<String> {
    std::env::var("TANSU_ARGS")
        .map(|s| s.split_whitespace().map(String::from).collect())
        .unwrap_or_default()
}

impl Drop for Tansu {
    fn drop(&mut self) {
        if std::thread::panicking() {
            print_tail("tansu log", &self.log_path(), 30);
        }
        self.kill9();
    }
}
