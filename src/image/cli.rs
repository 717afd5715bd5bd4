//! The `micrun image` subcommands (clap), kept here so src/bin/micrun.rs only
//! names them.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use super::{build_to_file, host_arch, parse_annotation, BuildSpec, RtosOs, LABEL_OS};

#[derive(Subcommand)]
pub enum ImageCommand {
    /// Pack RTOS firmware into an OCI image archive for `ctr image import`.
    ///
    /// The firmware lands at /firmware.elf, pedestal files under /pedestal/.
    /// The output is deterministic: the same inputs give the same digest.
    Build {
        /// The firmware ELF (e.g. zephyr.elf).
        firmware: PathBuf,
        /// Full image reference, e.g. localhost/rtos/demo:1.
        #[arg(long)]
        tag: String,
        /// Archive to write.
        #[arg(long, short)]
        output: PathBuf,
        /// A file for the pedestal (Xen kernel image, jailhouse cell, ...); repeatable.
        #[arg(long = "pedestal-file", value_name = "PATH")]
        pedestal_files: Vec<PathBuf>,
        /// The RTOS: zephyr or uniproton.
        #[arg(long, default_value = "zephyr")]
        os: String,
        /// Extra label and manifest annotation; repeatable.
        #[arg(long = "annotation", value_name = "KEY=VALUE")]
        annotations: Vec<String>,
        /// OCI architecture of the Linux host that runs micad (default: this host's).
        #[arg(long)]
        arch: Option<String>,
    },
}

impl ImageCommand {
    pub fn run(self) -> ExitCode {
        match self {
            ImageCommand::Build { firmware, tag, output, pedestal_files, os, annotations, arch } => {
                let spec = (|| {
                    Ok::<_, super::ImageError>(BuildSpec {
                        os: os.parse::<RtosOs>()?,
                        annotations: annotations.iter().map(|a| parse_annotation(a)).collect::<Result<_, _>>()?,
                        pedestal_files,
                        arch: arch.unwrap_or_else(|| host_arch().to_string()),
                        ..BuildSpec::new(firmware, tag)
                    })
                })();
                match spec.and_then(|s| build_to_file(&s, &output).map(|a| (s, a))) {
                    Ok((spec, a)) => {
                        println!("{} -> {} ({} bytes)", spec.reference, output.display(), a.bytes.len());
                        println!("manifest sha256:{}", a.manifest_digest);
                        println!("config   sha256:{}", a.config_digest);
                        println!("layer    sha256:{}", a.layer_digest);
                        println!("firmware sha256:{}", a.firmware_sha256);
                        println!(
                            "import: ctr image import {}\nrun:    ctr run --runtime io.containerd.mica.v2 --annotation {}={} {} ID",
                            output.display(),
                            LABEL_OS,
                            spec.os,
                            spec.reference
                        );
                        ExitCode::SUCCESS
                    }
                    Err(e) => {
                        eprintln!("micrun image build: {e}");
                        ExitCode::FAILURE
                    }
                }
            }
        }
    }
}
