//! What the holder process does, computed by the shim from the sandbox's OCI
//! spec and handed to the process as JSON: the namespaces to join and to make,
//! the hostname, the namespaced sysctls, the oom score and the cgroup to enter.
//! Checked here, where an error can still reach containerd in words.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::spec::BundleSpec;

#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq)]
pub struct Plan {
    /// Namespaces CRI made for the pod (the network one), joined by path: (kind, path).
    pub join: Vec<(Kind, PathBuf)>,
    /// Namespaces the holder makes for the pod.
    pub new: Vec<Kind>,
    pub hostname: Option<String>,
    /// key (dotted) → value.
    pub sysctl: BTreeMap<String, String>,
    pub oom_score_adj: Option<i32>,
    /// `cgroup.procs` files the holder writes its pid to.
    pub cgroup_procs: Vec<PathBuf>,
}

/// The namespaces a holder keeps. The mount, cgroup and time namespaces of a
/// sandbox spec are the pause process's own business: nobody joins them.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Network,
    Ipc,
    Uts,
    Pid,
}

impl Kind {
    fn parse(oci: &str) -> Option<Kind> {
        Some(match oci {
            "network" => Kind::Network,
            "ipc" => Kind::Ipc,
            "uts" => Kind::Uts,
            "pid" => Kind::Pid,
            _ => return None,
        })
    }

    pub fn clone_flag(self) -> nix::sched::CloneFlags {
        use nix::sched::CloneFlags as F;
        match self {
            Kind::Network => F::CLONE_NEWNET,
            Kind::Ipc => F::CLONE_NEWIPC,
            Kind::Uts => F::CLONE_NEWUTS,
            Kind::Pid => F::CLONE_NEWPID,
        }
    }
}

impl Plan {
    /// The plan for a sandbox spec; `cgroup_procs` is filled in by the caller
    /// once it made the cgroup.
    pub fn from_spec(spec: &BundleSpec) -> Result<Plan, String> {
        let mut plan = Plan { hostname: spec.hostname.clone().filter(|h| !h.is_empty()), ..Plan::default() };
        plan.oom_score_adj = spec.process.as_ref().and_then(|p| p.oom_score_adj);
        let linux = spec.linux.as_ref();
        for ns in linux.map(|l| l.namespaces.as_slice()).unwrap_or_default() {
            if ns.kind == "user" {
                return Err("the pod asks for a user namespace, which micrun's sandbox holder does not make; \
                            run such pods with [sandbox] mode = \"delegate\" in the micrun config"
                    .into());
            }
            let Some(kind) = Kind::parse(&ns.kind) else { continue };
            if ns.path.is_empty() {
                plan.new.push(kind);
            } else {
                plan.join.push((kind, PathBuf::from(&ns.path)));
            }
        }
        let own = |k: Kind| plan.new.contains(&k) || plan.join.iter().any(|(j, _)| *j == k);
        if plan.hostname.is_some() && !own(Kind::Uts) {
            return Err("the sandbox spec sets a hostname but shares the host's UTS namespace".into());
        }
        for (key, value) in linux.map(|l| &l.sysctl).into_iter().flatten() {
            let needs = sysctl_namespace(key)?;
            if !own(needs) {
                return Err(format!("sysctl {key} is namespaced by the {needs:?} namespace, which this pod shares with the host"));
            }
            plan.sysctl.insert(key.clone(), value.clone());
        }
        Ok(plan)
    }

    pub fn new_pid_namespace(&self) -> bool {
        self.new.contains(&Kind::Pid)
    }
}

/// The namespace that scopes a sysctl, for the keys a pod may set (the
/// Kubernetes "safe" and "unsafe" namespaced sets); anything else would change
/// the host and is refused.
fn sysctl_namespace(key: &str) -> Result<Kind, String> {
    let well_formed = !key.is_empty()
        && key.split(['.', '/']).all(|p| !p.is_empty() && p != ".." && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'));
    if !well_formed {
        return Err(format!("sysctl name {key:?} is not a sysctl name"));
    }
    let k = key.replace('/', ".");
    if k.starts_with("net.") {
        return Ok(Kind::Network);
    }
    if k.starts_with("kernel.shm") || k.starts_with("kernel.msg") || k == "kernel.sem" || k.starts_with("fs.mqueue.") {
        return Ok(Kind::Ipc);
    }
    if k == "kernel.hostname" || k == "kernel.domainname" {
        return Ok(Kind::Uts);
    }
    Err(format!("sysctl {key} is not namespaced: a pod may not set it (it would change the host)"))
}

/// `/proc/sys/<key with dots as slashes>`.
pub fn sysctl_file(key: &str) -> PathBuf {
    PathBuf::from("/proc/sys").join(key.replace('.', "/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: &str) -> BundleSpec {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn cri_sandbox_spec() {
        let s = spec(
            r#"{"hostname":"web","process":{"oomScoreAdj":-998},"linux":{"namespaces":[
                {"type":"pid"},{"type":"ipc"},{"type":"uts"},{"type":"mount"},
                {"type":"network","path":"/var/run/netns/cni-1"}],
                "sysctl":{"net.ipv4.ip_unprivileged_port_start":"0","kernel.shmmax":"1000"}}}"#,
        );
        let p = Plan::from_spec(&s).unwrap();
        assert_eq!(p.join, [(Kind::Network, PathBuf::from("/var/run/netns/cni-1"))]);
        assert_eq!(p.new, [Kind::Pid, Kind::Ipc, Kind::Uts]);
        assert!(p.new_pid_namespace());
        assert_eq!(p.hostname.as_deref(), Some("web"));
        assert_eq!(p.oom_score_adj, Some(-998));
        assert_eq!(p.sysctl.len(), 2);
        assert_eq!(sysctl_file("net.ipv4.ip_forward"), PathBuf::from("/proc/sys/net/ipv4/ip_forward"));
    }

    #[test]
    fn refusals_say_why() {
        let e = Plan::from_spec(&spec(r#"{"linux":{"namespaces":[{"type":"user"}]}}"#)).unwrap_err();
        assert!(e.contains("user namespace") && e.contains("mode = \"delegate\""), "{e}");
        // host network: a net.* sysctl would change the host
        let e = Plan::from_spec(&spec(r#"{"linux":{"namespaces":[{"type":"ipc"}],"sysctl":{"net.core.somaxconn":"1"}}}"#)).unwrap_err();
        assert!(e.contains("net.core.somaxconn") && e.contains("Network"), "{e}");
        for bad in ["kernel.panic", "vm.swappiness", "net/../../x", "net..x", ""] {
            let json = format!(r#"{{"linux":{{"namespaces":[{{"type":"network"}},{{"type":"ipc"}}],"sysctl":{{"{bad}":"1"}}}}}}"#);
            assert!(Plan::from_spec(&spec(&json)).is_err(), "{bad} accepted");
        }
        let e = Plan::from_spec(&spec(r#"{"hostname":"h"}"#)).unwrap_err();
        assert!(e.contains("hostname"), "{e}");
    }

    #[test]
    fn host_namespaces_make_nothing() {
        let p = Plan::from_spec(&spec(r#"{"linux":{"namespaces":[{"type":"mount"}]}}"#)).unwrap();
        assert!(p.new.is_empty() && p.join.is_empty() && !p.new_pid_namespace());
    }
}
