//! `amends run`: the service. Serves /metrics, /healthz and /readyz, runs the consumer group
//! until SIGTERM or SIGINT, then drains, commits and returns.

use crate::config::Config;
use crate::kafka::{self, PipelineError, RunReport};
use crate::telemetry::{http, Health};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

pub async fn run(config: Config) -> Result<RunReport, RunError> {
    let health = Arc::new(Health::default());
    let _http = if config.http.listen.is_empty() {
        None
    } else {
        let addr = config
            .http
            .listen
            .parse()
            .map_err(|_| RunError::Http(format!("bad address {}", config.http.listen)))?;
        let (bound, task) = http::serve(addr, health.clone())
            .await
            .map_err(|e| RunError::Http(format!("cannot listen on {addr}: {e}")))?;
        tracing::info!(%bound, "http endpoint listening (/metrics, /healthz, /readyz)");
        Some(AbortOnDrop(task))
    };
    let stop = Arc::new(AtomicBool::new(false));
    spawn_signal_handler(stop.clone())?;
    tracing::info!(brokers = %config.kafka.brokers, group = %config.kafka.group_id, "amends starting");
    let report = kafka::run(config, stop, health).await?;
    Ok(report)
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("http endpoint: {0}")]
    Http(String),
    #[error("signal handler: {0}")]
    Signal(std::io::Error),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn spawn_signal_handler(stop: Arc<AtomicBool>) -> Result<(), RunError> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).map_err(RunError::Signal)?;
    let mut int = signal(SignalKind::interrupt()).map_err(RunError::Signal)?;
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received; stopping"),
            _ = int.recv() => tracing::info!("SIGINT received; stopping"),
        }
        stop.store(true, Ordering::Relaxed);
    });
    Ok(())
}
