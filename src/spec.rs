//! The parts of a bundle's OCI runtime spec that micrun reads. Everything else is
//! the runtime's business and passes through untouched, so only these are parsed
//! (a full typed spec costs the shim a few hundred KB of resident code).

use std::collections::HashMap;
use std::path::Path;

use serde::de::IgnoredAny;
use serde::Deserialize;

#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct BundleSpec {
    pub oci_version: String,
    pub annotations: HashMap<String, String>,
    /// Run by the shim only for containers with no OCI runtime of their own (RTOS).
    pub hooks: Option<crate::hooks::Hooks>,
    pub root: Option<Root>,
    pub hostname: Option<String>,
    pub process: Option<Process>,
    pub linux: Option<Linux>,
}

#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct Process {
    pub oom_score_adj: Option<i32>,
}

#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct Root {
    /// Relative paths are relative to the bundle.
    pub path: String,
}

#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct Linux {
    pub cgroups_path: Option<String>,
    pub resources: Option<Resources>,
    pub namespaces: Vec<Namespace>,
    pub sysctl: HashMap<String, String>,
}

#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct Namespace {
    #[serde(rename = "type")]
    pub kind: String,
    pub path: String,
}

/// The OCI `linux.resources` fields the mica backend maps to micad (also the body
/// of an Update request).
#[derive(Debug, Default, Clone, Deserialize, PartialEq)]
#[serde(default)]
pub struct Resources {
    pub cpu: Option<CpuResources>,
    pub memory: Option<MemoryResources>,
}

#[derive(Debug, Default, Clone, Deserialize, PartialEq)]
#[serde(default)]
pub struct CpuResources {
    pub shares: Option<u64>,
    pub quota: Option<i64>,
    pub period: Option<u64>,
    pub cpus: Option<String>,
}

#[derive(Debug, Default, Clone, Deserialize, PartialEq)]
#[serde(default)]
pub struct MemoryResources {
    pub limit: Option<i64>,
    pub reservation: Option<i64>,
}

impl BundleSpec {
    pub fn load(bundle: &Path) -> Result<BundleSpec, String> {
        let path = bundle.join("config.json");
        let bytes = std::fs::read(&path).map_err(|e| format!("read {}: {e}", path.display()))?;
        serde_json::from_slice(&bytes).map_err(|e| format!("parse {}: {e}", path.display()))
    }

    pub fn cgroups_path(&self) -> Option<&str> {
        self.linux.as_ref()?.cgroups_path.as_deref()
    }

    pub fn resources(&self) -> Option<&Resources> {
        self.linux.as_ref()?.resources.as_ref()
    }

    /// Whether the container's processes outlive its init: without a pid
    /// namespace of its own (host pids, or one joined by path) nothing kills
    /// them when init exits. containerd's runc shim then kills every process
    /// left in the container (runc.ShouldKillAllOnExit); so do we.
    pub fn kill_all_on_exit(&self) -> bool {
        let new_pid_ns = self
            .linux
            .as_ref()
            .is_some_and(|l| l.namespaces.iter().any(|n| n.kind == "pid" && n.path.is_empty()));
        !new_pid_ns
    }

    /// The container's root filesystem: `root.path` (relative to the bundle), else `<bundle>/rootfs`.
    pub fn rootfs(&self, bundle: &Path) -> std::path::PathBuf {
        match self.root.as_ref().filter(|r| !r.path.is_empty()) {
            Some(r) => bundle.join(&r.path),
            None => bundle.join("rootfs"),
        }
    }
}

/// Checks that a body we pass through to the runtime (an exec process, update
/// resources) is a JSON object, so a malformed request fails with our words.
pub fn check_json_object(bytes: &[u8], what: &str) -> Result<(), String> {
    serde_json::from_slice::<HashMap<String, IgnoredAny>>(bytes)
        .map(drop)
        .map_err(|e| format!("{what} is not a JSON object: {e}"))
}

/// An exec's process spec with `terminal` set as the exec request says. The
/// request's flag decides whether containerd made a terminal's stdio; the spec
/// is often the container's own process, copied (containerd's client suite
/// asks for a terminal over a spec saying `false`). containerd's runc shim
/// overrides the spec's flag with the request's; crun with `false` in the
/// spec sends no console at all. Bytes already agreeing come back unchanged.
pub fn exec_process_terminal(process: &[u8], terminal: bool) -> Result<Vec<u8>, String> {
    let mut v: serde_json::Value =
        serde_json::from_slice(process).map_err(|e| format!("exec process spec: {e}"))?;
    let obj = v.as_object_mut().ok_or("exec process spec is not a JSON object")?;
    if obj.get("terminal").and_then(|t| t.as_bool()).unwrap_or(false) == terminal {
        return Ok(process.to_vec());
    }
    obj.insert("terminal".into(), serde_json::Value::Bool(terminal));
    serde_json::to_vec(&v).map_err(|e| format!("exec process spec: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_only_what_it_needs() {
        let s: BundleSpec = serde_json::from_str(
            r#"{"ociVersion":"1.0.2","process":{"args":["sh"]},"annotations":{"a":"b"},"linux":{"cgroupsPath":"/ns/id","namespaces":[]}}"#,
        )
        .unwrap();
        assert_eq!(s.annotations["a"], "b");
        assert_eq!(s.cgroups_path(), Some("/ns/id"));
        assert_eq!(serde_json::from_str::<BundleSpec>("{}").unwrap(), BundleSpec::default());
    }

    #[test]
    fn root_and_resources() {
        let s: BundleSpec = serde_json::from_str(
            r#"{"root":{"path":"rfs"},"linux":{"resources":{"cpu":{"cpus":"1-2","quota":50000,"period":100000,"shares":1024},"memory":{"limit":67108864}}}}"#,
        )
        .unwrap();
        assert_eq!(s.rootfs(Path::new("/b")), Path::new("/b/rfs"));
        let r = s.resources().unwrap();
        assert_eq!(r.cpu.as_ref().unwrap().cpus.as_deref(), Some("1-2"));
        assert_eq!(r.memory.as_ref().unwrap().limit, Some(64 << 20));
        assert_eq!(BundleSpec::default().rootfs(Path::new("/b")), Path::new("/b/rootfs"));
        let abs: BundleSpec = serde_json::from_str(r#"{"root":{"path":"/x/rootfs"}}"#).unwrap();
        assert_eq!(abs.rootfs(Path::new("/b")), Path::new("/x/rootfs"));
    }

    #[test]
    fn exec_terminal_follows_the_request() {
        let p = br#"{"args":["sh"],"terminal":false,"cwd":"/"}"#;
        let v: serde_json::Value = serde_json::from_slice(&exec_process_terminal(p, true).unwrap()).unwrap();
        assert_eq!(v["terminal"], true);
        assert_eq!(v["args"][0], "sh");
        assert_eq!(exec_process_terminal(p, false).unwrap(), p.to_vec());
        let v: serde_json::Value = serde_json::from_slice(&exec_process_terminal(br#"{"args":["sh"]}"#, true).unwrap()).unwrap();
        assert_eq!(v["terminal"], true);
        let t = br#"{"terminal":true}"#;
        let v: serde_json::Value = serde_json::from_slice(&exec_process_terminal(t, false).unwrap()).unwrap();
        assert_eq!(v["terminal"], false);
        assert!(exec_process_terminal(b"[]", true).is_err());
    }

    #[test]
    fn kill_all_on_exit_unless_a_pid_namespace_of_its_own() {
        let spec = |ns: &str| -> BundleSpec {
            serde_json::from_str(&format!(r#"{{"ociVersion":"1.3.0","linux":{{"namespaces":[{ns}]}}}}"#)).unwrap()
        };
        assert!(!spec(r#"{"type":"mount"},{"type":"pid"}"#).kill_all_on_exit());
        assert!(spec(r#"{"type":"mount"},{"type":"network"}"#).kill_all_on_exit());
        assert!(spec(r#"{"type":"pid","path":"/proc/42/ns/pid"}"#).kill_all_on_exit());
        assert!(BundleSpec::default().kill_all_on_exit());
    }

    #[test]
    fn pass_through_bodies_must_be_objects() {
        assert!(check_json_object(br#"{"memory":{"limit":1}}"#, "resources").is_ok());
        assert!(check_json_object(b"[1]", "resources").unwrap_err().contains("resources"));
        assert!(check_json_object(b"{", "process").is_err());
    }
}
