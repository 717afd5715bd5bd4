//! `ctr` on a real pseudo-terminal, for `-t` runs and execs and console resizes.

use super::{bounded, Env, Run};
use std::process::Command;

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// `script` running `[setup;] ctr --address A -n NS ARGS` on a fresh
/// pseudo-terminal; with `secs`, ctr is killed after that many seconds.
///
/// ctr must stay in the terminal's foreground process group: in a background
/// group its switch to raw mode stops it with SIGTTOU. A plain `timeout` moves
/// ctr into a group of its own, and whether the shell script(1) starts (from
/// $SHELL) execs it in place or forks it decides whether that group is the
/// foreground one, so the kill is `timeout --foreground` and the shell is fixed.
pub fn ctr_pty_command(env: &Env, setup: &str, args: &[&str], secs: Option<u32>) -> Command {
    let mut cmd = Command::new("script");
    on_pty(&mut cmd, env, setup, args, secs);
    cmd
}

fn on_pty(script: &mut Command, env: &Env, setup: &str, args: &[&str], secs: Option<u32>) {
    let mut line = match secs {
        Some(s) => format!("timeout --foreground -s KILL {s} "),
        None => String::new(),
    };
    line.push_str(&format!("ctr --address {} -n {}", shell_quote(&env.address), shell_quote(&env.namespace)));
    for a in args {
        line.push(' ');
        line.push_str(&shell_quote(a));
    }
    if !setup.is_empty() {
        line = format!("{setup}; {line}");
    }
    script.args(["-qec", &line, "/dev/null"]).env("SHELL", "/bin/sh");
}

/// Runs `ctr ARGS` on a real pseudo-terminal, after the shell commands in
/// `setup` (e.g. `stty cols 100 rows 30`) ran on that terminal.
/// Exit code is ctr's (`script -e`); output is the terminal's (CR LF line ends).
pub fn ctr_on_pty(env: &Env, setup: &str, args: &[&str]) -> Run {
    let mut script = bounded(40, "script");
    on_pty(&mut script, env, setup, args, Some(30));
    script.output().expect("run script").into()
}

/// The `/dev/pts/N` a `tty` command printed, if any.
pub fn pts_name(out: &str) -> Option<String> {
    let at = out.find("/dev/pts/")?;
    let digits: String = out[at + 9..].chars().take_while(char::is_ascii_digit).collect();
    (!digits.is_empty()).then(|| format!("/dev/pts/{digits}"))
}

/// A container command that prints `size:ROWS COLS` once the console has a size
/// (ctr resizes right after start, so the very first `stty size` may see 0 0).
pub const PRINT_SIZE: &str = "i=0; while :; do s=$(stty size 2>/dev/null); case \"$s\" in ''|'0 0') ;; *) break ;; esac; \
                              i=$((i+1)); [ $i -ge 100 ] && break; sleep 0.1; done; echo \"size:$s\"";
