//! The part of CRI's `runtime.v1.PodSandboxConfig` the holder needs, read from
//! the `options` of containerd 2.x's CreateSandbox. Only these fields are
//! decoded (field numbers from cri-api's api.proto); everything else is
//! skipped, so no CRI bindings are compiled in.

use std::collections::BTreeMap;

use containerd_shim::protos::protobuf::well_known_types::any::Any;
use serde_json::json;

use crate::wire::fields;

/// CRI's NamespaceMode: where a pod's namespace of one kind lives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Mode {
    #[default]
    Pod,
    Container,
    Node,
    Target,
}

impl Mode {
    fn from(v: u64) -> Result<Mode, String> {
        Ok(match v {
            0 => Mode::Pod,
            1 => Mode::Container,
            2 => Mode::Node,
            3 => Mode::Target,
            other => return Err(format!("unknown namespace mode {other}")),
        })
    }
}

#[derive(Debug, Default, PartialEq)]
pub struct Dns {
    pub servers: Vec<String>,
    pub searches: Vec<String>,
    pub options: Vec<String>,
}

#[derive(Debug, Default, PartialEq)]
pub struct PodConfig {
    pub hostname: String,
    pub dns: Option<Dns>,
    pub cgroup_parent: String,
    pub sysctls: BTreeMap<String, String>,
    pub network: Mode,
    pub pid: Mode,
    pub ipc: Mode,
    /// `userns_options.mode`: Pod asks for a user namespace of the pod's own.
    pub userns: Option<Mode>,
}

/// The CRI spells the default oom score of a pod's sandbox process this way.
const SANDBOX_OOM_SCORE_ADJ: i32 = -998;
/// CRI's annotations naming a sandbox; the router routes them to the holder.
const CONTAINER_TYPE: &str = "io.kubernetes.cri.container-type";
const SANDBOX_ID: &str = "io.kubernetes.cri.sandbox-id";

/// One `map<string, string>` entry.
fn entry(bytes: &[u8]) -> Result<(String, String), String> {
    let (mut k, mut v) = (String::new(), String::new());
    for (f, val) in fields(bytes)? {
        match f {
            1 => k = val.text()?,
            2 => v = val.text()?,
            _ => {}
        }
    }
    Ok((k, v))
}

impl PodConfig {
    /// Decodes CreateSandbox's options; none at all is an empty config.
    pub fn decode(options: Option<&Any>) -> Result<PodConfig, String> {
        let Some(any) = options.filter(|a| !a.type_url.is_empty()) else { return Ok(PodConfig::default()) };
        if !any.type_url.ends_with("PodSandboxConfig") {
            return Err(format!("sandbox options of type {:?} are not a CRI PodSandboxConfig", any.type_url));
        }
        Self::parse(&any.value).map_err(|e| format!("CRI PodSandboxConfig: {e}"))
    }

    fn parse(bytes: &[u8]) -> Result<PodConfig, String> {
        let mut pod = PodConfig::default();
        for (f, v) in fields(bytes)? {
            match f {
                2 => pod.hostname = v.text()?,
                4 => pod.dns = Some(Dns::parse(v.message()?)?),
                8 => pod.linux(v.message()?)?,
                _ => {}
            }
        }
        Ok(pod)
    }

    /// LinuxPodSandboxConfig { cgroup_parent = 1; security_context = 2; sysctls = 3; }
    fn linux(&mut self, bytes: &[u8]) -> Result<(), String> {
        for (f, v) in fields(bytes)? {
            match f {
                1 => self.cgroup_parent = v.text()?,
                2 => {
                    // LinuxSandboxSecurityContext { namespace_options = 1; }
                    for (g, w) in fields(v.message()?)? {
                        if g == 1 {
                            self.namespaces(w.message()?)?;
                        }
                    }
                }
                3 => {
                    let (k, val) = entry(v.message()?)?;
                    self.sysctls.insert(k, val);
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// NamespaceOption { network = 1; pid = 2; ipc = 3; target_id = 4; userns_options = 5; }
    fn namespaces(&mut self, bytes: &[u8]) -> Result<(), String> {
        for (f, v) in fields(bytes)? {
            match f {
                1 => self.network = Mode::from(v.number()?)?,
                2 => self.pid = Mode::from(v.number()?)?,
                3 => self.ipc = Mode::from(v.number()?)?,
                5 => {
                    let mut mode = Mode::Pod;
                    for (g, w) in fields(v.message()?)? {
                        if g == 1 {
                            mode = Mode::from(w.number()?)?;
                        }
                    }
                    self.userns = Some(mode);
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The OCI spec of the holder, made as CRI makes the pause container's:
    /// the pod's network namespace by path, new IPC, UTS and pid namespaces
    /// unless the pod shares the node's, the hostname and sysctls, the cgroup
    /// below the pod's parent (containerd's default `/<namespace>/<id>` without
    /// one). A parent ending in `.slice` asks for systemd's slice:prefix:name
    /// form. `oom_floor`: the shim's own oom_score_adj, below which the holder
    /// is not put (CRI's restrict_oom_score_adj; lowering it needs privileges
    /// that not every host grants).
    pub fn holder_spec(&self, namespace: &str, id: &str, netns: &str, oom_floor: i32) -> Result<serde_json::Value, String> {
        if self.userns == Some(Mode::Pod) {
            return Err("the pod asks for a user namespace, which micrun's sandbox holder does not make".into());
        }
        let host_network = self.network == Mode::Node;
        let mut namespaces = Vec::new();
        if !host_network {
            if netns.is_empty() {
                return Err("CreateSandbox names no network namespace for a pod without host networking".into());
            }
            namespaces.push(json!({"type": "network", "path": netns}));
            namespaces.push(json!({"type": "uts"}));
        }
        if self.ipc != Mode::Node {
            namespaces.push(json!({"type": "ipc"}));
        }
        if self.pid != Mode::Node {
            namespaces.push(json!({"type": "pid"}));
        }
        let cgroups_path = match self.cgroup_parent.as_str() {
            "" => format!("/{namespace}/{id}"),
            p if p.ends_with(".slice") => format!("{p}:cri-containerd:{id}"),
            p => format!("{}/{id}", p.trim_end_matches('/')),
        };
        let linux = json!({"namespaces": namespaces, "sysctl": self.sysctls, "cgroupsPath": cgroups_path});
        let mut spec = json!({
            "ociVersion": "1.1.0",
            "process": {"oomScoreAdj": SANDBOX_OOM_SCORE_ADJ.max(oom_floor)},
            "linux": linux,
            "annotations": {CONTAINER_TYPE: "sandbox", SANDBOX_ID: id},
        });
        if !host_network && !self.hostname.is_empty() {
            spec["hostname"] = json!(self.hostname);
        }
        Ok(spec)
    }

    /// A pod on the node's IPC namespace uses the node's /dev/shm, not one of its own.
    pub fn shares_host_ipc(&self) -> bool {
        self.ipc == Mode::Node
    }
}

impl Dns {
    /// DNSConfig { servers = 1; searches = 2; options = 3; }
    fn parse(bytes: &[u8]) -> Result<Dns, String> {
        let mut dns = Dns::default();
        for (f, v) in fields(bytes)? {
            match f {
                1 => dns.servers.push(v.text()?),
                2 => dns.searches.push(v.text()?),
                3 => dns.options.push(v.text()?),
                _ => {}
            }
        }
        Ok(dns)
    }

    /// resolv.conf as CRI writes it for a pod's DNS config.
    pub fn resolv_conf(&self) -> String {
        let mut out = String::new();
        if !self.searches.is_empty() {
            out += &format!("search {}\n", self.searches.join(" "));
        }
        for s in &self.servers {
            out += &format!("nameserver {s}\n");
        }
        if !self.options.is_empty() {
            out += &format!("options {}\n", self.options.join(" "));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(f: u32, wire: u32) -> Vec<u8> {
        varint(((f << 3) | wire) as u64)
    }
    fn varint(mut n: u64) -> Vec<u8> {
        let mut v = Vec::new();
        loop {
            let b = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                v.push(b);
                return v;
            }
            v.push(b | 0x80);
        }
    }
    fn bytes(f: u32, body: &[u8]) -> Vec<u8> {
        [tag(f, 2), varint(body.len() as u64), body.to_vec()].concat()
    }
    fn num(f: u32, n: u64) -> Vec<u8> {
        [tag(f, 0), varint(n)].concat()
    }

    /// A config as CRI would encode it: hostname, DNS, a labels map (skipped),
    /// linux { cgroup_parent, security_context { namespace_options { pid: POD, ipc: NODE } }, sysctls }.
    fn sample() -> Vec<u8> {
        let dns = [bytes(1, b"10.0.0.10"), bytes(2, b"svc.local"), bytes(3, b"ndots:5")].concat();
        let ns = [num(1, 0), num(2, 0), num(3, 2)].concat();
        let sec = bytes(1, &ns);
        let sysctl = [bytes(1, b"kernel.shm_rmid_forced"), bytes(2, b"1")].concat();
        let linux = [bytes(1, b"/kubepods/pod1"), bytes(2, &sec), bytes(3, &sysctl)].concat();
        [bytes(1, &bytes(1, b"name")), bytes(2, b"web-1"), bytes(4, &dns), bytes(6, &[bytes(1, b"a"), bytes(2, b"b")].concat()), bytes(8, &linux)]
            .concat()
    }

    #[test]
    fn decodes_the_fields_the_holder_uses() {
        let any = Any { type_url: "runtime.v1.PodSandboxConfig".into(), value: sample(), ..Default::default() };
        let pod = PodConfig::decode(Some(&any)).unwrap();
        assert_eq!(pod.hostname, "web-1");
        assert_eq!(pod.cgroup_parent, "/kubepods/pod1");
        assert_eq!(pod.sysctls.get("kernel.shm_rmid_forced").map(String::as_str), Some("1"));
        assert_eq!((pod.network, pod.pid, pod.ipc), (Mode::Pod, Mode::Pod, Mode::Node));
        assert_eq!(pod.dns.as_ref().unwrap().resolv_conf(), "search svc.local\nnameserver 10.0.0.10\noptions ndots:5\n");
        let spec = pod.holder_spec("k8s.io", "sb1", "/var/run/netns/cni-1", -999).unwrap();
        assert_eq!(spec["process"]["oomScoreAdj"], SANDBOX_OOM_SCORE_ADJ);
        let kinds: Vec<&str> = spec["linux"]["namespaces"].as_array().unwrap().iter().map(|n| n["type"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["network", "uts", "pid"], "host IPC: no ipc namespace of the pod's own");
        assert_eq!(spec["linux"]["namespaces"][0]["path"], "/var/run/netns/cni-1");
        assert_eq!(spec["linux"]["cgroupsPath"], "/kubepods/pod1/sb1");
        assert_eq!(spec["hostname"], "web-1");
        assert_eq!(spec["annotations"][CONTAINER_TYPE], "sandbox");
        assert_eq!(pod.holder_spec("k8s.io", "sb1", "", 0).unwrap_err(), "CreateSandbox names no network namespace for a pod without host networking");
    }

    #[test]
    fn refusals() {
        let wrong = Any { type_url: "example.Other".into(), value: vec![], ..Default::default() };
        assert!(PodConfig::decode(Some(&wrong)).unwrap_err().contains("example.Other"));
        let torn = Any { type_url: "runtime.v1.PodSandboxConfig".into(), value: vec![0x12, 0x09, b'x'], ..Default::default() };
        assert!(PodConfig::decode(Some(&torn)).unwrap_err().starts_with("CRI PodSandboxConfig"));
        let userns = PodConfig { userns: Some(Mode::Pod), ..Default::default() };
        assert!(userns.holder_spec("k8s.io", "x", "/n", 0).unwrap_err().contains("user namespace"));
        let host = PodConfig { network: Mode::Node, hostname: "h".into(), cgroup_parent: "kubepods.slice".into(), ..Default::default() };
        let spec = host.holder_spec("k8s.io", "x", "", 0).unwrap();
        assert!(spec.get("hostname").is_none(), "a host-network pod keeps the node's hostname");
        assert_eq!(spec["linux"]["cgroupsPath"], "kubepods.slice:cri-containerd:x");
        assert_eq!(spec["process"]["oomScoreAdj"], 0, "never below the shim's own score");
        let plain = PodConfig { network: Mode::Node, ..Default::default() };
        assert_eq!(plain.holder_spec("k8s.io", "x", "", 0).unwrap()["linux"]["cgroupsPath"], "/k8s.io/x");
        assert_eq!(PodConfig::decode(None).unwrap(), PodConfig::default());
    }
}
