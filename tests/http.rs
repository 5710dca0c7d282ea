//! The HTTP endpoint: /healthz, /readyz following the pipeline's health, /metrics in
//! Prometheus text with the metrics the pipeline emits.

use amends::telemetry::{events, http, Health};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = String::new();
    s.read_to_string(&mut buf).await.unwrap();
    let code = buf.split_whitespace().nth(1).unwrap().parse().unwrap();
    (code, buf)
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let health = Arc::new(Health::default());
    let (addr, task) = http::serve("127.0.0.1:0".parse().unwrap(), health.clone())
        .await
        .unwrap();
    assert_eq!(get(addr, "/healthz").await.0, 200);
    let (code, body) = get(addr, "/readyz").await;
    assert_eq!(code, 503);
    assert!(body.contains("broker not reachable"), "{body}");
    health.set_broker_reachable(true);
    assert!(get(addr, "/readyz")
        .await
        .1
        .contains("no partitions assigned"));
    health.set_assigned(true);
    assert_eq!(get(addr, "/readyz").await.0, 200);
    health.set_stopping();
    assert_eq!(get(addr, "/readyz").await.0, 503);

    events::EventDecoded {
        channel: "shipping",
        outcome: "failure",
    }
    .emit();
    events::DeadLettered {
        reason: "validation",
        topic: "touchpoints",
        partition: 0,
        offset: 1,
        field: Some("outcome"),
    }
    .emit();
    events::TaskDelivered {
        rule: "breaking_point",
        severity: "major",
        latency_s: Some(0.2),
    }
    .emit();
    let (code, body) = get(addr, "/metrics").await;
    assert_eq!(code, 200);
    for needle in [
        "amends_events_total{channel=\"shipping\",outcome=\"failure\"} 1",
        "amends_dead_letters_total{reason=\"validation\"} 1",
        "amends_tasks_total{rule=\"breaking_point\",severity=\"major\"} 1",
        "amends_event_to_task_seconds_bucket{le=\"0.25\"} 1",
    ] {
        assert!(body.contains(needle), "/metrics lacks `{needle}`:\n{body}");
    }
    task.abort();
}
