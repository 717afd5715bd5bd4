//! The pod's cgroup, made by the shim for the holder as an OCI runtime's
//! cgroupfs manager would make it: one directory per v1 hierarchy (or one in
//! the unified tree), the pod-level limits of the sandbox spec written into
//! it, removed again at delete.

use std::path::{Path, PathBuf};

use crate::spec::Resources;

const ROOT: &str = "/sys/fs/cgroup";

/// The cgroupfs directory for a spec's cgroups path. The systemd form
/// `slice:prefix:name` becomes systemd's own layout where systemd runs
/// (`a-b.slice` → `a.slice/a-b.slice`, unit `prefix-name.scope`); without
/// systemd it is a plain name, as the delegate's runtime takes it there.
pub fn relative_path(cgroups_path: &str, systemd_booted: bool) -> Result<PathBuf, String> {
    let parts: Vec<&str> = cgroups_path.split(':').collect();
    let rel = match parts.as_slice() {
        [slice, prefix, name] if systemd_booted => {
            let mut path = PathBuf::new();
            let slice = slice.strip_suffix(".slice").unwrap_or(slice);
            if !slice.is_empty() && slice != "-" {
                let mut acc = String::new();
                for piece in slice.split('-') {
                    if !acc.is_empty() {
                        acc.push('-');
                    }
                    acc.push_str(piece);
                    path.push(format!("{acc}.slice"));
                }
            }
            path.join(if prefix.is_empty() { format!("{name}.scope") } else { format!("{prefix}-{name}.scope") })
        }
        _ => PathBuf::from(cgroups_path.trim_start_matches('/')),
    };
    if rel.as_os_str().is_empty() || rel.components().any(|c| !matches!(c, std::path::Component::Normal(_))) {
        return Err(format!("cgroups path {cgroups_path:?} does not name a cgroup below the root"));
    }
    Ok(rel)
}

/// The cgroup hierarchies of this host: the unified root, or each v1 mount.
fn hierarchies() -> Vec<PathBuf> {
    let unified = nix::sys::statfs::statfs(ROOT).is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC);
    if unified {
        return vec![PathBuf::from(ROOT)];
    }
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut out: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let mount_point = left.split(' ').nth(4)?;
            (right.split(' ').next() == Some("cgroup")).then(|| PathBuf::from(mount_point))
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Makes the pod's cgroup directories (leaves only are ours to remove) and
/// writes the spec's pod-level limits. Returns the directories made.
pub fn make(rel: &Path, resources: Option<&Resources>) -> Result<Vec<PathBuf>, String> {
    let mut made = Vec::new();
    for root in hierarchies() {
        let dir = root.join(rel);
        if dir.exists() {
            remove(&made);
            return Err(format!("cgroup {} already exists: another container uses this cgroups path", dir.display()));
        }
        if root == Path::new(ROOT) {
            enable_controllers(rel);
        }
        if let Err(e) = std::fs::create_dir_all(&dir) {
            remove(&made);
            return Err(format!("create cgroup {}: {e}", dir.display()));
        }
        inherit_cpuset(&root, rel);
        made.push(dir);
    }
    if made.is_empty() {
        return Err(format!("no cgroup hierarchy is mounted under {ROOT}"));
    }
    if let Err(e) = limit(&made, resources) {
        remove(&made);
        return Err(e);
    }
    Ok(made)
}

/// cgroup v1's cpuset starts a new group with no CPUs and no memory nodes, and
/// refuses tasks until both are set: each new level takes its parent's.
fn inherit_cpuset(root: &Path, rel: &Path) {
    let mut dir = root.to_path_buf();
    for part in rel.components() {
        let parent = dir.clone();
        dir.push(part);
        for file in ["cpuset.cpus", "cpuset.mems"] {
            let mine = std::fs::read_to_string(dir.join(file)).unwrap_or_else(|_| "-".into());
            if mine.trim().is_empty() {
                if let Ok(theirs) = std::fs::read_to_string(parent.join(file)) {
                    let _ = std::fs::write(dir.join(file), theirs.trim());
                }
            }
        }
    }
}

/// cgroup v2: the controllers the pod's limits and statistics need, enabled on
/// the way down (best effort: a parent may not offer them).
fn enable_controllers(rel: &Path) {
    let mut dir = PathBuf::from(ROOT);
    for part in rel.parent().into_iter().flat_map(Path::components) {
        let _ = std::fs::write(dir.join("cgroup.subtree_control"), "+cpu +memory +pids");
        dir.push(part);
        let _ = std::fs::create_dir(&dir);
    }
    let _ = std::fs::write(dir.join("cgroup.subtree_control"), "+cpu +memory +pids");
}

fn limit(dirs: &[PathBuf], resources: Option<&Resources>) -> Result<(), String> {
    let Some(r) = resources else { return Ok(()) };
    let mut writes: Vec<(&str, String)> = Vec::new();
    let v2 = dirs.len() == 1 && dirs[0].join("cgroup.controllers").exists();
    if let Some(cpu) = &r.cpu {
        if v2 {
            if let Some(shares) = cpu.shares.filter(|s| *s > 0) {
                writes.push(("cpu.weight", (1 + (shares.clamp(2, 262144) - 2) * 9999 / 262142).to_string()));
            }
            if let Some(q) = cpu.quota.filter(|q| *q > 0) {
                writes.push(("cpu.max", format!("{q} {}", cpu.period.unwrap_or(100_000))));
            }
        } else {
            if let Some(shares) = cpu.shares.filter(|s| *s > 0) {
                writes.push(("cpu.shares", shares.to_string()));
            }
            if let Some(p) = cpu.period.filter(|p| *p > 0) {
                writes.push(("cpu.cfs_period_us", p.to_string()));
            }
            if let Some(q) = cpu.quota.filter(|q| *q != 0) {
                writes.push(("cpu.cfs_quota_us", q.to_string()));
            }
        }
    }
    if let Some(limit) = r.memory.as_ref().and_then(|m| m.limit).filter(|l| *l > 0) {
        writes.push((if v2 { "memory.max" } else { "memory.limit_in_bytes" }, limit.to_string()));
    }
    for (file, value) in writes {
        let target = dirs.iter().map(|d| d.join(file)).find(|p| p.exists());
        let target = target.ok_or_else(|| format!("the pod's cgroup has no {file}: its controller is not available here"))?;
        std::fs::write(&target, &value).map_err(|e| format!("write {value} to {}: {e}", target.display()))?;
    }
    Ok(())
}

/// The `cgroup.procs` files to enter the pod's cgroup with.
pub fn procs_files(dirs: &[PathBuf]) -> Vec<PathBuf> {
    dirs.iter().map(|d| d.join("cgroup.procs")).collect()
}

/// Removes the cgroup directories; the holder must be gone. A directory the
/// kernel still counts a process in is retried for a short while.
pub fn remove(dirs: &[PathBuf]) {
    for dir in dirs {
        for attempt in 0..50 {
            match std::fs::remove_dir(dir) {
                Ok(()) => break,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                Err(e) if attempt == 49 => tracing::warn!(cgroup = %dir.display(), error = %e, "cannot remove the pod's cgroup"),
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(10)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(relative_path("/k8s.io/abc", false).unwrap(), PathBuf::from("k8s.io/abc"));
        assert_eq!(relative_path("system.slice:cri-containerd:abc", false).unwrap(), PathBuf::from("system.slice:cri-containerd:abc"));
        assert_eq!(
            relative_path("kubepods-besteffort-pod1.slice:cri-containerd:abc", true).unwrap(),
            PathBuf::from("kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice/cri-containerd-abc.scope")
        );
        for bad in ["", "/", "/a/../../b", "../x"] {
            assert!(relative_path(bad, false).is_err(), "{bad:?} accepted");
        }
    }
}
