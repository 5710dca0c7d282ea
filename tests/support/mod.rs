//! Shared helpers for the tests that talk to a real Kafka-protocol broker.
//!
//! Every test gets its own [`Tansu`] broker process (a free port, a fresh temporary directory)
//! and fresh topic and group names from [`unique_name`], so tests can run in parallel and never
//! see each other's data. The real service binary runs under [`AmendsProcess`].
//!
//! - `broker`: [`Tansu`], a broker child process (memory or SQLite storage, kill -9, restart).
//! - `clients`: topic creation, producing with acknowledgement, reading a topic back.
//! - `service`: the service's TOML config and [`AmendsProcess`], the binary as a child process.
//! - `events`: [`EventGen`], a small seeded generator of touch-point events and poison records.
//!
//! All helpers are blocking: call them from plain `#[test]` functions, not from inside an
//! async runtime (they drive rdkafka's futures on a private current-thread runtime).
//!
//! A missing `tansu` binary fails the test with a message pointing at `scripts/test`, which
//! installs it; Kafka tests never skip silently. When a test fails, the temporary
//! directories holding broker and service logs are kept and their paths printed.

// Each test binary uses a different subset of these helpers (and of the re-exports).
#![allow(dead_code, unused_imports)]

mod broker;
mod clients;
mod events;
mod service;

pub use broker::{tansu_binary, Storage, Tansu, TANSU_VERSION};
pub use clients::{
    create_topics, drain_topic, produce, produce_batch, produce_with_headers, Landed, OutRecord,
    Producer, ReadRecord, TopicReader,
};
pub use events::{now_ms, rfc3339_ms, EventGen, GenRecord};
pub use service::{write_config, AmendsProcess, ServiceConfig, Topics};

use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

// ---------------------------------------------------------------------------------------------
// Names and ports
// ---------------------------------------------------------------------------------------------

/// A name no other test (in this process or another) uses: `prefix-<pid>-<time>-<n>`.
/// Only `[a-z0-9-]` after the prefix, so it is a valid topic, group and file name.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}-{}-{:x}-{n}",
        std::process::id(),
        nanos % 0xffff_ffff_ffff
    )
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local addr").port()
}

// ---------------------------------------------------------------------------------------------
// Log files
// ---------------------------------------------------------------------------------------------

/// The last `max_lines` lines of a file (empty when it cannot be read).
pub fn tail(path: &Path, max_lines: usize) -> String {
    let mut f = match fs::File::open(path) {
        Ok(f) => f,
        Err(_) => return String::new(),
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(64 * 1024);
    let _ = f.seek(SeekFrom::Start(start));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(max_lines)..].join("\n")
}

fn print_tail(label: &str, path: &Path, max_lines: usize) {
    eprintln!(
        "----- last {max_lines} lines of {label} ({}) -----",
        path.display()
    );
    eprintln!("{}", tail(path, max_lines));
    eprintln!("----- end of {label} -----");
}

// ---------------------------------------------------------------------------------------------
// Temporary directories
// ---------------------------------------------------------------------------------------------

/// A temporary directory that is removed when the test passes and kept (with its path printed)
/// when the test panics, so broker and service logs survive for a post-mortem.
pub struct TestDir {
    dir: Option<tempfile::TempDir>,
}

impl TestDir {
    pub fn new(prefix: &str) -> TestDir {
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir()
            .expect("create a temp dir");
        TestDir { dir: Some(dir) }
    }

    pub fn path(&self) -> &Path {
        self.dir.as_ref().expect("dir is present until drop").path()
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if let Some(dir) = self.dir.take() {
            if std::thread::panicking() || std::env::var_os("AMENDS_TEST_KEEP_DIRS").is_some() {
                let kept: PathBuf = dir.keep();
                eprintln!("kept {} for inspection", kept.display());
            }
        }
    }
}
