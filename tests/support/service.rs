//! The service under test: its TOML config and [`AmendsProcess`], the real binary as a child.

use super::{create_topics, print_tail, unique_name};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Fresh topic names for one test, all sharing one random prefix.
#[derive(Clone, Debug)]
pub struct Topics {
    pub touchpoints: String,
    pub outcomes: String,
    pub recovery_tasks: String,
    pub dead_letter: String,
    pub trend_snapshots: String,
    pub trend_alerts: String,
    pub changelog: String,
    pub trend_partials: String,
}

impl Topics {
    pub fn unique(prefix: &str) -> Topics {
        let p = unique_name(prefix);
        Topics {
            touchpoints: format!("{p}-touchpoints"),
            outcomes: format!("{p}-outcomes"),
            recovery_tasks: format!("{p}.recovery-tasks"),
            dead_letter: format!("{p}.dead-letter"),
            trend_snapshots: format!("{p}.trend-snapshots"),
            trend_alerts: format!("{p}.trend-alerts"),
            changelog: format!("{p}.changelog"),
            trend_partials: format!("{p}.trend-partials"),
        }
    }

    /// Creates every topic: the inputs and the changelog with `partitions` (the changelog is
    /// co-partitioned with the input), the other outputs with `partitions` too.
    pub fn create(&self, bootstrap: &str, partitions: i32) {
        create_topics(
            bootstrap,
            &[
                (&self.touchpoints, partitions),
                (&self.outcomes, partitions),
                (&self.recovery_tasks, partitions),
                (&self.dead_letter, partitions),
                (&self.trend_snapshots, partitions),
                (&self.trend_alerts, partitions),
                (&self.changelog, partitions),
                (&self.trend_partials, partitions),
            ],
        );
    }
}

/// What goes into the service's TOML config for a test.
#[derive(Clone, Debug)]
pub struct ServiceConfig<'a> {
    pub bootstrap: &'a str,
    pub group_id: String,
    pub topics: &'a Topics,
    /// `pipeline.shutdown_timeout`, e.g. `"20s"`.
    pub shutdown_timeout: &'a str,
    /// librdkafka consumer properties (`[kafka.consumer]`).
    pub consumer: Vec<(&'a str, &'a str)>,
    /// Keys of the `[detect]` section. The default suits the generated traffic, whose event
    /// time is strictly increasing: no reorder delay, and a partition that stops receiving
    /// stops holding the watermark back after 3 s.
    pub detect: &'a str,
    /// Extra TOML appended verbatim (whole sections other than `[detect]`).
    pub extra: &'a str,
}

impl<'a> ServiceConfig<'a> {
    pub fn new(bootstrap: &'a str, topics: &'a Topics) -> ServiceConfig<'a> {
        ServiceConfig {
            bootstrap,
            group_id: unique_name("e2e"),
            topics,
            shutdown_timeout: "20s",
            consumer: vec![
                ("auto.offset.reset", "earliest"),
                // A SIGKILLed member stays in the group until its session times out, and the
                // restarted instance's join waits for that (45 s by librdkafka's default).
                // Tests restart on purpose, so let a dead member go quickly.
                ("session.timeout.ms", "6000"),
                ("heartbeat.interval.ms", "500"),
            ],
            detect: "out_of_orderness = \"0s\"\nidle_partition_after = \"3s\"\n",
            extra: "",
        }
    }
}

fn toml_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Writes `amends.toml` into `dir` and returns its path.
pub fn write_config(dir: &Path, cfg: &ServiceConfig<'_>) -> PathBuf {
    let t = cfg.topics;
    let text = format!(
        r#"# Written by tests/support for one test run.
[kafka]
brokers = {brokers}
group_id = {group}

[kafka.consumer]
{consumer}
[input.touchpoints]
topics = [{touchpoints}]

[input.recovery_outcomes]
topics = [{outcomes}]

[output]
recovery_tasks = {tasks}
dead_letter = {dlq}
trend_snapshots = {snapshots}
trend_alerts = {alerts}
changelog = {changelog}
trend_partials = {partials}

[pipeline]
shutdown_timeout = {shutdown}

[http]
listen = "127.0.0.1:0"

[telemetry]
log_level = "info"

[detect]
{detect}
{extra}
"#,
        brokers = toml_str(cfg.bootstrap),
        group = toml_str(&cfg.group_id),
        consumer = cfg
            .consumer
            .iter()
            .map(|(k, v)| format!("{} = {}\n", toml_str(k), toml_str(v)))
            .collect::<String>(),
        touchpoints = toml_str(&t.touchpoints),
        outcomes = toml_str(&t.outcomes),
        tasks = toml_str(&t.recovery_tasks),
        dlq = toml_str(&t.dead_letter),
        snapshots = toml_str(&t.trend_snapshots),
        alerts = toml_str(&t.trend_alerts),
        changelog = toml_str(&t.changelog),
        partials = toml_str(&t.trend_partials),
        shutdown = toml_str(cfg.shutdown_timeout),
        detect = cfg.detect,
        extra = cfg.extra,
    );
    let path = dir.join("amends.toml");
    fs::write(&path, text).expect("write amends.toml");
    path
}

/// The real `amends` binary running `amends run --config FILE`, with stdout and stderr in
/// files beside the config (one pair per start). Killed on drop; if the test is panicking,
/// the tails of its logs are printed first.
pub struct AmendsProcess {
    child: Option<Child>,
    config: PathBuf,
    dir: PathBuf,
    starts: u32,
    /// Log files of every start, oldest first.
    logs: Vec<(PathBuf, PathBuf)>,
    /// Extra environment for the process.
    env: BTreeMap<String, String>,
    logs_printed: bool,
}

impl AmendsProcess {
    /// Starts `amends run --config <config>`; logs go to the config file's directory.
    pub fn start(config: &Path) -> AmendsProcess {
        AmendsProcess::start_with_env(config, &[])
    }

    pub fn start_with_env(config: &Path, env: &[(&str, &str)]) -> AmendsProcess {
        let dir = config
            .parent()
            .expect("config has a parent dir")
            .to_path_buf();
        let mut p = AmendsProcess {
            child: None,
            config: config.to_path_buf(),
            dir,
            starts: 0,
            logs: Vec::new(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            logs_printed: false,
        };
        p.spawn();
        p
    }

    fn spawn(&mut self) {
        self.starts += 1;
        let out = self.dir.join(format!("amends-{}.stdout", self.starts));
        let err = self.dir.join(format!("amends-{}.stderr", self.starts));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_amends"));
        cmd.arg("run")
            .arg("--config")
            .arg(&self.config)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::from(fs::File::create(&out).expect("stdout file")))
            .stderr(Stdio::from(fs::File::create(&err).expect("stderr file")));
        // Do not let the developer's own overrides leak into the test.
        for (k, _) in std::env::vars() {
            if k.starts_with("AMENDS_") && k.contains("__") {
                cmd.env_remove(k);
            }
        }
        // Plain log lines in the files (tracing colours its output unless told not to).
        cmd.env("NO_COLOR", "1");
        cmd.envs(&self.env);
        self.child = Some(cmd.spawn().expect("spawn the amends binary"));
        self.logs.push((out, err));
    }

    /// Starts the process again with the same config (after a kill or an exit).
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL and reap.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends SIGTERM (through `kill -TERM`, so no libc dependency). Does not wait.
    pub fn sigterm(&mut self) {
        self.signal("TERM");
    }

    /// Sends SIGINT. Does not wait.
    pub fn sigint(&mut self) {
        self.signal("INT");
    }

    fn signal(&mut self, sig: &str) {
        let pid = self.pid().expect("process is running");
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(pid.to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{sig} {pid} failed: {status}");
    }

    /// Whether the process has exited (reaping it if so), without waiting.
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().expect("try_wait"))
    }

    /// Waits up to `timeout` for the process to exit. On timeout, prints the log tails, kills
    /// it and panics.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        assert!(
            self.child.is_some(),
            "wait_exit: amends is not running (killed or already reaped)"
        );
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_exit() {
                self.child = None;
                return status;
            }
            if Instant::now() >= deadline {
                self.print_logs(60);
                self.kill9();
                panic!("amends did not exit within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Panics (with logs) if the process has exited.
    pub fn assert_running(&mut self) {
        if let Some(status) = self.try_exit() {
            self.print_logs(60);
            panic!("amends exited unexpectedly with {status}");
        }
    }

    /// Prints the tails of the logs of the latest start.
    pub fn print_logs(&mut self, lines: usize) {
        self.logs_printed = true;
        if let Some((out, err)) = self.logs.last() {
            print_tail(
                &format!("amends stdout (start {})", self.starts),
                out,
                lines,
            );
            print_tail(
                &format!("amends stderr (start {})", self.starts),
                err,
                lines,
            );
        }
    }

    /// Every start's (stdout, stderr) log paths, oldest first.
    pub fn logs(&self) -> &[(PathBuf, PathBuf)] {
        &self.logs
    }
}

impl Drop for AmendsProcess {
    fn drop(&mut self) {
        if std::thread::panicking() && !self.logs_printed {
            self.print_logs(60);
        }
        self.kill9();
    }
}
