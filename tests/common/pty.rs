//! `ctr` on a real pseudo-terminal, for `-t` runs and execs and console resizes.

use super::{bounded, Env, Run};

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Runs `ctr ARGS` on a real pseudo-terminal (`script`), after the shell
/// commands in `setup` (e.g. `stty cols 100 rows 30`) ran on that terminal.
/// Exit code is ctr's (`script -e`); output is the terminal's (CR LF line ends).
pub fn ctr_on_pty(env: &Env, setup: &str, args: &[&str]) -> Run {
    let mut cmd = format!("timeout -s KILL 30 ctr --address {} -n {}", shell_quote(&env.address), shell_quote(&env.namespace));
    for a in args {
        cmd.push(' ');
        cmd.push_str(&shell_quote(a));
    }
    let full = if setup.is_empty() { cmd } else { format!("{setup}; {cmd}") };
    bounded(40, "script").args(["-qec", &full, "/dev/null"]).output().expect("run script").into()
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
