//! micrun: the operator CLI beside the shim.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use micrun::backend::delegate::profile::{search_path, Profile};
use micrun::backend::mica::protocol::Pedestal;
use micrun::config::{Config, ConfigSource};
use micrun::shim::{decide, RuntimeOptions};

// Compiled into this binary only: kept out of the library, even unused code
// there changes how the shim is optimised.
#[path = "../image/mod.rs"]
mod image;

#[derive(Parser)]
#[command(name = "micrun", version, about = "Operator tools for the io.containerd.mica.v2 runtime")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show where a container would run, and why (reads BUNDLE/config.json).
    Explain {
        bundle: PathBuf,
        /// Config file as containerd would pass it (`--runtime-config-path`).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Check this machine: config, delegates on PATH, cgroup layout.
    Doctor {
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Simulate micad (MICA's daemon) for development and tests; host-native ELF
    /// firmware runs as the RTOS. Exit codes of halted firmware go to
    /// <socket-dir>/<name>.exit.
    Sim {
        /// Wiped (micad sockets only) and recreated at start-up.
        #[arg(long, default_value = "/run/mica")]
        socket_dir: PathBuf,
        /// Where the ttyRPMSG_<name>_0 console links appear.
        #[arg(long, default_value = "/dev")]
        tty_dir: PathBuf,
        /// The pedestal of the simulated machine: xen, baremetal, jailhouse or hetero.
        #[arg(long, default_value = "baremetal", value_parser = micrun::sim::parse_pedestal)]
        pedestal: Pedestal,
        #[arg(long, default_value = "/var/run/micad.pid")]
        pid_file: PathBuf,
        /// Test fault: hold every <request> (create, start, stop, rm, status, set,
        /// gdb) this many ms before handling it, e.g. `--delay start=3000`. Repeatable.
        #[arg(long, value_name = "REQUEST=MS", value_parser = micrun::sim::faults::parse_delay)]
        delay: Vec<(String, std::time::Duration)>,
        /// Test fault: handle the next <request>, send part of its reply and keep
        /// the connection open without finishing it (once per request kind). Repeatable.
        #[arg(long, value_name = "REQUEST", value_parser = micrun::sim::faults::parse_kind)]
        hang: Vec<String>,
    },
    /// Build RTOS images.
    #[command(subcommand)]
    Image(image::cli::ImageCommand),
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Explain { bundle, config } => {
            let opts = RuntimeOptions { config: config.map(ConfigSource::File), ..Default::default() };
            match decide(&bundle, &opts) {
                Ok((_, cfg, d)) => {
                    println!("{d}");
                    if cfg.labels_as_annotations {
                        println!("note: the shim also reads the container's containerd labels under org.openeuler.micran./micrun. (labels_as_annotations); a bundle alone does not show them");
                    } else {
                        println!("note: only the spec's annotations count; containerd labels never reach the shim (nerdctl 2.x `-l`/`--label` is not an annotation: use `--annotation`, or set labels_as_annotations = true)");
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("micrun explain: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Doctor { config } => doctor(config),
        Command::Sim { socket_dir, tty_dir, pedestal, pid_file, delay, hang } => {
            tracing_subscriber::fmt().with_writer(std::io::stderr).with_target(false).init();
            let faults = micrun::sim::faults::FaultOptions { delays: delay.into_iter().collect(), hangs: hang.into_iter().collect() };
            let opts = micrun::sim::Options { socket_dir, tty_dir, pedestal, pid_file: Some(pid_file), faults };
            match micrun::sim::run(opts) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("micrun sim: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Image(cmd) => cmd.run(),
    }
}

fn doctor(config: Option<PathBuf>) -> ExitCode {
    let cfg = match Config::resolve(config.map(ConfigSource::File).as_ref(), None) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("config: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("config: ok (state_root {}, log_level {})", cfg.state_root.display(), cfg.log_level);
    let path = search_path();
    let mut found = 0;
    for name in &cfg.delegate.order {
        match Profile::load(name, &cfg.delegate.profile_dir).and_then(|p| p.find_binary(&path)) {
            Ok(b) => {
                found += 1;
                println!("delegate {name}: {}", b.display());
            }
            Err(e) => println!("delegate {name}: {e}"),
        }
    }
    let unified = std::fs::read_to_string("/proc/self/mountinfo")
        .map(|m| m.lines().any(|l| l.contains(" /sys/fs/cgroup ") && l.contains(" - cgroup2 ")))
        .unwrap_or(false);
    println!("cgroups: {}", if unified { "v2 (unified)" } else { "v1 or hybrid" });
    if found == 0 {
        eprintln!("no delegate found on PATH ({path}): install crun, runc or youki");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
