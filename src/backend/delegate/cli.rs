//! Runs the delegate's OCI runtime CLI with the profile's flags and turns its
//! failures into messages that say what went wrong.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::profile::Profile;
use super::sealed::SealedCopy;
use crate::backend::{Error, Result};
use crate::spawn::{self, ChildStdio};

pub struct Cli {
    pub profile: Profile,
    pub binary: PathBuf,
    pub root: PathBuf,
    pub log: PathBuf,
    pub systemd_cgroup: bool,
}

impl Cli {
    fn command(&self, program: &Path, args: &[OsString]) -> std::process::Command {
        use std::os::unix::process::CommandExt;
        let mut cmd = std::process::Command::new(program);
        // `ps` shows the runtime's name even when a sealed copy runs.
        cmd.arg0(&self.binary);
        cmd.arg("--root").arg(&self.root);
        cmd.arg(format!("--log={}", self.log.display())).arg("--log-format=json");
        if self.systemd_cgroup {
            cmd.arg("--systemd-cgroup");
        }
        cmd.args(&self.profile.global_args).args(args);
        cmd
    }

    /// Runs one subcommand; returns its stdout, or an error carrying the
    /// runtime's own message.
    pub async fn run(&self, args: Vec<OsString>, stdio: ChildStdio) -> Result<Vec<u8>> {
        let log_start = std::fs::metadata(&self.log).map(|m| m.len()).unwrap_or(0);
        let sub = args.first().map(|a| a.to_string_lossy().into_owned()).unwrap_or_default();
        // Kept open until the call returns: the child executes it by its fd.
        let sealed = if self.profile.sealed_exec { self.sealed_copy() } else { None };
        let program = sealed.as_ref().map(SealedCopy::exec_path).unwrap_or_else(|| self.binary.clone());
        let cmd = self.command(&program, &args);
        tracing::debug!(delegate = %self.profile.name, args = ?args, "delegate call");
        let done = spawn::run(cmd, stdio)
            .await
            .map_err(|e| Error::Failed(format!("cannot run {} {sub}: {e}", self.binary.display())))?;
        if done.code == 0 {
            return Ok(done.stdout);
        }
        let message = self
            .log_error(log_start)
            .or_else(|| non_empty(&done.stderr))
            .unwrap_or_else(|| format!("exit status {}", done.code));
        Err(Error::Failed(format!("{} ({}) {sub} failed: {message}", self.profile.name, self.binary.display())))
    }

    fn sealed_copy(&self) -> Option<SealedCopy> {
        SealedCopy::of(&self.binary)
            .map_err(|e| tracing::warn!(binary = %self.binary.display(), error = %e, "no sealed copy; the runtime seals itself"))
            .ok()
    }

    pub async fn simple(&self, args: &[&str]) -> Result<Vec<u8>> {
        self.run(args.iter().map(OsString::from).collect(), ChildStdio::default()).await
    }

    /// The last error the runtime logged since `offset`.
    fn log_error(&self, offset: u64) -> Option<String> {
        let text = std::fs::read(&self.log).ok()?;
        let text = String::from_utf8_lossy(text.get(offset as usize..)?).into_owned();
        last_error(&text, &self.profile.log.message_field, &self.profile.log.level_field)
    }
}

fn non_empty(b: &[u8]) -> Option<String> {
    let s = String::from_utf8_lossy(b).trim().to_string();
    (!s.is_empty()).then_some(s)
}

/// Finds the last error-level message in JSON log lines; fields are dotted paths.
pub fn last_error(text: &str, message_field: &str, level_field: &str) -> Option<String> {
    let field = |v: &serde_json::Value, path: &str| -> Option<String> {
        let found = path.split('.').try_fold(v, |v, k| v.get(k))?;
        Some(found.as_str().map(str::to_string).unwrap_or_else(|| found.to_string()))
    };
    let mut last_any = None;
    let mut last_err = None;
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        let Some(msg) = field(&v, message_field) else { continue };
        let level = field(&v, level_field).unwrap_or_default().to_ascii_lowercase();
        if matches!(level.as_str(), "error" | "fatal" | "panic") {
            last_err = Some(msg.clone());
        }
        last_any = Some(msg);
    }
    last_err.or(last_any)
}

/// The runtime's words for "that process is gone", across crun, runc and youki.
pub fn is_gone(e: &Error) -> bool {
    let m = e.to_string().to_ascii_lowercase();
    ["not running", "no such process", "process already finished", "does not exist", "not found", "container not running"]
        .iter()
        .any(|p| m.contains(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_last_error_per_format() {
        let runc = "{\"level\":\"info\",\"msg\":\"x\"}\n{\"level\":\"error\",\"msg\":\"exec: \\\"nope\\\": not found\",\"time\":\"t\"}\n";
        assert_eq!(last_error(runc, "msg", "level").unwrap(), "exec: \"nope\": not found");
        let youki = "{\"level\":\"ERROR\",\"fields\":{\"message\":\"failed to exec\"}}\n{\"level\":\"DEBUG\",\"fields\":{\"message\":\"bye\"}}";
        assert_eq!(last_error(youki, "fields.message", "level").unwrap(), "failed to exec");
        assert_eq!(last_error("garbage\n", "msg", "level"), None);
    }
}
