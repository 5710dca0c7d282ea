use super::*;

fn load(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
    Config::from_toml_str(
        text,
        "test.toml",
        env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
    )
}

#[test]
fn empty_file_gives_valid_defaults() {
    let c = load("", &[]).unwrap();
    assert_eq!(c.kafka.brokers, "localhost:9092");
    assert_eq!(c.output.dead_letter, "amends.dead-letter");
    assert_eq!(c.limits.max_message_bytes, 1024 * 1024);
    assert_eq!(
        c.detect.incident_window.millis(),
        crate::domain::Millis::from_days(14)
    );
}

#[test]
fn unknown_keys_name_the_key() {
    let e = load("[kafka]\ngropu_id = \"x\"\n", &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("gropu_id"), "{e}");
    let e = load(
        "[policy.response.major]\npriority = \"p2\"\nwithin = \"4h\"\nfoo = 1\n",
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("policy.response.major") && e.contains("foo"),
        "{e}"
    );
}

#[test]
fn bad_values_name_the_key() {
    let cases = [
        (
            "[detect]\nincident_window = \"3y\"\n",
            "detect.incident_window",
        ),
        (
            "[policy]\noperating_margin = 1.5\n",
            "policy.operating_margin",
        ),
        (
            "[policy.severity.types]\ndelivery_failed = \"huge\"\n",
            "policy.severity.types",
        ),
        (
            "[output]\ndead_letter = \"touchpoints\"\n",
            "output.dead_letter",
        ),
        (
            "[output]\nrecovery_tasks = \"bad topic\"\n",
            "output.recovery_tasks",
        ),
        (
            "[kafka.properties]\n\"enable.auto.offset.store\" = \"true\"\n",
            "kafka.properties.\"enable.auto.offset.store\"",
        ),
        ("[http]\nlisten = \"nowhere\"\n", "http.listen"),
        (
            "[pipeline]\ncheckpoint_interval = \"50ms\"\n",
            "pipeline.checkpoint_interval",
        ),
        ("[pipeline]\nrestore = \"disk\"\n", "pipeline.restore"),
        (
            "[kafka.consumer]\n\"statistics.interval.ms\" = \"0\"\n",
            "kafka.consumer.\"statistics.interval.ms\"",
        ),
        (
            "[kafka.properties]\n\"statistics.interval.ms\" = \"60000\"\n",
            "kafka.properties.\"statistics.interval.ms\"",
        ),
        (
            "[policy.queues.channels]\nfax = \"fax-queue\"\n",
            "policy.queues.channels.fax",
        ),
        ("[kafka]\nguarantee = \"maybe_once\"\n", "kafka.guarantee"),
        (
            "[kafka]\nguarantee = \"exactly_once\"\n[pipeline]\nrestore = \"input\"\n",
            "pipeline.restore",
        ),
        (
            "[kafka]\nguarantee = \"exactly_once\"\n[kafka.producer]\n\"message.timeout.ms\" = \"120000\"\n",
            "kafka.producer.\"message.timeout.ms\"",
        ),
        (
            "[kafka]\nguarantee = \"exactly_once\"\n[kafka.producer]\n\"transaction.timeout.ms\" = \"10000\"\n[pipeline]\ncheckpoint_interval = \"6s\"\n",
            "kafka.producer.\"transaction.timeout.ms\"",
        ),
        (
            "[kafka]\nguarantee = \"exactly_once\"\ntransactional_id = \"two words\"\n",
            "kafka.transactional_id",
        ),
        (
            "[kafka]\nguarantee = \"exactly_once\"\n[kafka.properties]\n\"socket.timeout.ms\" = \"60000\"\n",
            "kafka.properties.\"socket.timeout.ms\"",
        ),
        (
            "[detect]\nfollow_up_period = \"0s\"\n",
            "detect.follow_up_period",
        ),
        (
            "[detect]\nfollow_up_period = \"100d\"\n",
            "detect.follow_up_period",
        ),
        (
            "[limits]\nmax_message_bytes = \"big\"\n",
            "limits.max_message_bytes",
        ),
        (
            "[kafka.consumer]\n\"partition.assignment.strategy\" = \"cooperative-sticky\"\n",
            "kafka.consumer.\"partition.assignment.strategy\"",
        ),
    ];
    for (text, key) in cases {
        let e = load(text, &[]).unwrap_err().to_string();
        assert!(e.contains(key), "error for {text:?} should name {key}: {e}");
    }
    // Exactly-once with the defaults, or with timeouts inside the transaction's, is valid.
    let c = load(
        "[kafka]\nguarantee = \"exactly_once\"\ntransactional_id = \"amends-0\"\n[kafka.producer]\n\"message.timeout.ms\" = \"30000\"\n",
        &[],
    )
    .unwrap();
    assert_eq!(c.kafka.guarantee, crate::config::Guarantee::ExactlyOnce);
    assert_eq!(c.kafka.transactional_id, "amends-0");
    // Within half the idle period it is the user's to choose.
    let c = load(
        "[kafka.consumer]\n\"statistics.interval.ms\" = \"15000\"\n",
        &[],
    )
    .unwrap();
    assert_eq!(c.kafka.consumer["statistics.interval.ms"], "15000");
}

#[test]
fn environment_overrides_apply_and_are_typed() {
    let c = load(
        "[kafka]\ngroup_id = \"a\"\n",
        &[
            ("AMENDS_KAFKA__BROKERS", "kafka-1:9092,kafka-2:9092"),
            ("AMENDS_KAFKA__GROUP_ID", "123"),
            ("AMENDS_POLICY__OPERATING_MARGIN", "0.3"),
            ("AMENDS_KAFKA__PROPERTIES__SECURITY.PROTOCOL", "SASL_SSL"),
            ("AMENDS_TEST_BROKERS", "ignored"),
        ],
    )
    .unwrap();
    assert_eq!(c.kafka.brokers, "kafka-1:9092,kafka-2:9092");
    assert_eq!(c.kafka.group_id, "123");
    assert_eq!(c.policy.operating_margin, 0.3);
    assert_eq!(
        c.kafka
            .properties
            .get("security.protocol")
            .map(String::as_str),
        Some("SASL_SSL")
    );
    // Keys the file does not set: a number that must be a string is taken as the string.
    let c = load(
        "",
        &[
            ("AMENDS_KAFKA__PROPERTIES__SESSION.TIMEOUT.MS", "45000"),
            ("AMENDS_KAFKA__CLIENT_ID", "123"),
        ],
    )
    .unwrap();
    assert_eq!(
        c.kafka
            .properties
            .get("session.timeout.ms")
            .map(String::as_str),
        Some("45000")
    );
    assert_eq!(c.kafka.client_id, "123");
    let e = load("", &[("AMENDS_LIMITS__MAX_ATTRIBUTES", "many")])
        .unwrap_err()
        .to_string();
    assert!(e.contains("limits.max_attributes"), "{e}");
    let e = load("", &[("AMENDS_KAFKA__NOPE", "1")])
        .unwrap_err()
        .to_string();
    assert!(e.contains("nope"), "{e}");
}

#[test]
fn secrets_are_redacted() {
    let mut m = BTreeMap::new();
    m.insert("sasl.password".to_string(), "hunter2".to_string());
    m.insert("ssl.key.location".to_string(), "/etc/key.pem".to_string());
    m.insert("ssl.key.password".to_string(), "pw".to_string());
    m.insert("security.protocol".to_string(), "SASL_SSL".to_string());
    let r = redacted(&m);
    assert_eq!(r["sasl.password"], "[redacted]");
    assert_eq!(r["ssl.key.password"], "[redacted]");
    assert_eq!(r["ssl.key.location"], "/etc/key.pem");
    assert_eq!(r["security.protocol"], "SASL_SSL");
}

#[test]
fn trend_settings_default_and_bad_ones_name_the_key() {
    let c = load("", &[]).unwrap();
    assert_eq!(
        c.trend
            .windows
            .iter()
            .map(|w| w.millis().0)
            .collect::<Vec<_>>(),
        [300_000, 3_600_000]
    );
    assert_eq!(c.trend.alerts.for_windows, 2);
    for (text, key) in [
        ("[trend]\nwindows = []\n", "trend.windows"),
        ("[trend]\nwindows = [\"7m\"]\n", "trend.windows[0]"),
        ("[trend]\nwindows = [\"5m\", \"5m\"]\n", "trend.windows[1]"),
        ("[trend]\ncomplete_wait = \"0s\"\n", "trend.complete_wait"),
        (
            "[trend.alerts]\nsignificance = 2.0\n",
            "trend.alerts.significance",
        ),
        (
            "[trend.alerts]\nmin_history = 20\n",
            "trend.alerts.min_history",
        ),
        ("[trend.alerts]\nfor_windowz = 1\n", "for_windowz"),
    ] {
        let e = load(text, &[]).unwrap_err().to_string();
        assert!(e.contains(key), "error for {text:?} should name {key}: {e}");
    }
}

/// `[trend.alerts]` takes its defaults from the trend core and maps back onto it unchanged.
#[test]
fn alert_defaults_come_from_the_trend_core() {
    assert_eq!(
        crate::pipeline::trend::alert_config(&Config::defaults()),
        crate::trend::AlertConfig::default()
    );
    let mut c = Config::defaults();
    c.trend.alerts.daily_days = 3;
    c.trend.alerts.min_failures = 7;
    let core = crate::pipeline::trend::alert_config(&c);
    assert_eq!((core.baseline.daily_days, core.min_failures), (3, 7));
}
