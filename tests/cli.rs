//! The `amends` binary as a newcomer runs it: replay determinism and content, config
//! validation exit codes and messages.

use std::path::Path;
use std::process::Command;

fn amends() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_amends"));
    // Overrides from the developer's shell must not leak into these tests.
    for (k, _) in std::env::vars() {
        if k.starts_with("AMENDS_") {
            c.env_remove(k);
        }
    }
    c
}

fn write_input(path: &Path) -> usize {
    // Four days, so that promises made in the simulation come due (and some are missed).
    let cfg = amends::sim::SimConfig {
        customers: 100,
        duration: amends::domain::Millis::from_days(4),
        poison_every: 500,
        ..Default::default()
    };
    let mut f = std::fs::File::create(path).unwrap();
    amends::sim::Simulator::new(cfg)
        .write_jsonl(&mut f)
        .unwrap()
}

#[test]
fn replay_is_byte_identical_and_writes_tasks_and_dead_letters() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("events.jsonl");
    let n = write_input(&input);
    assert!(n > 2000, "simulated input has {n} records");
    let run = |out: &str| {
        let o = amends()
            .args(["replay", "--input"])
            .arg(&input)
            .arg("--output")
            .arg(dir.path().join(out))
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "replay failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let tasks = std::fs::read(dir.path().join(out).join("recovery-tasks.jsonl")).unwrap();
        let dead = std::fs::read(dir.path().join(out).join("dead-letter.jsonl")).unwrap();
        (tasks, dead)
    };
    let (t1, d1) = run("a");
    let (t2, d2) = run("b");
    assert!(t1 == t2, "recovery-tasks.jsonl differs between two replays");
    assert!(d1 == d2, "dead-letter.jsonl differs between two replays");

    let tasks: Vec<amends::domain::RecoveryTask> = t1
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    assert!(
        tasks.len() > 20,
        "four simulated days of 100 customers yield tasks, got {}",
        tasks.len()
    );
    for t in &tasks {
        assert!(
            [
                "breaking_point",
                "repeat_failure",
                "detractor",
                "cascade",
                "customer_effort",
                "missed_expectation",
                "slow_response"
            ]
            .contains(&t.rule.as_str()),
            "{}",
            t.rule
        );
        if t.rule == "repeat_failure" {
            assert!(
                t.failure_count >= 2,
                "a repeat is at least the 2nd incident: {t:?}"
            );
        }
        assert!(
            !t.evidence.is_empty()
                && t.evidence
                    .iter()
                    .all(|e| e.topic == "touchpoints" && e.partition == 0)
        );
        assert!(
            t.emitted_at >= t.detected_at,
            "emitted_at is event time, never before detection: {t:?}"
        );
        assert_eq!(t.actions.len(), 5);
        // An opening names the customer's n-th failure; an escalation by a failure names the
        // n-th failure on the incident; one by a contact leads with its signal (and `reason`).
        let opening = t.explanation.contains("failure in 30 days");
        let escalation = t
            .explanation
            .contains(&format!("failure on {} (", t.incident))
            && t.explanation.contains("incident in 30 days");
        let signal = t.reason.as_deref().is_some_and(|r| {
            let mut cap = r.to_string();
            cap[..1].make_ascii_uppercase();
            t.explanation.starts_with(&cap)
        });
        assert!(
            signal || if t.revision == 1 { opening } else { escalation },
            "rev {}: {}",
            t.revision,
            t.explanation
        );
    }
    let rules: std::collections::BTreeSet<&str> = tasks.iter().map(|t| t.rule.as_str()).collect();
    assert_eq!(
        rules.into_iter().collect::<Vec<_>>(),
        [
            "breaking_point",
            "cascade",
            "customer_effort",
            "detractor",
            "missed_expectation",
            "repeat_failure",
            "slow_response"
        ],
        "four simulated days exercise every rule"
    );
    // Evidence offsets are line indexes: the referenced line holds that event.
    let raw = std::fs::read(&input).unwrap();
    let lines: Vec<&[u8]> = raw.split(|b| *b == b'\n').collect();
    let e = &tasks[0].evidence[0];
    let line = std::str::from_utf8(lines[e.offset as usize]).unwrap();
    assert!(
        line.contains(&format!("\"event_id\":\"{}\"", e.event_id)),
        "line {} should hold {}",
        e.offset,
        e.event_id
    );

    let dead: Vec<serde_json::Value> = d1
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    assert!(!dead.is_empty(), "poison records are dead-lettered");
    for d in &dead {
        let reason = d["reason"].as_str().unwrap();
        assert!(
            ["decode", "validation", "too_large"].contains(&reason),
            "{d}"
        );
        assert!(d["payload_base64"].as_str().is_some_and(|s| !s.is_empty()));
        let off = d["offset"].as_i64().unwrap() as usize;
        let original = lines[off];
        let decoded = base64_decode(d["payload_base64"].as_str().unwrap());
        assert_eq!(
            decoded, original,
            "the dead letter keeps the original bytes of line {off}"
        );
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

#[test]
fn check_config_accepts_the_shipped_file_and_names_the_key_of_a_bad_one() {
    let ok = amends()
        .args(["check-config", "config/amends.toml"])
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).starts_with("config OK"));

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[detect]\nincident_window = \"fortnight\"\n").unwrap();
    let o = amends().arg("check-config").arg(&bad).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("detect.incident_window"), "{err}");

    let o = amends()
        .arg("check-config")
        .arg("config/amends.toml")
        .env("AMENDS_POLICY__OPERATING_MARGIN", "7")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("policy.operating_margin"));
}

#[test]
fn run_refuses_to_start_on_bad_config_and_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[kafka]\nbrokers = \"\"\n").unwrap();
    let o = amends()
        .args(["run", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("kafka.brokers"));
}

#[test]
fn simulate_writes_a_seeded_file() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.jsonl");
    let b = dir.path().join("b.jsonl");
    for p in [&a, &b] {
        let o = amends()
            .args(["simulate", "--customers", "50", "--seed", "7", "--output"])
            .arg(p)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    assert!(std::fs::read_to_string(&a).unwrap().lines().count() > 100);
}
