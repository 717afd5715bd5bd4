//! A cgroups path of systemd's form (`slice:prefix:name`) on a host systemd
//! does not manage. CRI writes that form for every pod whose cgroup parent
//! ends in ".slice" (critest's default parent is "system.slice"), whatever the
//! host. containerd's runc shim asks the runtime for systemd's cgroup driver
//! only when its SystemdCgroup option says so, and otherwise hands the path
//! to the runtime's cgroupfs manager as it is; micrun must do the same, not
//! ask for systemd's driver (crun: "cannot open sd-bus") and fail every pod.
//!
//! Through a real containerd with `ctr run --cgroup`; the container reads its
//! own cgroup.

mod common;

use common::{env, show, unique_id};

#[test]
fn systemd_form_path_without_systemd_goes_to_cgroupfs() {
    if std::path::Path::new("/run/systemd/system").is_dir() {
        eprintln!("skipped: systemd manages this host, where the systemd form means systemd's driver");
        return;
    }
    let env = env();
    let id = unique_id("sdform");
    let path = format!("system.slice:micrun-test:{id}");
    let r = env.run_rm(&id, &["--cgroup", &path], &["cat", "/proc/self/cgroup"]);
    assert_eq!(r.code, 0, "a container whose cgroups path is {path:?} should run: {}", show(&r));
    // cgroupfs takes the path as one directory name under each hierarchy
    let want = format!(":/{path}");
    for ctrl in ["memory", "pids"] {
        let line = r.stdout.lines().find(|l| l.split(':').nth(1) == Some(ctrl));
        assert!(
            line.is_some_and(|l| l.ends_with(&want)),
            "the {ctrl} line of /proc/self/cgroup should end in {want:?} (cgroupfs): {}",
            show(&r)
        );
    }
}
