//! `/metrics` (Prometheus text), `/healthz` (alive) and `/readyz` (partitions assigned and
//! restored, broker reachable) on `http.listen`.

use axum::{extract::State, http::StatusCode, routing::get, Router};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

/// Readiness shared between the pipeline and the HTTP endpoint.
#[derive(Debug, Default)]
pub struct Health {
    broker_reachable: AtomicBool,
    assigned: AtomicBool,
    stopping: AtomicBool,
    restoring: std::sync::atomic::AtomicI64,
    /// Exactly-once: the labels (`amends.txn` header values) of the transactions this
    /// instance aborted or was fenced in, the latest 1,000.
    aborted: std::sync::Mutex<std::collections::VecDeque<String>>,
    /// Input records handed to the partition workers since start.
    records: std::sync::atomic::AtomicU64,
}

impl Health {
    pub fn set_broker_reachable(&self, v: bool) {
        self.broker_reachable.store(v, Ordering::Relaxed);
    }
    pub fn set_assigned(&self, v: bool) {
        self.assigned.store(v, Ordering::Relaxed);
    }
    /// Counts partitions whose state is being rebuilt (+1 when one starts, -1 when it ends).
    pub fn restoring(&self, delta: i64) {
        self.restoring.fetch_add(delta, Ordering::Relaxed);
    }
    /// Counts `n` input records handed to the partition workers.
    pub fn add_records(&self, n: u64) {
        self.records.fetch_add(n, Ordering::Relaxed);
    }
    /// Input records handed to the partition workers since start (a worker's queue is
    /// bounded, so in steady state this moves at the processing rate).
    pub fn records(&self) -> u64 {
        self.records.load(Ordering::Relaxed)
    }
    /// Notes a transaction that will never commit.
    pub fn note_aborted(&self, label: &str) {
        let mut a = self.aborted.lock().unwrap_or_else(|p| p.into_inner());
        if a.len() == 1000 {
            a.pop_front();
        }
        a.push_back(label.to_string());
    }
    /// The transactions noted by [`Health::note_aborted`], oldest first.
    pub fn aborted_transactions(&self) -> Vec<String> {
        let a = self.aborted.lock().unwrap_or_else(|p| p.into_inner());
        a.iter().cloned().collect()
    }
    pub fn set_stopping(&self) {
        self.stopping.store(true, Ordering::Relaxed);
    }
    /// Ready when the broker answered, this instance holds partitions (all restored before
    /// they are marked assigned), and it is not shutting down.
    pub fn ready(&self) -> Result<(), &'static str> {
        if self.stopping.load(Ordering::Relaxed) {
            return Err("stopping");
        }
        if !self.broker_reachable.load(Ordering::Relaxed) {
            return Err("broker not reachable");
        }
        if !self.assigned.load(Ordering::Relaxed) {
            return Err("no partitions assigned yet");
        }
        if self.restoring.load(Ordering::Relaxed) > 0 {
            return Err("rebuilding partition state");
        }
        Ok(())
    }
}

static RECORDER: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the Prometheus recorder once per process and returns its handle.
pub fn prometheus() -> PrometheusHandle {
    RECORDER
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Full(
                        super::names::EVENT_TO_TASK.to_string(),
                    ),
                    &[
                        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                    ],
                )
                .and_then(|b| b.install_recorder())
                // Another recorder is already installed (tests embedding amends): render an
                // empty registry rather than fail.
                .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder().handle());
            super::names::describe();
            handle
        })
        .clone()
}

#[derive(Clone)]
struct AppState {
    health: Arc<Health>,
    prom: PrometheusHandle,
}

/// Binds `addr` and serves until the returned task is aborted. Returns the bound address
/// (useful with port 0).
pub async fn serve(
    addr: SocketAddr,
    health: Arc<Health>,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let state = AppState {
        health,
        prom: prometheus(),
    };
    let app = Router::new()
        .route(
            "/metrics",
            get(|State(s): State<AppState>| async move { s.prom.render() }),
        )
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(|State(s): State<AppState>| async move {
                match s.health.ready() {
                    Ok(()) => (StatusCode::OK, "ready\n".to_string()),
                    Err(why) => (
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!("not ready: {why}\n"),
                    ),
                }
            }),
        )
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "http endpoint stopped");
        }
    });
    Ok((bound, task))
}
