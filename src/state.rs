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
    /// Written whole then renamed, so a crash leaves the old state or the new;
    /// readable by root only, as it names mounts and processes to clean up.
    pub fn save(&self, bundle: &Path) -> std::io::Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let tmp = bundle.join(format!(".{FILE}"));
        let _ = std::fs::remove_file(&tmp);
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
        f.write_all(&serde_json::to_vec_pretty(self)?)?;
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

/// Creates `dir` and its missing parents for root's eyes only (0700): what the
/// shim keeps there (firmware copies, runtime state, console sockets) is
/// nobody else's to read or connect to.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// Our private directory for a container: `<state_root>/<namespace>/containers/<id>`.
pub fn work_dir(state_root: &Path, namespace: &str, id: &str) -> PathBuf {
    state_root.join(namespace).join("containers").join(id)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn state_and_work_dirs_are_roots_alone() {
        let tmp = tempfile::tempdir().unwrap();
        let work = work_dir(tmp.path(), "ns", "c1");
        private_dir(&work).unwrap();
        for d in [tmp.path().join("ns"), tmp.path().join("ns/containers"), work.clone()] {
            assert_eq!(mode(&d), 0o700, "{}", d.display());
        }
        let st = ContainerState {
            id: "c1".into(),
            namespace: "ns".into(),
            decision: crate::router::Decision { route: crate::router::Route::Mica, reason: "test".into() },
            pid: 1,
            work_dir: work,
            mounted_rootfs: None,
            leftovers: Leftovers::default(),
        };
        st.save(tmp.path()).unwrap();
        // A second save replaces the first, a stale temporary file included.
        std::fs::write(tmp.path().join(format!(".{FILE}")), b"stale").unwrap();
        st.save(tmp.path()).unwrap();
        assert_eq!(mode(&tmp.path().join(FILE)), 0o600);
        assert_eq!(ContainerState::load(tmp.path()).unwrap(), Some(st));
    }
}
