//! The container's v1 cgroup files, read from the host.

use std::path::{Path, PathBuf};

use super::Env;

/// The container's v1 cgroup directory for `controller`, after checking that
/// `pid` really is in `/<namespace>/<id>` (ctr's default cgroups path).
pub fn v1_cgroup(env: &Env, id: &str, pid: u32, controller: &str) -> PathBuf {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_else(|e| panic!("read /proc/{pid}/cgroup: {e}"));
    let want = format!("/{}/{id}", env.namespace);
    let line = text
        .lines()
        .find(|l| l.split(':').nth(1).is_some_and(|c| c.split(',').any(|c| c == controller)))
        .unwrap_or_else(|| panic!("no v1 {controller} controller in /proc/{pid}/cgroup:\n{text}"));
    assert_eq!(line.splitn(3, ':').nth(2), Some(want.as_str()), "pid {pid} of {id} is not in cgroup {want}: {line}");
    let dir = Path::new("/sys/fs/cgroup").join(controller).join(want.trim_start_matches('/'));
    assert!(dir.is_dir(), "{} missing", dir.display());
    dir
}

pub fn read_trim(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display())).trim().to_string()
}

pub fn read_u64(p: &Path) -> u64 {
    let s = read_trim(p);
    s.parse().unwrap_or_else(|_| panic!("{} holds no number: {s:?}", p.display()))
}
