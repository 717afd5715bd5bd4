//! Per-container state on disk, kept in the bundle (which containerd keeps until
//! after `shim delete`), so a dead shim can still be cleaned up.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::backend::Leftovers;
use crate::router::Decision;

pub const FILE: &str = "micrun.json";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ContainerState {
    pub id: String,
    pub namespace: String,
    pub decision: Decision,
    pub pid: u32,
    /// Our private directory for this container.
    pub work_dir: PathBuf,
    /// `<bundle>/rootfs` when the shim mounted it.
    pub mounted_rootfs: Option<PathBuf>,
    pub leftovers: Leftovers,
}

impl ContainerState {
    pub fn save(&self, bundle: &Path) -> std::io::Result<()> {
        let tmp = bundle.join(format!(".{FILE}"));
        std::fs::write(&tmp, serde_json::to_vec_pretty(self)?)?;
        std::fs::rename(tmp, bundle.join(FILE))
    }

    pub fn load(bundle: &Path) -> std::io::Result<Option<ContainerState>> {
        match std::fs::read(bundle.join(FILE)) {
            Ok(b) => Ok(Some(serde_json::from_slice(&b)?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub fn remove(bundle: &Path) {
        let _ = std::fs::remove_file(bundle.join(FILE));
    }
}

/// Our private directory for a container: `<state_root>/<namespace>/containers/<id>`.
pub fn work_dir(state_root: &Path, namespace: &str, id: &str) -> PathBuf {
    state_root.join(namespace).join("containers").join(id)
}
