//! The pod files CRI leaves to the sandbox controller when `sandboxer = "shim"`:
//! /etc/hostname, /etc/hosts, /etc/resolv.conf and the pod's /dev/shm. CRI
//! mounts each into the pod's Linux containers only when the file exists at
//! its usual place, so without them a container loses the pod's DNS. They live
//! where CRI's own pause-based controller puts them: the CRI plugin's root and
//! state directories, found from the sandbox bundle containerd gave us.

use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};

use super::pod_config::PodConfig;

/// CRI's plugin directory below containerd's root and state directories.
const CRI_DIR: &str = "io.containerd.grpc.v1.cri";
/// The sandbox controller plugins' directories start with this.
const CONTROLLER_DIR: &str = "io.containerd.sandbox.controller.";
/// CRI's default size of a pod's /dev/shm.
const SHM_SIZE: u64 = 64 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq)]
pub struct PodFiles {
    /// <containerd root>/io.containerd.grpc.v1.cri/sandboxes/<id>: hostname, hosts, resolv.conf.
    pub root: PathBuf,
    /// <containerd state>/io.containerd.grpc.v1.cri/sandboxes/<id>: shm.
    pub state: PathBuf,
}

/// `<base>/<controller>/<ns>/<id>` → `<base>`.
fn base_of(p: &Path, id: &str) -> Option<PathBuf> {
    if p.file_name()?.to_str()? != id {
        return None;
    }
    let controller = p.parent()?.parent()?;
    if !controller.file_name()?.to_str()?.starts_with(CONTROLLER_DIR) {
        return None;
    }
    controller.parent().map(Path::to_path_buf)
}

impl PodFiles {
    /// The directories for sandbox `id` of a bundle made by containerd's shim
    /// sandbox controller: `<state>/<controller>/<ns>/<id>`, whose `work` link
    /// points at `<root>/<controller>/<ns>/<id>`. Anything else is refused so
    /// nothing is written outside containerd's own directories.
    pub fn for_bundle(bundle: &Path, id: &str) -> Result<PodFiles, String> {
        let not_ours = || format!("bundle {} is not one of containerd's sandbox controller bundles for {id}", bundle.display());
        let state = base_of(bundle, id).ok_or_else(not_ours)?;
        let work = std::fs::read_link(bundle.join("work")).map_err(|e| format!("{}: {e}", bundle.join("work").display()))?;
        let root = base_of(&work, id).ok_or_else(not_ours)?;
        let sandboxes = |base: PathBuf| base.join(CRI_DIR).join("sandboxes").join(id);
        Ok(PodFiles { root: sandboxes(root), state: sandboxes(state) })
    }

    pub fn shm(&self) -> PathBuf {
        self.state.join("shm")
    }

    /// Writes the files as CRI's pause-based controller does; on failure
    /// nothing is left.
    pub fn write(&self, pod: &PodConfig) -> Result<(), String> {
        let made = self.write_all(pod);
        if made.is_err() {
            self.remove();
        }
        made
    }

    fn write_all(&self, pod: &PodConfig) -> Result<(), String> {
        let at = |p: &Path, e: std::io::Error| format!("{}: {e}", p.display());
        std::fs::create_dir_all(&self.root).map_err(|e| at(&self.root, e))?;
        let hostname = match pod.hostname.as_str() {
            "" => nix::unistd::gethostname().map_err(|e| format!("gethostname: {e}"))?.to_string_lossy().into_owned(),
            h => h.to_string(),
        };
        let write = |name: &str, body: &[u8]| {
            let p = self.root.join(name);
            std::fs::write(&p, body).map_err(|e| at(&p, e))
        };
        write("hostname", format!("{hostname}\n").as_bytes())?;
        write("hosts", &std::fs::read("/etc/hosts").map_err(|e| at(Path::new("/etc/hosts"), e))?)?;
        let resolv = match &pod.dns {
            Some(dns) => dns.resolv_conf().into_bytes(),
            None => std::fs::read("/etc/resolv.conf").map_err(|e| at(Path::new("/etc/resolv.conf"), e))?,
        };
        write("resolv.conf", &resolv)?;
        if !pod.shares_host_ipc() {
            let shm = self.shm();
            std::fs::create_dir_all(&shm).map_err(|e| at(&shm, e))?;
            let flags = MsFlags::MS_NOEXEC | MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
            let data = format!("mode=1777,size={SHM_SIZE}");
            nix::mount::mount(Some("shm"), &shm, Some("tmpfs"), flags, Some(data.as_str()))
                .map_err(|e| format!("mount the pod's shm at {}: {e}", shm.display()))?;
        }
        Ok(())
    }

    /// Unmounts the pod's shm and removes both directories; safe to repeat.
    pub fn remove(&self) {
        let shm = self.shm();
        match nix::mount::umount2(&shm, MntFlags::MNT_DETACH) {
            Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
            Err(e) => tracing::warn!(shm = %shm.display(), error = %e, "cannot unmount the pod's shm"),
        }
        for dir in [&self.root, &self.state] {
            match std::fs::remove_dir_all(dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => tracing::warn!(dir = %dir.display(), error = %e, "cannot remove pod files"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn found_from_the_controller_bundle_only() {
        let t = std::env::temp_dir().join(format!("micrun-podfiles-{}", std::process::id()));
        let ctl = "io.containerd.sandbox.controller.v1.shim";
        let (state, root) = (t.join("state"), t.join("root"));
        let bundle = state.join(ctl).join("k8s.io").join("sb1");
        let work = root.join(ctl).join("k8s.io").join("sb1");
        std::fs::create_dir_all(&bundle).unwrap();
        std::fs::create_dir_all(&work).unwrap();
        std::os::unix::fs::symlink(&work, bundle.join("work")).unwrap();
        let f = PodFiles::for_bundle(&bundle, "sb1").unwrap();
        assert_eq!(f.root, root.join(CRI_DIR).join("sandboxes/sb1"));
        assert_eq!(f.state, state.join(CRI_DIR).join("sandboxes/sb1"));
        assert!(PodFiles::for_bundle(&bundle, "other").is_err(), "id must be the bundle's");
        let task = state.join("io.containerd.runtime.v2.task").join("k8s.io").join("sb1");
        std::fs::create_dir_all(&task).unwrap();
        assert!(PodFiles::for_bundle(&task, "sb1").unwrap_err().contains("not one of containerd's sandbox controller bundles"));
        std::fs::remove_dir_all(&t).unwrap();
    }
}
