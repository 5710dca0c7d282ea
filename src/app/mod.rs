//! The commands behind the `amends` binary. Each is a function taking already-parsed
//! arguments; `main.rs` only parses the command line, reads the environment and maps errors
//! to exit codes.

pub mod check_config;
pub mod decode_bench;
pub mod demo;
pub mod replay;
pub mod run;
pub mod simulate;

use crate::config::{Config, ConfigError};
use std::path::Path;

/// Loads `path` with the process environment's `AMENDS_*__*` overrides, or the embedded
/// defaults (plus overrides) when no path is given.
pub fn load_config(path: Option<&Path>, env: Vec<(String, String)>) -> Result<Config, ConfigError> {
    match path {
        Some(p) => Config::load(p, env),
        None => Config::from_toml_str("", "(embedded defaults)", env),
    }
}
