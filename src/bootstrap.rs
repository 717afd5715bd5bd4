//! The `start` action's standard input, in both of containerd's forms.
//!
//! containerd up to 2.2 writes the runtime options to `shim start`'s stdin as a
//! bare protobuf `Any` (or nothing). containerd 2.3 writes a
//! `containerd.runtime.bootstrap.v1.BootstrapParams` instead (instance id,
//! namespace, its version and addresses, the runtime options as the `Any` of
//! an `Extension`). The containerd-shim crate's `spawn` reads stdin as the old
//! `Any` only and fails on the new message ("UnexpectedWireType"), so no
//! container started under containerd 2.3. [`spawn`] does the crate's work
//! with a reader that knows both forms.

use std::io::Read;
use std::process::Stdio;

use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::protos::protobuf::Message;
use containerd_shim::StartOpts;

use crate::wire::{fields, Value};

const RUNC_OPTIONS_URL: &str = "containerd.runc.v1.Options";

/// BootstrapParams field numbers (containerd api runtime/bootstrap/v1).
const EXTENSIONS: u32 = 8;
/// Extension { google.protobuf.Any value = 1; }
const EXTENSION_VALUE: u32 = 1;

/// The runtime options carried by `start`'s stdin, if any.
///
/// A bare `Any` has fields 1 and 2 only; BootstrapParams always carries
/// fields above 2 (containerd's version and addresses), which tells the forms
/// apart: field 1 and 2 of the new message (instance id, namespace) would
/// otherwise read as a type URL and a value.
pub fn start_options(stdin: &[u8]) -> Result<Option<Any>, String> {
    if stdin.is_empty() {
        return Ok(None);
    }
    let top = fields(stdin).map_err(|e| format!("start stdin is not a protobuf message: {e}"))?;
    if top.iter().all(|(n, _)| *n <= 2) {
        let any = Any::parse_from_bytes(stdin).map_err(|e| format!("runtime options on stdin: {e}"))?;
        return Ok((!any.type_url.is_empty()).then_some(any));
    }
    for (n, bytes) in top {
        if n != EXTENSIONS {
            continue;
        }
        let Value::Bytes(bytes) = bytes else { return Err("bootstrap extension is not a message".into()) };
        for (m, value) in fields(&bytes).map_err(|e| format!("bootstrap extension: {e}"))? {
            if m == EXTENSION_VALUE {
                let Value::Bytes(value) = value else { return Err("bootstrap extension value is not a message".into()) };
                let any = Any::parse_from_bytes(&value).map_err(|e| format!("bootstrap extension value: {e}"))?;
                if !any.type_url.is_empty() {
                    return Ok(Some(any));
                }
            }
        }
    }
    Ok(None)
}

/// The shim cgroup asked for by runc-style options (`ShimCgroup`), if any.
pub fn shim_cgroup(options: Option<&Any>) -> Option<String> {
    let any = options?;
    if any.type_url.rsplit('/').next() != Some(RUNC_OPTIONS_URL) {
        return None;
    }
    let o = containerd_shim::api::Options::parse_from_bytes(&any.value).ok()?;
    (!o.shim_cgroup.is_empty()).then(|| o.shim_cgroup.clone())
}


/// containerd_shim::spawn, reading `start`'s stdin in either form: starts the
/// long-lived shim process serving the group's socket, puts it in the shim
/// cgroup the options ask for, adjusts its OOM score and returns the address.
pub async fn spawn(opts: StartOpts, grouping: &str) -> containerd_shim::Result<String> {
    let other = |e: String| containerd_shim::Error::Other(e);
    let mut stdin = Vec::new();
    std::io::stdin().read_to_end(&mut stdin).map_err(|e| other(format!("read stdin: {e}")))?;
    let options = start_options(&stdin).map_err(other)?;

    let exe = std::env::current_exe().map_err(|e| other(format!("current exe: {e}")))?;
    let cwd = std::env::current_dir().map_err(|e| other(format!("current dir: {e}")))?;
    let address = containerd_shim::socket_address(&opts.address, &opts.namespace, grouping);
    let mut command = tokio::process::Command::new(exe);
    command
        .current_dir(cwd)
        .stdout(Stdio::piped())
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .args(["-namespace", &opts.namespace, "-id", &opts.id, "-address", &opts.address, "-socket", &address]);
    if opts.debug {
        command.arg("-debug");
    }
    let mut child = command.spawn().map_err(|e| other(format!("spawn shim: {e}")))?;
    let pid = child.id().unwrap_or_default();
    if pid != 0 {
        if let Some(cg) = shim_cgroup(options.as_ref()) {
            containerd_shim::cgroup::add_task_to_cgroup(&cg, pid)?;
        }
        containerd_shim::cgroup::adjust_oom_score(pid)?;
    }
    // The child writes nothing but closes stdout once it serves: wait for that.
    if let Some(mut out) = child.stdout.take() {
        let _ = tokio::io::copy(&mut out, &mut tokio::io::stderr()).await;
    }
    Ok(address)
}

#[cfg(test)]
mod tests {
    use super::*;
    use containerd_shim::protos::protobuf::CodedOutputStream;

    fn message(fields: &[(u32, &[u8])]) -> Vec<u8> {
        let mut buf = Vec::new();
        {
            let mut out = CodedOutputStream::vec(&mut buf);
            for (n, v) in fields {
                out.write_bytes(*n, v).unwrap();
            }
            out.flush().unwrap();
        }
        buf
    }

    fn runc_options(shim_cgroup: &str) -> Any {
        let o = containerd_shim::api::Options { shim_cgroup: shim_cgroup.into(), ..Default::default() };
        Any { type_url: RUNC_OPTIONS_URL.into(), value: o.write_to_bytes().unwrap(), ..Default::default() }
    }

    #[test]
    fn empty_stdin_has_no_options() {
        assert_eq!(start_options(b"").unwrap(), None);
    }

    #[test]
    fn legacy_any_is_read_as_is() {
        let any = runc_options("/shims");
        let got = start_options(&any.write_to_bytes().unwrap()).unwrap().unwrap();
        assert_eq!(got, any);
        assert_eq!(shim_cgroup(Some(&got)).as_deref(), Some("/shims"));
    }

    /// What containerd 2.3 writes: BootstrapParams with the options as an extension.
    #[test]
    fn bootstrap_params_give_their_extension() {
        let any = runc_options("/pods/shim");
        let ext = message(&[(1, &any.write_to_bytes().unwrap())]);
        let params = message(&[
            (1, b"TestContainerStart"),
            (2, b"testing"),
            (4, b"v2.3.7"),
            (5, b"/run/containerd/containerd.sock.ttrpc"),
            (6, b"/run/containerd/containerd.sock"),
            (7, b"/usr/bin/containerd"),
            (8, &ext),
        ]);
        // the crate's reader fails on exactly this
        assert!(Any::parse_from_bytes(&params)
            .and_then(|a| containerd_shim::api::Options::parse_from_bytes(&a.value))
            .is_err());
        let got = start_options(&params).unwrap().unwrap();
        assert_eq!(got, any);
        assert_eq!(shim_cgroup(Some(&got)).as_deref(), Some("/pods/shim"));
    }

    #[test]
    fn bootstrap_params_without_options() {
        let params = message(&[(1, b"c1"), (2, b"default"), (4, b"v2.3.7"), (5, b"/a.ttrpc"), (6, b"/a")]);
        assert_eq!(start_options(&params).unwrap(), None);
    }

    #[test]
    fn micrun_options_carry_no_shim_cgroup() {
        let any = Any { type_url: "runtimeoptions.v1.Options".into(), value: message(&[(2, b"/etc/micrun/x.toml")]), ..Default::default() };
        assert_eq!(shim_cgroup(Some(&any)), None);
    }

    #[test]
    fn garbage_is_refused() {
        assert!(start_options(&[0x0f, 0x01]).is_err());
    }
}
