//! Every OCI annotation micrun reads, parsed in one place. Annotations are untrusted:
//! nothing here may name a binary path or reach outside the rootfs.

use std::collections::{BTreeMap, HashMap};

pub const DELEGATE: &str = "io.containerd.mica.v2.delegate";
pub const GROUP: &str = "io.containerd.mica.v2.group";
pub const CRI_CONTAINER_TYPE: &str = "io.kubernetes.cri.container-type";
pub const CRIO_CONTAINER_TYPE: &str = "io.kubernetes.cri-o.ContainerType";
pub const CRI_SANDBOX_ID: &str = "io.kubernetes.cri.sandbox-id";
pub const CRI_CONTAINER_NAME: &str = "io.kubernetes.cri.container-name";

/// Upstream renamed `micran` to `micrun`; both prefixes mean the same keys.
pub const MICA_PREFIXES: [&str; 2] = ["org.openeuler.micran.", "org.openeuler.micrun."];
/// Pod-scoped selector (key after the prefix): which container names go to mica.
pub const MICA_SELECTOR_KEY: &str = "containers";
/// The seed's flat key, accepted as an alias of `container.auto_close`.
const KEY_ALIASES: [(&str, &str); 1] = [("auto_disconnect", "container.auto_close")];

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Annotations {
    pub delegate: Option<String>,
    pub group: Option<String>,
    pub is_sandbox: bool,
    pub sandbox_id: Option<String>,
    pub container_name: Option<String>,
    /// `org.openeuler.micran.containers`: names of the pod's RTOS containers.
    pub mica_selector: Option<Vec<String>>,
    /// Every other mica key, prefix removed and aliases resolved, e.g. `container.os`.
    pub mica: BTreeMap<String, String>,
    /// For each key of `mica`, the full annotation it came from, so errors can name it.
    pub mica_keys: BTreeMap<String, String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AnnotationError {
    #[error("annotations {first}={first_value:?} and {second}={second_value:?} set the same key to different values; remove one of them")]
    Conflict { first: String, first_value: String, second: String, second_value: String },
    #[error("annotation {key} is empty; give it a value or remove it")]
    Empty { key: String },
}

impl Annotations {
    pub fn parse(raw: &HashMap<String, String>) -> Result<Annotations, AnnotationError> {
        let get = |k: &str| raw.get(k).map(|v| v.trim().to_string());
        let mut a = Annotations {
            delegate: get(DELEGATE),
            group: get(GROUP).filter(|g| !g.is_empty()),
            is_sandbox: get(CRI_CONTAINER_TYPE).as_deref() == Some("sandbox")
                || get(CRIO_CONTAINER_TYPE).as_deref() == Some("sandbox"),
            sandbox_id: get(CRI_SANDBOX_ID).filter(|s| !s.is_empty()),
            container_name: get(CRI_CONTAINER_NAME).filter(|s| !s.is_empty()),
            ..Default::default()
        };
        if a.delegate.as_deref() == Some("") {
            return Err(AnnotationError::Empty { key: DELEGATE.into() });
        }
        // Sorted so a conflict always names the same pair first.
        let mut keys: Vec<&String> = raw.keys().collect();
        keys.sort();
        for full in keys {
            let Some(rest) = MICA_PREFIXES.iter().find_map(|p| full.strip_prefix(p)) else { continue };
            let key = KEY_ALIASES.iter().find(|(alias, _)| *alias == rest).map_or(rest, |(_, k)| k);
            let value = raw[full].trim().to_string();
            if let Some(prev) = a.mica.get(key) {
                if *prev != value {
                    return Err(AnnotationError::Conflict {
                        first: a.mica_keys[key].clone(),
                        first_value: prev.clone(),
                        second: full.clone(),
                        second_value: value,
                    });
                }
                continue;
            }
            a.mica_keys.insert(key.to_string(), full.clone());
            a.mica.insert(key.to_string(), value);
        }
        a.mica_keys.remove(MICA_SELECTOR_KEY);
        if let Some(list) = a.mica.remove(MICA_SELECTOR_KEY) {
            a.mica_selector =
                Some(list.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect());
        }
        Ok(a)
    }

    /// The shim process this container belongs to: its pod, or an explicit group.
    pub fn grouping(&self) -> Option<&str> {
        self.sandbox_id.as_deref().or(self.group.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn prefixes_are_aliases_and_flat_key_is_mapped() {
        let a = Annotations::parse(&map(&[
            ("org.openeuler.micran.container.os", "zephyr"),
            ("org.openeuler.micrun.container.os", "zephyr"),
            ("org.openeuler.micran.auto_disconnect", "true"),
        ]))
        .unwrap();
        assert_eq!(a.mica.get("container.os").unwrap(), "zephyr");
        assert_eq!(a.mica.get("container.auto_close").unwrap(), "true");
        assert_eq!(a.mica.len(), 2);
        assert_eq!(a.mica_keys["container.auto_close"], "org.openeuler.micran.auto_disconnect");
    }

    #[test]
    fn conflicting_prefixes_name_both() {
        let e = Annotations::parse(&map(&[
            ("org.openeuler.micran.container.os", "zephyr"),
            ("org.openeuler.micrun.container.os", "uniproton"),
        ]))
        .unwrap_err()
        .to_string();
        assert!(e.contains("org.openeuler.micran.container.os") && e.contains("org.openeuler.micrun.container.os"), "{e}");
    }

    #[test]
    fn selector_and_cri_fields() {
        let a = Annotations::parse(&map(&[
            ("org.openeuler.micrun.containers", "rtos, fw2"),
            (CRI_CONTAINER_TYPE, "container"),
            (CRI_SANDBOX_ID, "pod1"),
            (CRI_CONTAINER_NAME, "rtos"),
            (GROUP, "g"),
        ]))
        .unwrap();
        assert_eq!(a.mica_selector.as_deref(), Some(&["rtos".to_string(), "fw2".to_string()][..]));
        assert!(a.mica.is_empty());
        assert!(!a.is_sandbox);
        assert_eq!(a.grouping(), Some("pod1"));
        assert!(Annotations::parse(&map(&[(CRIO_CONTAINER_TYPE, "sandbox")])).unwrap().is_sandbox);
        assert!(Annotations::parse(&map(&[(DELEGATE, " ")])).is_err());
    }
}
