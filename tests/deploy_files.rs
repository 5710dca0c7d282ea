//! Checks every file under `deploy/`: it parses, and it says what the service needs.
//!
//! `every_file_under_deploy_is_checked` walks the whole directory and fails on any file that no
//! check here knows about, so a new deploy file must come with a check. The other tests run the
//! same checks one area at a time, for clearer failures.
//!
//! Fixed facts these checks hold the files to (the service's contract):
//! binary `amends`, HTTP on 9464 with `/metrics`, `/healthz`, `/readyz`, config at
//! `/etc/amends/amends.toml`, env overrides `AMENDS_<SECTION>__<KEY>`, graceful shutdown within
//! `pipeline.shutdown_timeout` (30 s by default), and the topic list below.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use yaml_rust2::{Yaml, YamlLoader};

const HTTP_PORT: i64 = 9464;
const HEALTH_PATH: &str = "/healthz";
const READY_PATH: &str = "/readyz";
const SHUTDOWN_TIMEOUT_SECS: i64 = 30;
const NAME_LABEL: &str = "app.kubernetes.io/name";
const APP: &str = "amends";
const INPUT_TOPIC: &str = "touchpoints";
const CHANGELOG_TOPIC: &str = "amends.changelog";
const TOPICS: [&str; 8] = [
    "touchpoints",
    "recovery-outcomes",
    "amends.recovery-tasks",
    "amends.trend-snapshots",
    "amends.trend-alerts",
    "amends.dead-letter",
    "amends.changelog",
    "amends.trend-partials",
];

// ---------------------------------------------------------------------------------------------
// Walking and dispatch
// ---------------------------------------------------------------------------------------------

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn deploy_dir() -> PathBuf {
    repo_root().join("deploy")
}

/// Every file under `dir`, as `/`-separated paths relative to `dir`, sorted.
fn files_under(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        let entries =
            fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
        for entry in entries {
            let entry = entry.unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
            let path = entry.path();
            let kind = entry
                .file_type()
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            if kind.is_dir() {
                walk(base, &path, out);
            } else {
                let rel = path.strip_prefix(base).unwrap();
                let rel: Vec<String> = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                out.push(rel.join("/"));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

fn is_yaml(rel: &str) -> bool {
    rel.ends_with(".yaml") || rel.ends_with(".yml")
}

/// The check for one file under `deploy/` (a name and the check), or `None` when no check
/// knows the file.
fn check_for(rel: &str) -> Option<(&'static str, fn())> {
    let check: (&'static str, fn()) = match rel {
        "Dockerfile" => ("dockerfile", check_dockerfile),
        "Dockerfile.dockerignore" => ("dockerignore", check_dockerignore),
        "docker-compose.yaml" => ("compose", check_compose),
        "prometheus.yml" => ("prometheus", check_prometheus),
        "README.md" => ("readme", check_readme),
        // All Kubernetes manifests are checked together (selectors, names and the
        // kustomization cross-reference each other); check_k8s fails on unknown kinds.
        r if r.starts_with("k8s/") && !r["k8s/".len()..].contains('/') && is_yaml(r) => {
            ("k8s", check_k8s)
        }
        _ => return None,
    };
    Some(check)
}

#[test]
fn every_file_under_deploy_is_checked() {
    let files = files_under(&deploy_dir());
    assert!(!files.is_empty(), "deploy/ is empty or missing");
    let unknown: Vec<&String> = files.iter().filter(|f| check_for(f).is_none()).collect();
    assert!(
        unknown.is_empty(),
        "no check in tests/deploy_files.rs knows these files under deploy/: {unknown:?}; add a check for each"
    );
    // Run each distinct check once (the k8s check covers every manifest).
    let mut done = BTreeSet::new();
    for f in &files {
        let (name, check) = check_for(f).unwrap();
        if done.insert(name) {
            check();
        }
    }
}

#[test]
fn every_yaml_file_parses() {
    for rel in files_under(&deploy_dir()).iter().filter(|f| is_yaml(f)) {
        let docs = load_yaml(rel);
        for (i, doc) in docs.iter().enumerate() {
            assert!(
                doc.as_hash().is_some(),
                "deploy/{rel}: document {i} is not a mapping"
            );
        }
    }
}

#[test]
fn dockerfile() {
    check_dockerfile();
    check_dockerignore();
}

#[test]
fn compose() {
    check_compose();
}

#[test]
fn prometheus() {
    check_prometheus();
}

#[test]
fn kubernetes() {
    check_k8s();
}

#[test]
fn readme() {
    check_readme();
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn read(rel: &str) -> String {
    let path = deploy_dir().join(rel);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("deploy/{rel}: cannot read: {e}"))
}

/// All YAML documents of `deploy/<rel>`; fails if it does not parse or holds no document.
fn load_yaml(rel: &str) -> Vec<Yaml> {
    let docs = YamlLoader::load_from_str(&read(rel))
        .unwrap_or_else(|e| panic!("deploy/{rel}: invalid YAML: {e}"));
    let docs: Vec<Yaml> = docs.into_iter().filter(|d| !d.is_null()).collect();
    assert!(!docs.is_empty(), "deploy/{rel}: no YAML document");
    docs
}

fn load_single_yaml(rel: &str) -> Yaml {
    let mut docs = load_yaml(rel);
    assert_eq!(
        docs.len(),
        1,
        "deploy/{rel}: expected exactly one YAML document"
    );
    docs.remove(0)
}

/// A scalar as text (YAML reads `9464` as an integer and `"9464"` as a string).
fn scalar(y: &Yaml) -> Option<String> {
    match y {
        Yaml::String(s) | Yaml::Real(s) => Some(s.clone()),
        Yaml::Integer(i) => Some(i.to_string()),
        Yaml::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

fn req_str<'a>(y: &'a Yaml, file: &str, what: &str) -> &'a str {
    y.as_str()
        .unwrap_or_else(|| panic!("{file}: {what} must be a string, found {y:?}"))
}

fn req_vec<'a>(y: &'a Yaml, file: &str, what: &str) -> &'a Vec<Yaml> {
    y.as_vec()
        .unwrap_or_else(|| panic!("{file}: {what} must be a list, found {y:?}"))
}

/// A mapping of scalars (labels, annotations, env as a map) as text.
fn string_map(y: &Yaml, file: &str, what: &str) -> BTreeMap<String, String> {
    let hash = y
        .as_hash()
        .unwrap_or_else(|| panic!("{file}: {what} must be a mapping, found {y:?}"));
    hash.iter()
        .map(|(k, v)| {
            let k =
                scalar(k).unwrap_or_else(|| panic!("{file}: {what} has a non-scalar key {k:?}"));
            let v = scalar(v)
                .unwrap_or_else(|| panic!("{file}: {what}.{k} must be a scalar, found {v:?}"));
            (k, v)
        })
        .collect()
}

fn is_subset(small: &BTreeMap<String, String>, big: &BTreeMap<String, String>) -> bool {
    small.iter().all(|(k, v)| big.get(k) == Some(v))
}

/// `AMENDS_<SECTION>__<KEY>[__<KEY>...]`, upper case.
fn is_amends_env_name(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("AMENDS_") else {
        return false;
    };
    let parts: Vec<&str> = rest.split("__").collect();
    parts.len() >= 2
        && parts.iter().all(|p| {
            !p.is_empty()
                && !p.starts_with('_')
                && !p.ends_with('_')
                && p.chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        })
}

/// Seconds in a compose duration such as `45s`, `1m30s` or `2m`.
fn compose_duration_secs(text: &str, file: &str) -> f64 {
    let mut total = 0.0;
    let mut number = String::new();
    let chars: Vec<char> = text.trim().chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_ascii_digit() || c == '.' {
            number.push(c);
            i += 1;
            continue;
        }
        let mut unit = String::new();
        while i < chars.len() && chars[i].is_ascii_alphabetic() {
            unit.push(chars[i]);
            i += 1;
        }
        let n: f64 = number
            .parse()
            .unwrap_or_else(|_| panic!("{file}: bad duration {text:?}"));
        number.clear();
        total += n * match unit.as_str() {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            "us" => 0.000_001,
            _ => panic!("{file}: bad duration unit in {text:?}"),
        };
    }
    if !number.is_empty() {
        // A bare number: compose reads it as seconds.
        total += number
            .parse::<f64>()
            .unwrap_or_else(|_| panic!("{file}: bad duration {text:?}"));
    }
    total
}

// ---------------------------------------------------------------------------------------------
// Dockerfile
// ---------------------------------------------------------------------------------------------

#[derive(Debug)]
struct Instruction {
    keyword: String,
    args: String,
}

/// Instructions with continuation lines joined and comments (and parser directives) dropped.
fn dockerfile_instructions(text: &str) -> Vec<Instruction> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        if let Some(body) = trimmed.strip_suffix('\\') {
            current.push_str(body);
            current.push(' ');
            continue;
        }
        current.push_str(trimmed);
        let full = std::mem::take(&mut current);
        let full = full.trim();
        if full.is_empty() {
            continue;
        }
        let (keyword, args) = full.split_once(char::is_whitespace).unwrap_or((full, ""));
        out.push(Instruction {
            keyword: keyword.to_ascii_uppercase(),
            args: args.trim().to_string(),
        });
    }
    if !current.trim().is_empty() {
        panic!("deploy/Dockerfile: ends inside a line continuation");
    }
    out
}

fn exec_form(args: &str, what: &str) -> Vec<String> {
    serde_json::from_str::<Vec<String>>(args).unwrap_or_else(|e| {
        panic!("deploy/Dockerfile: {what} must use the JSON exec form, found {args:?} ({e})")
    })
}

/// COPY/ADD split into flags, sources and destination.
fn copy_parts(args: &str) -> (Vec<String>, Vec<String>, String) {
    let words: Vec<String> = if args.trim_start().starts_with('[') {
        exec_form(args, "COPY")
    } else {
        args.split_whitespace().map(str::to_string).collect()
    };
    let (flags, rest): (Vec<String>, Vec<String>) =
        words.into_iter().partition(|w| w.starts_with("--"));
    let (dest, sources) = rest
        .split_last()
        .unwrap_or_else(|| panic!("deploy/Dockerfile: COPY without paths: {args:?}"));
    (flags, sources.to_vec(), dest.clone())
}

fn dockerfile_stages() -> Vec<Vec<Instruction>> {
    let mut stages: Vec<Vec<Instruction>> = Vec::new();
    for ins in dockerfile_instructions(&read("Dockerfile")) {
        if ins.keyword == "FROM" {
            stages.push(Vec::new());
        } else if stages.is_empty() {
            assert_eq!(
                ins.keyword, "ARG",
                "deploy/Dockerfile: only ARG may come before the first FROM, found {ins:?}"
            );
            continue;
        }
        stages.last_mut().unwrap().push(ins);
    }
    stages
}

/// The final stage's USER (`user[:group]`), as written.
fn dockerfile_user() -> String {
    let stages = dockerfile_stages();
    let last = stages.last().expect("deploy/Dockerfile: no FROM");
    last.iter()
        .rev()
        .find(|i| i.keyword == "USER")
        .map(|i| i.args.clone())
        .expect("deploy/Dockerfile: the final stage has no USER line, so the container would run as root")
}

fn check_dockerfile() {
    let f = "deploy/Dockerfile";
    let stages = dockerfile_stages();
    assert!(
        stages.len() >= 2,
        "{f}: expected a multi-stage build (at least 2 FROM), found {}",
        stages.len()
    );

    let from_image = |stage: &Vec<Instruction>| -> String {
        let args = &stage[0].args;
        args.split_whitespace()
            .find(|w| !w.starts_with("--"))
            .unwrap_or("")
            .to_string()
    };
    let build = &stages[0];
    assert!(
        from_image(build).starts_with("rust:"),
        "{f}: the first (build) stage should be FROM a rust image, found {:?}",
        build[0].args
    );
    assert!(
        build
            .iter()
            .any(|i| i.keyword == "RUN" && i.args.contains("cargo build --release --locked")),
        "{f}: the build stage must run `cargo build --release --locked`"
    );
    // Everything build.rs and cargo need must be in the build stage.
    let build_sources: Vec<String> = build
        .iter()
        .filter(|i| i.keyword == "COPY")
        .flat_map(|i| copy_parts(&i.args).1)
        .map(|s| s.trim_start_matches("./").trim_end_matches('/').to_string())
        .collect();
    for needed in [
        "Cargo.toml",
        "Cargo.lock",
        "build.rs",
        "proto",
        "src",
        "config",
    ] {
        assert!(
            build_sources.iter().any(|s| s == needed),
            "{f}: the build stage does not COPY {needed} (copies {build_sources:?})"
        );
    }

    let last = stages.last().unwrap();
    let runtime_image = from_image(last);
    assert!(
        !runtime_image.starts_with("rust"),
        "{f}: the final stage must not be the Rust toolchain image, found {runtime_image}"
    );

    // Non-root user.
    let user = dockerfile_user();
    let name = user.split(':').next().unwrap().trim();
    assert!(
        !name.is_empty() && name != "root" && name != "0",
        "{f}: the final stage's USER must not be root, found {user:?}"
    );

    // ENTRYPOINT is the amends binary, which the final stage copies in.
    let entrypoint = last
        .iter()
        .rev()
        .find(|i| i.keyword == "ENTRYPOINT")
        .expect("deploy/Dockerfile: the final stage has no ENTRYPOINT");
    let entrypoint = exec_form(&entrypoint.args, "ENTRYPOINT");
    let binary = entrypoint
        .first()
        .unwrap_or_else(|| panic!("{f}: empty ENTRYPOINT"));
    assert!(
        binary == "amends" || binary.ends_with("/amends"),
        "{f}: ENTRYPOINT must run the amends binary, found {entrypoint:?}"
    );
    let copies: Vec<(Vec<String>, Vec<String>, String)> = last
        .iter()
        .filter(|i| i.keyword == "COPY")
        .map(|i| copy_parts(&i.args))
        .collect();
    assert!(
        copies.iter().any(
            |(flags, _, dest)| flags.iter().any(|fl| fl.starts_with("--from=")) && dest == binary
        ),
        "{f}: the final stage does not COPY --from=<build stage> the binary to {binary}"
    );

    // CMD runs the service with the config file the image ships.
    let cmd = last
        .iter()
        .rev()
        .find(|i| i.keyword == "CMD")
        .expect("deploy/Dockerfile: the final stage has no CMD");
    let cmd = exec_form(&cmd.args, "CMD");
    assert_eq!(
        cmd.len(),
        3,
        "{f}: CMD should be [\"run\", \"--config\", FILE], found {cmd:?}"
    );
    assert_eq!(
        (cmd[0].as_str(), cmd[1].as_str()),
        ("run", "--config"),
        "{f}: CMD should be [\"run\", \"--config\", FILE], found {cmd:?}"
    );
    assert!(
        copies.iter().any(|(_, sources, dest)| dest == &cmd[2]
            && sources.iter().any(|s| s == "config/amends.toml")),
        "{f}: CMD reads {} but the final stage does not COPY config/amends.toml there",
        cmd[2]
    );

    let exposed: Vec<&str> = last
        .iter()
        .filter(|i| i.keyword == "EXPOSE")
        .flat_map(|i| i.args.split_whitespace())
        .collect();
    assert!(
        exposed.iter().any(|p| p.split('/').next() == Some("9464")),
        "{f}: the final stage must EXPOSE {HTTP_PORT}, found {exposed:?}"
    );
    let stop = last
        .iter()
        .find(|i| i.keyword == "STOPSIGNAL")
        .map(|i| i.args.as_str());
    assert!(
        matches!(stop, None | Some("SIGTERM") | Some("15")),
        "{f}: amends drains on SIGTERM; STOPSIGNAL is {stop:?}"
    );

    // Sources copied from the build context must not be excluded by the dockerignore.
    let ignored = dockerignore_patterns();
    for (flags, sources, _) in stages
        .iter()
        .flatten()
        .filter(|i| i.keyword == "COPY")
        .map(|i| copy_parts(&i.args))
    {
        if flags.iter().any(|fl| fl.starts_with("--from=")) {
            continue;
        }
        for source in sources {
            let source = source.trim_start_matches("./").trim_end_matches('/');
            for pattern in &ignored {
                assert!(
                    source != pattern && !source.starts_with(&format!("{pattern}/")),
                    "{f}: COPY {source} is excluded from the build context by deploy/Dockerfile.dockerignore ({pattern})"
                );
            }
        }
    }
}

/// Plain path patterns of `deploy/Dockerfile.dockerignore` (without `/` at either end).
fn dockerignore_patterns() -> Vec<String> {
    read("Dockerfile.dockerignore")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.trim_matches('/').to_string())
        .collect()
}

fn check_dockerignore() {
    let f = "deploy/Dockerfile.dockerignore";
    let patterns = dockerignore_patterns();
    assert!(
        patterns.iter().any(|p| p == "target"),
        "{f}: must exclude target/ (gigabytes of build output), found {patterns:?}"
    );
    for p in &patterns {
        assert!(!p.starts_with('!'), "{f}: re-include patterns ({p}) are not checked here; keep the file to plain exclusions");
    }
}

// ---------------------------------------------------------------------------------------------
// docker compose
// ---------------------------------------------------------------------------------------------

fn compose_env(service: &Yaml, file: &str, name: &str) -> BTreeMap<String, String> {
    let env = &service["environment"];
    match env {
        Yaml::BadValue | Yaml::Null => BTreeMap::new(),
        Yaml::Array(items) => items
            .iter()
            .map(|item| {
                let item = req_str(item, file, &format!("services.{name}.environment[]"));
                let (k, v) = item.split_once('=').unwrap_or((item, ""));
                (k.to_string(), v.to_string())
            })
            .collect(),
        _ => string_map(env, file, &format!("services.{name}.environment")),
    }
}

/// A command/entrypoint as a list of words (a string is split on whitespace).
fn compose_words(y: &Yaml, file: &str, what: &str) -> Vec<String> {
    match y {
        Yaml::Array(items) => items
            .iter()
            .map(|i| scalar(i).unwrap_or_else(|| panic!("{file}: {what} has a non-scalar item")))
            .collect(),
        Yaml::String(s) => s.split_whitespace().map(str::to_string).collect(),
        Yaml::BadValue | Yaml::Null => Vec::new(),
        other => panic!("{file}: {what} must be a string or a list, found {other:?}"),
    }
}

/// The value following `flag` in `words`.
fn flag_value<'a>(words: &'a [String], flag: &str) -> Option<&'a str> {
    words
        .iter()
        .position(|w| w == flag)
        .and_then(|i| words.get(i + 1))
        .map(String::as_str)
}

fn check_compose() {
    let f = "deploy/docker-compose.yaml";
    let doc = load_single_yaml("docker-compose.yaml");
    let services = doc["services"]
        .as_hash()
        .unwrap_or_else(|| panic!("{f}: no services mapping"));
    let names: BTreeSet<String> = services.keys().filter_map(scalar).collect();
    for needed in ["kafka", "kafka-init", "amends", "prometheus"] {
        assert!(
            names.contains(needed),
            "{f}: missing service {needed} (has {names:?})"
        );
    }
    let svc = |name: &str| &doc["services"][name];

    // Kafka: official image, single node in KRaft mode.
    let kafka = svc("kafka");
    let kafka_image = req_str(&kafka["image"], f, "services.kafka.image");
    assert!(
        kafka_image.starts_with("apache/kafka:"),
        "{f}: services.kafka.image should be apache/kafka:<version>, found {kafka_image}"
    );
    let env = compose_env(kafka, f, "kafka");
    let get = |key: &str| {
        env.get(key)
            .unwrap_or_else(|| panic!("{f}: services.kafka.environment lacks {key}"))
            .as_str()
    };
    let roles: Vec<&str> = get("KAFKA_PROCESS_ROLES")
        .split(',')
        .map(str::trim)
        .collect();
    assert!(
        roles.contains(&"controller") && roles.contains(&"broker"),
        "{f}: KAFKA_PROCESS_ROLES must be broker,controller (KRaft combined), found {roles:?}"
    );
    let node_id = get("KAFKA_NODE_ID");
    let voters = get("KAFKA_CONTROLLER_QUORUM_VOTERS");
    assert!(
        voters
            .split(',')
            .any(|v| v.starts_with(&format!("{node_id}@"))),
        "{f}: KAFKA_CONTROLLER_QUORUM_VOTERS ({voters}) must include node {node_id}"
    );
    let protocol_map: BTreeMap<&str, &str> = get("KAFKA_LISTENER_SECURITY_PROTOCOL_MAP")
        .split(',')
        .filter_map(|p| p.split_once(':'))
        .collect();
    let listener_names = |key: &str| -> Vec<String> {
        get(key)
            .split(',')
            .map(|l| l.split("://").next().unwrap().trim().to_string())
            .collect()
    };
    for listener in listener_names("KAFKA_LISTENERS")
        .iter()
        .chain(listener_names("KAFKA_ADVERTISED_LISTENERS").iter())
    {
        assert!(
            protocol_map.contains_key(listener.as_str()),
            "{f}: listener {listener} is not in KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"
        );
    }
    let controller = get("KAFKA_CONTROLLER_LISTENER_NAMES");
    assert!(
        listener_names("KAFKA_LISTENERS")
            .iter()
            .any(|l| l == controller),
        "{f}: KAFKA_CONTROLLER_LISTENER_NAMES {controller} is not in KAFKA_LISTENERS"
    );
    let inter_broker = get("KAFKA_INTER_BROKER_LISTENER_NAME");
    assert!(
        listener_names("KAFKA_LISTENERS")
            .iter()
            .any(|l| l == inter_broker),
        "{f}: KAFKA_INTER_BROKER_LISTENER_NAME {inter_broker} is not in KAFKA_LISTENERS"
    );
    assert!(
        get("KAFKA_ADVERTISED_LISTENERS").contains("://kafka:9092"),
        "{f}: KAFKA_ADVERTISED_LISTENERS must advertise kafka:9092 to the other containers"
    );
    for key in [
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
    ] {
        assert_eq!(get(key), "1", "{f}: a single node needs {key}=1");
    }
    assert_eq!(
        get("KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS"),
        "0",
        "{f}: KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS should be 0"
    );
    let health = compose_words(
        &kafka["healthcheck"]["test"],
        f,
        "services.kafka.healthcheck.test",
    )
    .join(" ");
    assert!(
        health.contains("/opt/kafka/bin/kafka-broker-api-versions.sh"),
        "{f}: services.kafka.healthcheck must use kafka-broker-api-versions.sh, found {health:?}"
    );

    // kafka-init: creates every topic; the changelog is compacted and co-partitioned.
    let init = svc("kafka-init");
    assert_eq!(
        req_str(&init["image"], f, "services.kafka-init.image"),
        kafka_image,
        "{f}: kafka-init should use the kafka image"
    );
    assert_eq!(
        init["depends_on"]["kafka"]["condition"].as_str(),
        Some("service_healthy"),
        "{f}: kafka-init must wait for kafka to be healthy"
    );
    let script = match &init["command"] {
        Yaml::Array(items) => items
            .iter()
            .filter_map(scalar)
            .collect::<Vec<_>>()
            .join("\n"),
        Yaml::String(s) => s.clone(),
        other => {
            panic!("{f}: services.kafka-init.command must be a string or list, found {other:?}")
        }
    };
    assert!(
        script.contains("/opt/kafka/bin/kafka-topics.sh"),
        "{f}: kafka-init must use /opt/kafka/bin/kafka-topics.sh"
    );
    assert!(
        script.contains("--if-not-exists"),
        "{f}: kafka-init must create topics with --if-not-exists"
    );
    let mut topics: BTreeMap<String, (i64, Vec<String>)> = BTreeMap::new();
    for line in script.lines().filter(|l| l.contains("--topic")) {
        let words: Vec<String> = line.split_whitespace().map(str::to_string).collect();
        let topic = flag_value(&words, "--topic")
            .unwrap_or_else(|| panic!("{f}: kafka-init: no topic name in {line:?}"));
        let partitions: i64 = flag_value(&words, "--partitions")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| {
                panic!("{f}: kafka-init: topic {topic} needs a literal --partitions N on its line")
            });
        let configs = words
            .iter()
            .enumerate()
            .filter(|(_, w)| *w == "--config")
            .filter_map(|(i, _)| words.get(i + 1).cloned())
            .collect();
        assert!(
            topics
                .insert(topic.to_string(), (partitions, configs))
                .is_none(),
            "{f}: kafka-init creates {topic} twice"
        );
    }
    for topic in TOPICS {
        assert!(
            topics.contains_key(topic),
            "{f}: kafka-init does not create topic {topic} (creates {:?})",
            topics.keys().collect::<Vec<_>>()
        );
    }
    let (changelog_partitions, changelog_configs) = &topics[CHANGELOG_TOPIC];
    assert!(
        changelog_configs
            .iter()
            .any(|c| c == "cleanup.policy=compact"),
        "{f}: {CHANGELOG_TOPIC} must be created with --config cleanup.policy=compact"
    );
    assert_eq!(
        *changelog_partitions, topics[INPUT_TOPIC].0,
        "{f}: {CHANGELOG_TOPIC} must have as many partitions as {INPUT_TOPIC}"
    );
    assert!(
        topics[INPUT_TOPIC].0 >= 3,
        "{f}: {INPUT_TOPIC} needs several partitions to scale out"
    );

    // amends: built from deploy/Dockerfile, after the topics exist, pointed at kafka:9092.
    let amends = svc("amends");
    let context = req_str(
        &amends["build"]["context"],
        f,
        "services.amends.build.context",
    );
    let dockerfile = req_str(
        &amends["build"]["dockerfile"],
        f,
        "services.amends.build.dockerfile",
    );
    let context_dir = deploy_dir().join(context);
    assert!(
        context_dir.join("Cargo.toml").is_file(),
        "{f}: services.amends.build.context ({context}) must be the repository root"
    );
    assert!(
        context_dir.join(dockerfile).canonicalize().ok() == deploy_dir().join("Dockerfile").canonicalize().ok(),
        "{f}: services.amends.build.dockerfile ({dockerfile}) must be deploy/Dockerfile relative to the context"
    );
    assert_eq!(
        amends["depends_on"]["kafka-init"]["condition"].as_str(),
        Some("service_completed_successfully"),
        "{f}: amends must depend on kafka-init with condition service_completed_successfully"
    );
    let env = compose_env(amends, f, "amends");
    assert_eq!(
        env.get("AMENDS_KAFKA__BROKERS").map(String::as_str),
        Some("kafka:9092"),
        "{f}: amends needs AMENDS_KAFKA__BROKERS=kafka:9092"
    );
    for key in env.keys() {
        assert!(
            is_amends_env_name(key),
            "{f}: services.amends.environment.{key} is not of the form AMENDS_<SECTION>__<KEY>"
        );
    }
    if let Some(g) = env.get("AMENDS_KAFKA__GUARANTEE") {
        assert!(
            g == "exactly_once" || g == "at_least_once",
            "{f}: AMENDS_KAFKA__GUARANTEE must be exactly_once or at_least_once, found {g}"
        );
    }
    let ports: Vec<String> = req_vec(&amends["ports"], f, "services.amends.ports")
        .iter()
        .filter_map(scalar)
        .collect();
    assert!(
        ports
            .iter()
            .any(|p| p.trim_end_matches("/tcp").rsplit(':').next() == Some("9464")),
        "{f}: services.amends.ports must publish container port {HTTP_PORT}, found {ports:?}"
    );
    if let Some(grace) = scalar(&amends["stop_grace_period"]) {
        let secs = compose_duration_secs(&grace, f);
        assert!(secs > SHUTDOWN_TIMEOUT_SECS as f64, "{f}: services.amends.stop_grace_period ({grace}) must exceed the {SHUTDOWN_TIMEOUT_SECS}s shutdown timeout");
    }

    // simulate (optional): behind the demo profile, producing to the compose broker.
    if let Some(simulate) = services.get(&Yaml::String("simulate".into())) {
        let profiles = compose_words(&simulate["profiles"], f, "services.simulate.profiles");
        assert!(
            profiles.iter().any(|p| p == "demo"),
            "{f}: services.simulate must be under the demo profile, found {profiles:?}"
        );
        let words = compose_words(&simulate["command"], f, "services.simulate.command");
        assert_eq!(
            words.first().map(String::as_str),
            Some("simulate"),
            "{f}: services.simulate.command must start with the simulate subcommand"
        );
        assert_eq!(
            flag_value(&words, "--brokers"),
            Some("kafka:9092"),
            "{f}: simulate must use --brokers kafka:9092"
        );
        assert_eq!(
            flag_value(&words, "--topic"),
            Some(INPUT_TOPIC),
            "{f}: simulate must produce to {INPUT_TOPIC}"
        );
        for flag in ["--customers", "--seed"] {
            assert!(
                flag_value(&words, flag).is_some(),
                "{f}: simulate needs {flag}"
            );
        }
    }

    // prometheus: mounts deploy/prometheus.yml.
    let prometheus = svc("prometheus");
    let image = req_str(&prometheus["image"], f, "services.prometheus.image");
    assert!(
        image.starts_with("prom/prometheus"),
        "{f}: services.prometheus.image should be prom/prometheus, found {image}"
    );
    let volumes: Vec<String> = req_vec(&prometheus["volumes"], f, "services.prometheus.volumes")
        .iter()
        .filter_map(scalar)
        .collect();
    let mount = volumes
        .iter()
        .find(|v| v.split(':').nth(1) == Some("/etc/prometheus/prometheus.yml"))
        .unwrap_or_else(|| panic!("{f}: services.prometheus must mount a file at /etc/prometheus/prometheus.yml, found {volumes:?}"));
    let source = mount.split(':').next().unwrap();
    assert!(
        deploy_dir().join(source).is_file(),
        "{f}: prometheus mounts {source}, which does not exist next to the compose file"
    );
}

// ---------------------------------------------------------------------------------------------
// Prometheus
// ---------------------------------------------------------------------------------------------

fn check_prometheus() {
    let f = "deploy/prometheus.yml";
    let doc = load_single_yaml("prometheus.yml");
    let jobs = req_vec(&doc["scrape_configs"], f, "scrape_configs");
    let mut targets = Vec::new();
    for job in jobs {
        let name = req_str(&job["job_name"], f, "scrape_configs[].job_name");
        if name == APP {
            if let Some(path) = job["metrics_path"].as_str() {
                assert_eq!(path, "/metrics", "{f}: job {name} must scrape /metrics");
            }
        }
        for sc in job["static_configs"].as_vec().into_iter().flatten() {
            for t in req_vec(&sc["targets"], f, "static_configs[].targets") {
                targets.push(req_str(t, f, "static_configs[].targets[]").to_string());
            }
        }
    }
    let amends_target = targets
        .iter()
        .find(|t| t.ends_with(&format!(":{HTTP_PORT}")))
        .unwrap_or_else(|| {
            panic!("{f}: no scrape target on port {HTTP_PORT} (targets: {targets:?})")
        });
    // The target must be reachable in the compose stack: its host is the amends service.
    assert_eq!(
        amends_target.as_str(),
        format!("{APP}:{HTTP_PORT}"),
        "{f}: the compose stack's amends target must be amends:{HTTP_PORT}"
    );
}

// ---------------------------------------------------------------------------------------------
// Kubernetes
// ---------------------------------------------------------------------------------------------

struct Manifest {
    file: String,
    doc: Yaml,
}

fn check_k8s() {
    let k8s = deploy_dir().join("k8s");
    let files = files_under(&k8s);
    let mut manifests: Vec<Manifest> = Vec::new();
    let mut kustomization = None;
    for rel in &files {
        let file = format!("deploy/k8s/{rel}");
        assert!(
            is_yaml(rel) && !rel.contains('/'),
            "{file}: only top-level YAML manifests are checked in deploy/k8s"
        );
        for doc in load_yaml(&format!("k8s/{rel}")) {
            let kind = req_str(&doc["kind"], &file, "kind").to_string();
            if kind == "Kustomization" {
                assert_eq!(
                    rel, "kustomization.yaml",
                    "{file}: the Kustomization belongs in kustomization.yaml"
                );
                kustomization = Some(doc);
            } else {
                manifests.push(Manifest {
                    file: file.clone(),
                    doc,
                });
            }
        }
    }
    let kustomization = kustomization.expect("deploy/k8s/kustomization.yaml: missing");

    // The kustomization lists exactly the other files.
    let f = "deploy/k8s/kustomization.yaml";
    let resources: Vec<String> = req_vec(&kustomization["resources"], f, "resources")
        .iter()
        .map(|r| req_str(r, f, "resources[]").to_string())
        .collect();
    let listed: BTreeSet<String> = resources.iter().cloned().collect();
    assert_eq!(
        listed.len(),
        resources.len(),
        "{f}: resources lists a file twice: {resources:?}"
    );
    let on_disk: BTreeSet<String> = files
        .iter()
        .filter(|r| r.as_str() != "kustomization.yaml")
        .cloned()
        .collect();
    let missing: Vec<&String> = on_disk.difference(&listed).collect();
    let extra: Vec<&String> = listed.difference(&on_disk).collect();
    assert!(
        missing.is_empty(),
        "{f}: resources does not list {missing:?}"
    );
    assert!(
        extra.is_empty(),
        "{f}: resources lists files that do not exist: {extra:?}"
    );

    // Every object is labelled as amends and of a kind checked here.
    let mut by_kind: BTreeMap<String, Vec<&Manifest>> = BTreeMap::new();
    for m in &manifests {
        let kind = m.doc["kind"].as_str().unwrap();
        assert!(
            matches!(
                kind,
                "ConfigMap" | "Deployment" | "Service" | "PodDisruptionBudget"
            ),
            "{}: no check in tests/deploy_files.rs knows kind {kind}; add one",
            m.file
        );
        req_str(&m.doc["apiVersion"], &m.file, "apiVersion");
        req_str(&m.doc["metadata"]["name"], &m.file, "metadata.name");
        let labels = string_map(&m.doc["metadata"]["labels"], &m.file, "metadata.labels");
        assert_eq!(
            labels.get(NAME_LABEL).map(String::as_str),
            Some(APP),
            "{}: metadata.labels.{NAME_LABEL} must be {APP}",
            m.file
        );
        by_kind.entry(kind.to_string()).or_default().push(m);
    }
    let one = |kind: &str| -> &Manifest {
        let list = by_kind.get(kind).map(Vec::as_slice).unwrap_or_default();
        assert_eq!(
            list.len(),
            1,
            "deploy/k8s: expected exactly one {kind}, found {}",
            list.len()
        );
        list[0]
    };
    let configmap = one("ConfigMap");
    let deployment = one("Deployment");
    let service = one("Service");
    let pdb = one("PodDisruptionBudget");

    // Deployment.
    let f = deployment.file.as_str();
    let d = &deployment.doc;
    assert_eq!(
        d["apiVersion"].as_str(),
        Some("apps/v1"),
        "{f}: apiVersion must be apps/v1"
    );
    let replicas = d["spec"]["replicas"]
        .as_i64()
        .unwrap_or_else(|| panic!("{f}: spec.replicas must be set"));
    assert!(
        replicas >= 2,
        "{f}: run several replicas in the consumer group, found {replicas}"
    );
    let selector = string_map(
        &d["spec"]["selector"]["matchLabels"],
        f,
        "spec.selector.matchLabels",
    );
    let template_labels = string_map(
        &d["spec"]["template"]["metadata"]["labels"],
        f,
        "spec.template.metadata.labels",
    );
    assert!(
        !selector.is_empty(),
        "{f}: spec.selector.matchLabels is empty"
    );
    assert!(is_subset(&selector, &template_labels), "{f}: spec.selector.matchLabels {selector:?} does not match the template labels {template_labels:?}");
    assert_eq!(
        template_labels.get(NAME_LABEL).map(String::as_str),
        Some(APP),
        "{f}: template labels must include {NAME_LABEL}: {APP}"
    );

    let pod = &d["spec"]["template"]["spec"];
    let grace = pod["terminationGracePeriodSeconds"]
        .as_i64()
        .unwrap_or_else(|| panic!("{f}: set terminationGracePeriodSeconds"));
    assert!(grace > SHUTDOWN_TIMEOUT_SECS, "{f}: terminationGracePeriodSeconds ({grace}) must exceed the {SHUTDOWN_TIMEOUT_SECS}s shutdown timeout");

    let spread = req_vec(
        &pod["topologySpreadConstraints"],
        f,
        "topologySpreadConstraints",
    );
    assert!(!spread.is_empty(), "{f}: add a topologySpreadConstraint");
    for c in spread {
        req_str(
            &c["topologyKey"],
            f,
            "topologySpreadConstraints[].topologyKey",
        );
        let sel = string_map(
            &c["labelSelector"]["matchLabels"],
            f,
            "topologySpreadConstraints[].labelSelector.matchLabels",
        );
        assert!(!sel.is_empty() && is_subset(&sel, &template_labels), "{f}: a topologySpreadConstraint selects {sel:?}, not the amends pods {template_labels:?}");
    }

    let annotations = string_map(
        &d["spec"]["template"]["metadata"]["annotations"],
        f,
        "spec.template.metadata.annotations",
    );
    assert_eq!(
        annotations.get("prometheus.io/scrape").map(String::as_str),
        Some("true"),
        "{f}: pod annotation prometheus.io/scrape must be \"true\""
    );
    assert_eq!(
        annotations.get("prometheus.io/port").map(String::as_str),
        Some("9464"),
        "{f}: pod annotation prometheus.io/port must be \"9464\""
    );
    if let Some(path) = annotations.get("prometheus.io/path") {
        assert_eq!(
            path, "/metrics",
            "{f}: pod annotation prometheus.io/path must be /metrics"
        );
    }

    let containers = req_vec(&pod["containers"], f, "containers");
    assert_eq!(containers.len(), 1, "{f}: expected one container");
    let c = &containers[0];
    req_str(&c["image"], f, "containers[0].image");

    let mut port_names: BTreeMap<String, i64> = BTreeMap::new();
    let mut port_numbers = Vec::new();
    for p in req_vec(&c["ports"], f, "containers[0].ports") {
        let n = p["containerPort"]
            .as_i64()
            .unwrap_or_else(|| panic!("{f}: containerPort must be a number"));
        port_numbers.push(n);
        if let Some(name) = p["name"].as_str() {
            port_names.insert(name.to_string(), n);
        }
    }
    assert!(
        port_numbers.contains(&HTTP_PORT),
        "{f}: the container must expose port {HTTP_PORT}, found {port_numbers:?}"
    );
    let resolve_port = |y: &Yaml, what: &str| -> i64 {
        match y {
            Yaml::Integer(n) => *n,
            Yaml::String(name) => *port_names.get(name).unwrap_or_else(|| {
                panic!("{f}: {what} names port {name}, which the container does not declare")
            }),
            other => panic!("{f}: {what} must be a port number or name, found {other:?}"),
        }
    };
    for (probe, path) in [
        ("startupProbe", HEALTH_PATH),
        ("livenessProbe", HEALTH_PATH),
        ("readinessProbe", READY_PATH),
    ] {
        let get = &c[probe]["httpGet"];
        assert!(
            get.as_hash().is_some(),
            "{f}: containers[0].{probe}.httpGet is missing"
        );
        if probe == "startupProbe" {
            let p = req_str(&get["path"], f, "startupProbe.httpGet.path");
            assert!(
                p == HEALTH_PATH || p == READY_PATH,
                "{f}: startupProbe must probe {HEALTH_PATH} or {READY_PATH}, found {p}"
            );
        } else {
            assert_eq!(
                get["path"].as_str(),
                Some(path),
                "{f}: {probe} must probe {path}"
            );
        }
        assert_eq!(
            resolve_port(&get["port"], &format!("{probe}.httpGet.port")),
            HTTP_PORT,
            "{f}: {probe} must probe port {HTTP_PORT}"
        );
    }

    // Security: the pod-level context, overridden per container.
    let psc = &pod["securityContext"];
    let csc = &c["securityContext"];
    let effective = |key: &str| -> &Yaml {
        if !csc[key].is_badvalue() {
            &csc[key]
        } else {
            &psc[key]
        }
    };
    assert_eq!(
        effective("runAsNonRoot").as_bool(),
        Some(true),
        "{f}: runAsNonRoot must be true"
    );
    let uid = effective("runAsUser")
        .as_i64()
        .unwrap_or_else(|| panic!("{f}: set runAsUser (numeric) so runAsNonRoot can be verified"));
    assert!(uid != 0, "{f}: runAsUser must not be 0");
    let image_user = dockerfile_user();
    let image_uid = image_user.split(':').next().unwrap();
    assert_eq!(
        image_uid,
        uid.to_string(),
        "{f}: runAsUser ({uid}) must match the Dockerfile's USER ({image_user})"
    );
    assert_eq!(
        csc["readOnlyRootFilesystem"].as_bool(),
        Some(true),
        "{f}: readOnlyRootFilesystem must be true"
    );
    assert_eq!(
        csc["allowPrivilegeEscalation"].as_bool(),
        Some(false),
        "{f}: allowPrivilegeEscalation must be false"
    );
    let drop: Vec<&str> = req_vec(&csc["capabilities"]["drop"], f, "capabilities.drop")
        .iter()
        .filter_map(Yaml::as_str)
        .collect();
    assert!(
        drop.contains(&"ALL"),
        "{f}: capabilities.drop must contain ALL"
    );

    for kind in ["requests", "limits"] {
        let r = string_map(&c["resources"][kind], f, &format!("resources.{kind}"));
        assert!(r.contains_key("memory"), "{f}: set resources.{kind}.memory");
    }

    let env: Vec<&Yaml> = c["env"]
        .as_vec()
        .map(|v| v.iter().collect())
        .unwrap_or_default();
    let mut env_names = BTreeSet::new();
    for e in &env {
        let name = req_str(&e["name"], f, "env[].name");
        if name.starts_with("AMENDS_") {
            assert!(
                is_amends_env_name(name),
                "{f}: env {name} is not of the form AMENDS_<SECTION>__<KEY>"
            );
        }
        env_names.insert(name.to_string());
    }
    assert!(
        env_names.contains("AMENDS_KAFKA__BROKERS"),
        "{f}: set env AMENDS_KAFKA__BROKERS"
    );

    // The config: the ConfigMap mounted at /etc/amends, holding the file the command reads.
    let config_path = match &c["args"] {
        Yaml::BadValue | Yaml::Null => "/etc/amends/amends.toml".to_string(), // the image's CMD
        args => {
            let words = compose_words(args, f, "containers[0].args");
            assert_eq!(
                words.first().map(String::as_str),
                Some("run"),
                "{f}: args must run the service"
            );
            flag_value(&words, "--config")
                .unwrap_or_else(|| panic!("{f}: args need --config FILE"))
                .to_string()
        }
    };
    let (config_dir, config_file) = config_path.rsplit_once('/').unwrap();
    let mounts = req_vec(&c["volumeMounts"], f, "volumeMounts");
    let mount = mounts
        .iter()
        .find(|m| m["mountPath"].as_str() == Some(config_dir))
        .unwrap_or_else(|| {
            panic!(
                "{f}: nothing is mounted at {config_dir} (the config is read from {config_path})"
            )
        });
    let volume_name = req_str(&mount["name"], f, "volumeMounts[].name");
    let volume = req_vec(&pod["volumes"], f, "volumes")
        .iter()
        .find(|v| v["name"].as_str() == Some(volume_name))
        .unwrap_or_else(|| panic!("{f}: no volume named {volume_name}"));
    let cm_name = configmap.doc["metadata"]["name"].as_str().unwrap();
    assert_eq!(
        volume["configMap"]["name"].as_str(),
        Some(cm_name),
        "{f}: volume {volume_name} must be the ConfigMap {cm_name}"
    );
    if let Some(items) = volume["configMap"]["items"].as_vec() {
        assert!(
            items
                .iter()
                .any(|i| i["path"].as_str() == Some(config_file)),
            "{f}: the configMap volume's items do not provide {config_file}"
        );
    }

    // ConfigMap: amends.toml parses and names the brokers.
    let f = configmap.file.as_str();
    let toml_text = req_str(
        &configmap.doc["data"][config_file],
        f,
        &format!("data.{config_file}"),
    );
    let config: toml::Table = toml_text
        .parse()
        .unwrap_or_else(|e| panic!("{f}: data.{config_file} is not valid TOML: {e}"));
    let kafka = config
        .get("kafka")
        .and_then(toml::Value::as_table)
        .unwrap_or_else(|| panic!("{f}: {config_file} has no [kafka] table"));
    let brokers_ok = match kafka.get("brokers") {
        Some(toml::Value::String(s)) => !s.trim().is_empty(),
        Some(toml::Value::Array(a)) => !a.is_empty(),
        _ => false,
    };
    assert!(brokers_ok, "{f}: {config_file} needs [kafka] brokers");
    // It must load exactly as the service loads it (types, unknown keys, validation).
    amends::config::Config::from_toml_str(toml_text, f, std::iter::empty()).unwrap_or_else(|e| {
        panic!("{f}: data.{config_file} does not load as an amends config: {e}")
    });
    if let Some(listen) = config.get("http").and_then(|h| h.get("listen")) {
        let listen = listen.as_str().unwrap_or_default();
        assert!(
            listen.ends_with(&format!(":{HTTP_PORT}")),
            "{f}: http.listen ({listen}) must use port {HTTP_PORT}, which the probes use"
        );
    }

    // Service.
    let f = service.file.as_str();
    let s = &service.doc;
    let sel = string_map(&s["spec"]["selector"], f, "spec.selector");
    assert!(
        !sel.is_empty() && is_subset(&sel, &template_labels),
        "{f}: spec.selector {sel:?} does not select the Deployment's pods {template_labels:?}"
    );
    let ports = req_vec(&s["spec"]["ports"], f, "spec.ports");
    let metrics = ports
        .iter()
        .find(|p| p["name"].as_str() == Some("metrics"))
        .unwrap_or_else(|| panic!("{f}: no port named metrics"));
    assert_eq!(
        metrics["port"].as_i64(),
        Some(HTTP_PORT),
        "{f}: port metrics must be {HTTP_PORT}"
    );
    let target = match &metrics["targetPort"] {
        Yaml::BadValue => HTTP_PORT,
        t => resolve_port(t, "Service targetPort"),
    };
    assert_eq!(
        target, HTTP_PORT,
        "{f}: port metrics must target container port {HTTP_PORT}"
    );

    // PodDisruptionBudget.
    let f = pdb.file.as_str();
    let p = &pdb.doc;
    assert_eq!(
        p["apiVersion"].as_str(),
        Some("policy/v1"),
        "{f}: apiVersion must be policy/v1"
    );
    assert_eq!(
        p["spec"]["maxUnavailable"].as_i64(),
        Some(1),
        "{f}: spec.maxUnavailable must be 1"
    );
    let sel = string_map(
        &p["spec"]["selector"]["matchLabels"],
        f,
        "spec.selector.matchLabels",
    );
    assert!(!sel.is_empty() && is_subset(&sel, &template_labels), "{f}: spec.selector.matchLabels {sel:?} does not select the Deployment's pods {template_labels:?}");
}

// ---------------------------------------------------------------------------------------------
// README
// ---------------------------------------------------------------------------------------------

fn check_readme() {
    let text = read("README.md");
    assert!(
        text.starts_with("# "),
        "deploy/README.md: should start with a title"
    );
    for rel in files_under(&deploy_dir()) {
        if rel == "README.md" {
            continue;
        }
        let name = rel.rsplit('/').next().unwrap();
        assert!(
            text.contains(name),
            "deploy/README.md: does not mention deploy/{rel}; say what it is for"
        );
    }
    for command in ["docker build", "docker compose", "kubectl"] {
        assert!(
            text.contains(command),
            "deploy/README.md: should show how to use it with `{command}`"
        );
    }
}

/// The compose file's `AMENDS_*` environment, applied to the shipped config/amends.toml, must
/// load: a wrong override (an unknown key, a value the service rejects) would stop start-up.
#[test]
fn compose_environment_overrides_load() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text =
        std::fs::read_to_string(root.join("deploy/docker-compose.yaml")).expect("compose file");
    let docs = YamlLoader::load_from_str(&text).expect("compose parses");
    let env = &docs[0]["services"]["amends"]["environment"];
    let vars: Vec<(String, String)> = match env {
        Yaml::Hash(h) => h
            .iter()
            .filter_map(|(k, v)| {
                let value = match v {
                    Yaml::String(s) => s.clone(),
                    Yaml::Integer(i) => i.to_string(),
                    Yaml::Boolean(b) => b.to_string(),
                    _ => return None,
                };
                Some((k.as_str()?.to_string(), value))
            })
            .collect(),
        other => panic!("deploy/docker-compose.yaml: services.amends.environment must be a map, found {other:?}"),
    };
    assert!(
        vars.iter().any(|(k, _)| k == "AMENDS_KAFKA__BROKERS"),
        "compose sets the brokers"
    );
    amends::config::Config::load(&root.join("config/amends.toml"), vars)
        .unwrap_or_else(|e| panic!("deploy/docker-compose.yaml: the amends environment does not load over config/amends.toml: {e}"));
}
