//! containerd hands the shim protobuf `Any`s: runtime options at Create and
//! CRI's PodSandboxConfig at CreateSandbox. Their bytes come from whoever
//! configured containerd or called CRI; the decoders must refuse bad ones
//! with an error, never panic, and what they accept must be usable.
#![no_main]

use containerd_shim_protos::protobuf::well_known_types::any::Any;
use libfuzzer_sys::fuzz_target;
use micrun::config::{Config, ConfigSource};
use micrun::shim::{runtime_options, PodConfig};

/// The type URLs the decoders accept, as containerd sends them and bare,
/// and one each of what they must refuse.
const TYPE_URLS: [&str; 8] = [
    "runtimeoptions.v1.Options",
    "type.googleapis.com/runtimeoptions.v1.Options",
    "containerd.runc.v1.Options",
    "type.googleapis.com/containerd.runc.v1.Options",
    "runtime.v1.PodSandboxConfig",
    "type.googleapis.com/runtime.v1.PodSandboxConfig",
    "example.Other",
    "",
];

fuzz_target!(|data: &[u8]| {
    let (pick, value) = data.split_first().map_or((0, data), |(b, rest)| (*b, rest));
    let type_url = TYPE_URLS[pick as usize % TYPE_URLS.len()];
    let any = Any { type_url: type_url.into(), value: value.to_vec(), ..Default::default() };

    match runtime_options(Some(&any)) {
        Ok(o) => {
            if let Some(body) = &o.config_body {
                assert_eq!(o.config, Some(ConfigSource::Body));
                let _ = Config::parse(body, "from runtime option config_body");
            }
            if let Some(ConfigSource::File(p)) = &o.config {
                assert!(!p.as_os_str().is_empty());
            }
            assert!(o.binary_name.as_deref() != Some(""));
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }

    match PodConfig::decode(Some(&any)) {
        Ok(pod) => {
            if let Some(dns) = &pod.dns {
                let _ = dns.resolv_conf();
            }
            let _ = pod.shares_host_ipc();
            if let Ok(spec) = pod.holder_spec("k8s.io", "sandbox-1", "/var/run/netns/cni-1", -999) {
                assert_eq!(spec["annotations"]["io.kubernetes.cri.sandbox-id"], "sandbox-1");
            }
        }
        Err(e) => assert!(
            e.starts_with("CRI PodSandboxConfig: ") || e.starts_with("sandbox options of type "),
            "{e}"
        ),
    }
});
