//! The `amends` binary: parses the command line, reads the environment once, and maps
//! errors to exit codes (1 for runtime failures, 2 for invalid configuration or usage).

use amends::app;
use amends::domain::{EventTime, Millis};
use amends::sim::{OutcomeConfig, SimConfig, Spike};
use anyhow::Context;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// mimalloc instead of the system allocator: a decoded event, its evidence and its outputs are
/// many small, short-lived allocations, where glibc's malloc and free took about a fifth of
/// a replay's profile.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "amends",
    version,
    about = "Finds service breaking points in Kafka touch-point events and publishes proactive recovery tasks."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service against a Kafka cluster.
    Run {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Run the detection over a JSON-lines file of events and write the outputs as JSON lines.
    Replay {
        #[arg(long, value_name = "FILE")]
        input: PathBuf,
        #[arg(long, value_name = "DIR")]
        output: PathBuf,
        /// Recovery outcomes (JSON lines), merged into the events by `occurred_at`.
        #[arg(long, value_name = "FILE")]
        outcomes: Option<PathBuf>,
        /// Config file for rules and policy (default: the embedded defaults).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Also time JSON decoding alone over the same file first (same process, same
        /// reading), and print both throughputs and their ratio.
        #[arg(long)]
        measure_decode: bool,
    },
    /// Everything in one command, no setup: simulated traffic through the real pipeline on an
    /// embedded Kafka mock cluster.
    Demo {
        /// Folder for the outputs.
        #[arg(long, default_value = "amends-demo")]
        output: PathBuf,
        /// Customers in the three simulated days (about 10 events each per day).
        #[arg(long, default_value_t = 700)]
        customers: usize,
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
    /// Produce seeded, realistic synthetic touch-point traffic to a cluster or a file.
    Simulate {
        /// Produce to this cluster...
        #[arg(long, conflicts_with = "output", required_unless_present = "output")]
        brokers: Option<String>,
        /// ...or write JSON lines to this file.
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
        #[arg(long, default_value = "touchpoints")]
        topic: String,
        /// Number of customers (about 10 events each per simulated day).
        #[arg(long)]
        customers: Option<usize>,
        /// Aim for about this many events instead (chooses the number of customers).
        #[arg(long, conflicts_with = "customers")]
        events: Option<usize>,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Start of the simulated period (RFC 3339).
        #[arg(long)]
        start: Option<String>,
        /// Length of the simulated period, e.g. 24h or 7d.
        #[arg(long, default_value = "24h")]
        duration: String,
        /// Insert one poison record every N records (0: none).
        #[arg(long, default_value_t = 0)]
        poison_every: usize,
        /// A failure spike: the channel's operational steps performed in the window fail FACTOR
        /// times as often (capped at certainty), e.g. 2026-11-21T14:00:00Z,30m,billing,6.
        /// CHANNEL is sales, billing, shipping or service.
        #[arg(long, value_name = "START,DURATION,CHANNEL,FACTOR", value_parser = Spike::parse)]
        spike: Option<Spike>,
        /// With --output: also run the written events through the detection (as `replay`
        /// does) and write the recovery outcomes case tools report for its tasks to FILE.
        #[arg(long, value_name = "FILE", requires = "output")]
        outcomes: Option<PathBuf>,
        /// Config for the detection behind --outcomes (default: the embedded defaults).
        #[arg(long, value_name = "FILE", requires = "outcomes")]
        config: Option<PathBuf>,
    },
    /// Validate a config file (with AMENDS_* environment overrides) and print what it resolves to.
    CheckConfig {
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
}

fn env_vars() -> Vec<(String, String)> {
    std::env::vars().collect()
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            if e.downcast_ref::<amends::config::ConfigError>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run { config } => {
            let cfg = app::load_config(Some(&config), env_vars())?;
            amends::telemetry::logging::init(&cfg.telemetry);
            let report = runtime()?.block_on(app::run::run(cfg))?;
            tracing::info!(records = report.records, "amends stopped cleanly");
            Ok(ExitCode::SUCCESS)
        }
        Command::Replay {
            input,
            output,
            outcomes,
            config,
            measure_decode,
        } => {
            let cfg = app::load_config(config.as_deref(), env_vars())?;
            let decode = if measure_decode {
                let file = std::fs::File::open(&input)
                    .with_context(|| format!("reading {}", input.display()))?;
                let reader = std::io::BufReader::with_capacity(1 << 20, file);
                Some(app::decode_bench::decode_only(&cfg, reader)?)
            } else {
                None
            };
            let s = app::replay::replay(&cfg, &input, outcomes.as_deref(), &output)
                .with_context(|| format!("replaying {}", input.display()))?;
            eprintln!(
                "replayed {} records ({} events, {} recovery outcomes, {} dead letters) in {:.3} s: {:.0} records/s; {} task revisions, {} trend snapshots, {} trend alerts, {} customers in state; outputs in {}",
                s.records, s.events, s.outcomes, s.dead_letters, s.elapsed_s, s.events_per_second(), s.tasks, s.snapshots, s.alerts, s.customers, output.display()
            );
            if s.outcomes_after_events > 0 {
                eprintln!(
                    "{} recovery outcomes are later than the last event and were not applied (time stops at the last event)",
                    s.outcomes_after_events
                );
            }
            if let Some(d) = decode {
                eprintln!(
                    "decode only: {} records ({} valid) in {:.3} s: {:.0} records/s; full replay / decode only = {:.2}",
                    d.records,
                    d.ok,
                    d.elapsed_s,
                    d.records_per_second(),
                    s.events_per_second() / d.records_per_second().max(1.0)
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo {
            output,
            customers,
            seed,
        } => {
            // The summary is the demo's output; librdkafka's chatter about the mock cluster and
            // per-record dead-letter warnings would bury it (RUST_LOG still overrides).
            amends::telemetry::logging::init(&amends::config::TelemetryConfig {
                log_level: "error,rdkafka=off,librdkafka=off".into(),
                ..Default::default()
            });
            let opts = app::demo::DemoOptions {
                output,
                customers,
                seed,
                ..Default::default()
            };
            let report = runtime()?.block_on(app::demo::demo(opts))?;
            print!("{}", report.text);
            Ok(ExitCode::SUCCESS)
        }
        Command::Simulate {
            brokers,
            output,
            topic,
            customers,
            events,
            seed,
            start,
            duration,
            poison_every,
            spike,
            outcomes,
            config,
        } => {
            let mut cfg = match events {
                Some(n) => SimConfig::for_events(n),
                None => SimConfig::default(),
            };
            cfg.seed = seed;
            if let Some(c) = customers {
                cfg.customers = c;
            }
            if let Some(s) = start {
                cfg.start = EventTime::parse(&s).map_err(|e| anyhow::anyhow!("--start: {e}"))?;
            }
            cfg.duration =
                Millis::parse(&duration).map_err(|e| anyhow::anyhow!("--duration: {e}"))?;
            cfg.poison_every = poison_every;
            // clap drops `requires = "output"` when --brokers (which conflicts with --output)
            // is given, so this is checked here.
            if outcomes.is_some() && output.is_none() {
                anyhow::bail!(
                    "--outcomes needs --output: outcomes answer the tasks amends finds in the written file (against a cluster, produce them once amends has emitted its tasks)"
                );
            }
            if let Some(s) = &spike {
                let end = cfg.start.plus(cfg.duration);
                if !s.overlaps(cfg.start, end) {
                    anyhow::bail!(
                        "--spike: the window {} to {} lies outside the simulated period {} to {end} (see --start and --duration)",
                        s.start,
                        s.end(),
                        cfg.start
                    );
                }
            }
            cfg.spike = spike;
            let (seed, spike) = (cfg.seed, cfg.spike.clone());
            match (brokers, output) {
                (_, Some(path)) => {
                    let w = app::simulate::to_file(cfg, &path)
                        .with_context(|| format!("writing {}", path.display()))?;
                    eprintln!("wrote {} records to {}", w.records, path.display());
                    if let Some(s) = &spike {
                        eprintln!(
                            "spike: {} failures on {} between {} and {}",
                            w.stats.spike_failures,
                            s.channel,
                            s.start,
                            s.end()
                        );
                    }
                    if let Some(out) = outcomes {
                        let detect = app::load_config(config.as_deref(), env_vars())?;
                        let summary = app::simulate::outcomes_to_file(
                            &detect,
                            &path,
                            &OutcomeConfig::default(),
                            seed,
                            &out,
                        )
                        .with_context(|| format!("writing outcomes to {}", out.display()))?;
                        eprintln!("outcomes: {summary}; in {}", out.display());
                    }
                }
                (Some(b), None) => {
                    let p = runtime()?
                        .block_on(app::simulate::to_kafka(cfg, &b, &topic, &[]))
                        .context("producing to Kafka")?;
                    eprintln!("produced {} records to {topic}", p.sent);
                    if p.too_large > 0 {
                        eprintln!("{} oversize record(s) were refused by the cluster (topic max.message.bytes); raise it to test the too_large path", p.too_large);
                    }
                }
                (None, None) => anyhow::bail!("give --brokers or --output"),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::CheckConfig { file } => match app::check_config::check(&file, env_vars()) {
            Ok(summary) => {
                print!("{summary}");
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                eprintln!("error: {e}");
                Ok(ExitCode::from(2))
            }
        },
    }
}
