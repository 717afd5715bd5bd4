//! micrun's TOML configuration: file, environment override and containerd runtime options.

use std::path::{Path, PathBuf};

use serde::Deserialize;

pub const DEFAULT_CONFIG_PATH: &str = "/etc/micrun/config.toml";
pub const CONFIG_ENV: &str = "MICRUN_CONFIG";

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub log_level: String,
    pub state_root: PathBuf,
    pub delegate: DelegateConfig,
    pub mica: MicaConfig,
    pub sandbox: SandboxConfig,
    /// Also read the container's containerd labels under `org.openeuler.micran.`
    /// and `org.openeuler.micrun.` as annotations (nerdctl 2.x `-l`), asking
    /// containerd's API at each Create. Off: a shim sees only the OCI spec.
    pub labels_as_annotations: bool,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DelegateConfig {
    /// Delegate used when no annotation picks one; unset means the first of `order` on PATH.
    pub default: Option<String>,
    pub order: Vec<String>,
    /// Names the `io.containerd.mica.v2.delegate` annotation may pick.
    pub allowed: Vec<String>,
    /// Profiles here override or add to the built-in ones.
    pub profile_dir: PathBuf,
    /// Pass `--systemd-cgroup` even when the cgroups path is not in `slice:prefix:name` form.
    pub systemd_cgroup: bool,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MicaConfig {
    pub socket_dir: PathBuf,
    pub tty_dir: PathBuf,
    pub status_interval_ms: u64,
    pub timeout_ms: u64,
    pub start_timeout_ms: u64,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SandboxMode {
    /// A holder process of the shim keeps the pod's namespaces; no pause
    /// image runs and no OCI runtime is needed. ("mica" is its old name.)
    #[serde(alias = "mica")]
    Holder,
    /// The pause image runs through the delegate like any Linux container.
    Delegate,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SandboxConfig {
    pub mode: SandboxMode,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            log_level: "info".into(),
            state_root: "/run/micrun".into(),
            delegate: DelegateConfig::default(),
            mica: MicaConfig::default(),
            sandbox: SandboxConfig::default(),
            labels_as_annotations: false,
        }
    }
}

impl Default for DelegateConfig {
    fn default() -> Self {
        let names = vec!["crun".to_string(), "runc".into(), "youki".into()];
        DelegateConfig {
            default: None,
            order: names.clone(),
            allowed: names,
            profile_dir: "/etc/micrun/delegates".into(),
            systemd_cgroup: false,
        }
    }
}

impl Default for MicaConfig {
    fn default() -> Self {
        MicaConfig {
            socket_dir: "/run/mica".into(),
            tty_dir: "/dev".into(),
            status_interval_ms: 1000,
            timeout_ms: 5000,
            start_timeout_ms: 30000,
        }
    }
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig { mode: SandboxMode::Holder }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read micrun config {path}: {err}")]
    Read { path: PathBuf, err: std::io::Error },
    #[error("invalid micrun config {origin}: {message}")]
    Parse { origin: String, message: String },
}

/// Where a config came from, so errors can name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    Body,
    File(PathBuf),
}

impl Config {
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            origin: origin.to_string(),
            message: e.message().to_string() + &span_hint(text, e.span()),
        })?;
        cfg.validate().map_err(|message| ConfigError::Parse { origin: origin.to_string(), message })?;
        Ok(cfg)
    }

    /// Loads a file; a missing file at the default location is not an error.
    pub fn load_file(path: &Path, must_exist: bool) -> Result<Config, ConfigError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Config::parse(&text, &path.display().to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !must_exist => Ok(Config::default()),
            Err(err) => Err(ConfigError::Read { path: path.to_path_buf(), err }),
        }
    }

    /// The shim-wide config: `$MICRUN_CONFIG`, else `/etc/micrun/config.toml`.
    pub fn load_default() -> Result<Config, ConfigError> {
        match std::env::var_os(CONFIG_ENV) {
            Some(p) if !p.is_empty() => Config::load_file(Path::new(&p), true),
            _ => Config::load_file(Path::new(DEFAULT_CONFIG_PATH), false),
        }
    }

    /// The config for one container: runtime options win over the shim-wide file.
    pub fn resolve(source: Option<&ConfigSource>, body: Option<&str>) -> Result<Config, ConfigError> {
        match (source, body) {
            (Some(ConfigSource::Body), Some(body)) => Config::parse(body, "from runtime option config_body"),
            (Some(ConfigSource::File(p)), _) => Config::load_file(p, true),
            _ => Config::load_default(),
        }
    }

    fn validate(&self) -> Result<(), String> {
        if !matches!(self.log_level.as_str(), "trace" | "debug" | "info" | "warn" | "error") {
            return Err(format!(
                "log_level = {:?}: use one of trace, debug, info, warn, error",
                self.log_level
            ));
        }
        if !self.state_root.is_absolute() {
            return Err(format!("state_root = {:?}: must be an absolute path", self.state_root));
        }
        if let Some(d) = &self.delegate.default {
            if !self.delegate.allowed.contains(d) && !self.delegate.order.contains(d) {
                return Err(format!(
                    "delegate.default = {d:?} is neither in delegate.allowed nor delegate.order"
                ));
            }
        }
        for name in self.delegate.order.iter().chain(&self.delegate.allowed) {
            if !is_delegate_name(name) {
                return Err(format!("delegate: delegate name {name:?} is invalid: use 1-32 characters of a-z, 0-9, '-' and '_'"));
            }
        }
        Ok(())
    }
}

/// A delegate (profile) name: 1-32 of `a-z0-9-_`, so it can never be a path.
pub fn is_delegate_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 32 && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

fn span_hint(text: &str, span: Option<std::ops::Range<usize>>) -> String {
    match span {
        Some(r) => {
            let line = text[..r.start.min(text.len())].matches('\n').count() + 1;
            format!(" (line {line})")
        }
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_is_default() {
        assert_eq!(Config::parse("", "t").unwrap(), Config::default());
    }

    #[test]
    fn shipped_example_is_the_defaults() {
        let example = include_str!("../examples/micrun-config.toml");
        assert_eq!(Config::parse(example, "example").unwrap(), Config::default());
    }

    #[test]
    fn unknown_key_is_named() {
        let e = Config::parse("[delegate]\ndefualt = \"crun\"\n", "t").unwrap_err().to_string();
        assert!(e.contains("defualt"), "{e}");
        assert!(e.contains("line 2"), "{e}");
    }

    #[test]
    fn bad_values_are_named() {
        let e = Config::parse("log_level = \"loud\"", "t").unwrap_err().to_string();
        assert!(e.contains("log_level"), "{e}");
        let e = Config::parse("state_root = \"run\"", "t").unwrap_err().to_string();
        assert!(e.contains("state_root"), "{e}");
        let e = Config::parse("[delegate]\nallowed = [\"/bin/sh\"]", "t").unwrap_err().to_string();
        assert!(e.contains("/bin/sh"), "{e}");
        let e = Config::parse("[sandbox]\nmode = \"vm\"", "t").unwrap_err().to_string();
        assert!(e.contains("vm") || e.contains("variant"), "{e}");
    }

    #[test]
    fn missing_default_file_is_fine_but_named_file_is_not() {
        let p = Path::new("/nonexistent/micrun.toml");
        assert_eq!(Config::load_file(p, false).unwrap(), Config::default());
        assert!(Config::load_file(p, true).unwrap_err().to_string().contains("/nonexistent/micrun.toml"));
    }
}
