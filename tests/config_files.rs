//! The config files under `config/`: every one parses and validates, `config/amends.toml`
//! documents exactly the built-in defaults (so the documentation cannot drift from the code),
//! every key in it names its environment override, and broken variants of it fail with an
//! error that names the key at fault.
//!
//! The ConfigMap's embedded amends.toml is checked by `tests/deploy_files.rs`, not here.

use amends::config::{Config, ConfigError};
use std::path::{Path, PathBuf};

const DEFAULT_FILE: &str = "config/amends.toml";

/// The one key `config/amends.toml` sets on purpose although the built-in defaults leave it
/// to librdkafka: design.md measured 0.24M -> 0.82M events/s per consumer thread with it.
const FETCH_BACKOFF: (&str, &str) = ("fetch.queue.backoff.ms", "10");

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("cannot read {rel}: {e}"))
}

fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
    Config::from_toml_str(text, origin, std::iter::empty())
}

fn toml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in
        std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
    {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            toml_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "toml") {
            out.push(path);
        }
    }
}

#[test]
fn every_toml_file_under_config_parses_and_validates() {
    let mut files = Vec::new();
    toml_files(&root().join("config"), &mut files);
    assert!(
        files.iter().any(|f| f.ends_with(DEFAULT_FILE)),
        "{DEFAULT_FILE} is missing: {files:?}"
    );
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        if let Err(e) = parse(&text, &f.display().to_string()) {
            panic!("{} does not load: {e}", f.display());
        }
    }
}

#[test]
fn amends_toml_documents_exactly_the_builtin_defaults() {
    let mut parsed = parse(&read(DEFAULT_FILE), DEFAULT_FILE).unwrap();
    // The documented exception, accounted for explicitly: present with the measured value
    // in the file, absent from the built-in defaults, and nowhere else.
    let (key, value) = FETCH_BACKOFF;
    assert_eq!(
        parsed.kafka.consumer.remove(key).as_deref(),
        Some(value),
        "[kafka.consumer] {key}"
    );
    assert!(
        !Config::defaults().kafka.consumer.contains_key(key),
        "built-in defaults now set {key}: drop the exception"
    );
    let got = format!("{parsed:#?}");
    let want = format!("{:#?}", Config::defaults());
    if got != want {
        let diff: Vec<String> = got
            .lines()
            .zip(want.lines())
            .enumerate()
            .filter(|(_, (g, w))| g != w)
            .take(10)
            .map(|(i, (g, w))| format!("line {i}: file {g:?} vs defaults {w:?}"))
            .collect();
        panic!(
            "{DEFAULT_FILE} differs from Config::defaults():\n{}",
            diff.join("\n")
        );
    }
}

/// Leaf keys of the file with the table they sit in, e.g. ("policy.response.major", "within").
fn leaf_keys(text: &str) -> Vec<(String, String)> {
    let mut section = String::new();
    let mut keys = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line.trim_matches(|c| c == '[' || c == ']').to_string();
        } else if !line.starts_with('#') && !line.starts_with(']') && line.contains(" = ") {
            let key = line
                .split(" = ")
                .next()
                .unwrap()
                .trim_matches('"')
                .to_string();
            keys.push((section.clone(), key));
        }
    }
    keys
}

fn env_name(path: &str) -> String {
    format!("AMENDS_{}", path.replace('.', "__").to_ascii_uppercase())
}

#[test]
fn every_key_in_amends_toml_names_its_environment_override() {
    let text = read(DEFAULT_FILE);
    let keys = leaf_keys(&text);
    assert!(
        keys.len() > 60,
        "expected every key to be written out, found {}",
        keys.len()
    );
    // Entries of these maps are documented once, by pattern, on the table.
    let maps = [
        "kafka.properties",
        "kafka.consumer",
        "kafka.producer",
        "policy.severity.types",
        "policy.queues.channels",
    ];
    for (section, key) in keys {
        let exact = env_name(&format!("{section}.{key}"));
        let pattern = format!("{}__<", env_name(&section));
        // An array of tables is overridden whole, as one TOML array of inline tables.
        let whole = format!("Env: {} ", env_name(&section));
        let documented = text.contains(&format!("Env: {exact}"))
            || (maps.contains(&section.as_str()) && text.contains(&pattern))
            || (section == "detect.expectations" && text.contains(&whole));
        assert!(
            documented,
            "{section}.{key}: no `Env: {exact}` comment in {DEFAULT_FILE}"
        );
    }
    // Every override the comments mention must name a real key: apply each to the file. The
    // value may well be invalid for the key; only "no such key" matters here.
    for name in text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.')) {
        let name = name.trim_end_matches('.');
        if !name.starts_with("AMENDS_") || !name.contains("__") || name.ends_with("__") {
            continue;
        }
        let config =
            Config::from_toml_str(&text, DEFAULT_FILE, [(name.to_string(), "x".to_string())]);
        if let Err(e) = config {
            assert!(
                !e.to_string().contains("unknown field"),
                "{name} in {DEFAULT_FILE} names no key: {e}"
            );
        }
    }
}

/// Every struct field of `Config`, as a dotted path, read from its pretty `Debug` output (map
/// entries are quoted there, so only real keys are found).
fn config_key_paths() -> Vec<String> {
    let debug = format!("{:#?}", Config::defaults());
    let mut stack: Vec<(usize, String)> = Vec::new();
    let mut paths = Vec::new();
    for line in debug.lines() {
        let indent = line.len() - line.trim_start().len();
        let Some((name, _)) = line.trim_start().split_once(": ") else {
            continue;
        };
        if !name.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
            continue;
        }
        stack.retain(|(i, _)| *i < indent);
        // serde renames CompensationRule::kind to `type`.
        let name = if name == "kind" { "type" } else { name };
        let path: Vec<&str> = stack
            .iter()
            .map(|(_, n)| n.as_str())
            .chain([name])
            .collect();
        paths.push(path.join("."));
        stack.push((indent, name.to_string()));
    }
    paths
}

#[test]
fn amends_toml_writes_out_every_key_the_code_has() {
    let text = read(DEFAULT_FILE);
    let mut written: Vec<String> = Vec::new();
    for line in text.lines().filter(|l| l.starts_with('[')) {
        let section = line.trim_matches(|c| c == '[' || c == ']');
        let parts: Vec<&str> = section.split('.').collect();
        written.extend((1..=parts.len()).map(|n| parts[..n].join(".")));
    }
    written.extend(
        leaf_keys(&text)
            .into_iter()
            .map(|(s, k)| format!("{s}.{k}")),
    );
    let paths = config_key_paths();
    assert!(
        paths.len() > 60
            && paths
                .iter()
                .any(|p| p == "policy.compensation.critical.type"),
        "{paths:?}"
    );
    let missing: Vec<&String> = paths.iter().filter(|p| !written.contains(p)).collect();
    assert!(
        missing.is_empty(),
        "keys missing from {DEFAULT_FILE} (document them with their defaults): {missing:?}"
    );
}

#[test]
fn documented_environment_overrides_apply_to_the_file() {
    let env = [
        ("AMENDS_KAFKA__BROKERS", "kafka-1:9092,kafka-2:9092"),
        ("AMENDS_KAFKA__PROPERTIES__SECURITY.PROTOCOL", "SASL_SSL"),
        ("AMENDS_KAFKA__CONSUMER__FETCH.QUEUE.BACKOFF.MS", "50"),
        ("AMENDS_DETECT__INCIDENT_WINDOW", "1d"),
        (
            "AMENDS_DETECT__CHANNELS",
            r#"["sales","billing","shipping","service","retail"]"#,
        ),
        ("AMENDS_POLICY__OPERATING_MARGIN", "0.3"),
        ("AMENDS_POLICY__RESPONSE__MAJOR__WITHIN", "4h"),
        ("AMENDS_POLICY__SEVERITY__TYPES__PAYMENT_DECLINED", "major"),
    ];
    let c = Config::from_toml_str(
        &read(DEFAULT_FILE),
        DEFAULT_FILE,
        env.map(|(k, v)| (k.to_string(), v.to_string())),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.kafka.brokers, "kafka-1:9092,kafka-2:9092");
    assert_eq!(c.kafka.properties["security.protocol"], "SASL_SSL");
    assert_eq!(c.kafka.consumer["fetch.queue.backoff.ms"], "50");
    assert_eq!(c.detect.incident_window, amends::config::Dur::days(1));
    assert_eq!(c.detect.channels.last().map(String::as_str), Some("retail"));
    assert_eq!(c.policy.operating_margin, 0.3);
    assert_eq!(
        c.policy.response.major.within,
        amends::config::Dur::hours(4)
    );
    assert_eq!(
        format!("{:?}", c.policy.severity.types["payment_declined"]),
        "Major"
    );
    assert_eq!(
        c.policy.severity.types.len(),
        Config::defaults().policy.severity.types.len()
    );
}

#[test]
fn broken_variants_fail_naming_the_key() {
    let text = read(DEFAULT_FILE);
    // (what is broken, from, to, words the error must contain)
    let cases: &[(&str, &str, &str, &[&str])] = &[
        (
            "misspelt key",
            "incident_window = \"14d\"",
            "incident_windw = \"14d\"",
            &["detect", "incident_windw"],
        ),
        (
            "misspelt nested key",
            "loyal_factor = 0.5",
            "loyalty_factor = 0.5",
            &["policy.compensation", "loyalty_factor"],
        ),
        ("unknown section", "[http]", "[htp]", &["htp"]),
        (
            "duration without unit",
            "repeat_window = \"30d\"",
            "repeat_window = \"30\"",
            &["detect.repeat_window", "missing unit"],
        ),
        (
            "duration with unknown unit",
            "within = \"8h\"",
            "within = \"8hrs\"",
            &["policy.response.major.within", "hrs"],
        ),
        (
            "bad severity",
            "delivery_failed = \"major\"",
            "delivery_failed = \"huge\"",
            &["policy.severity.types", "delivery_failed", "huge"],
        ),
        (
            "bad default severity",
            "default = \"minor\"",
            "default = \"trivial\"",
            &["policy.severity.default", "trivial"],
        ),
        (
            "wrong type",
            "max_customers = 1000000",
            "max_customers = \"many\"",
            &["detect.max_customers"],
        ),
        (
            "bad priority",
            "priority = \"p3\"",
            "priority = \"p5\"",
            &["policy.response.minor.priority", "p5"],
        ),
        (
            "margin out of range",
            "operating_margin = 0.15",
            "operating_margin = 15",
            &["policy.operating_margin"],
        ),
        (
            "bad compensation type",
            "type = \"credit\"",
            "type = \"voucher\"",
            &["policy.compensation.minor.type", "voucher"],
        ),
        (
            "caps inverted",
            "critical_amount = 2500.0",
            "critical_amount = 100.0",
            &["policy.severity.critical_amount"],
        ),
        (
            "managed librdkafka key",
            "# \"sasl.username\" = \"amends\"",
            "\"group.id\" = \"other\"",
            &["kafka.properties.\"group.id\"", "managed"],
        ),
        (
            "queue for unknown channel",
            "billing = \"billing-recovery\"",
            "fax = \"fax-recovery\"",
            &["policy.queues.channels.fax"],
        ),
        (
            "output loops to input",
            "dead_letter = \"amends.dead-letter\"",
            "dead_letter = \"touchpoints\"",
            &["output.dead_letter"],
        ),
        (
            "unknown guarantee",
            "guarantee = \"at_least_once\"",
            "guarantee = \"maybe_once\"",
            &["kafka.guarantee", "maybe_once"],
        ),
        (
            "ttl shorter than window",
            "state_ttl = \"90d\"",
            "state_ttl = \"7d\"",
            &["detect.state_ttl"],
        ),
        ("invalid TOML", "[limits]", "[limits", &[DEFAULT_FILE]),
    ];
    for (what, from, to, needles) in cases {
        assert_eq!(
            text.matches(from).count(),
            1,
            "{what}: `{from}` must occur exactly once in {DEFAULT_FILE}"
        );
        let broken = text.replacen(from, to, 1);
        let err = match parse(&broken, DEFAULT_FILE) {
            Ok(_) => panic!("{what}: `{to}` was accepted"),
            Err(e) => e.to_string(),
        };
        for n in *needles {
            assert!(
                err.contains(n),
                "{what}: the error should contain `{n}`: {err}"
            );
        }
    }
}
