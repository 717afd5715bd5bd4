//! A delegated container's metrics carry its cgroup's OOM kill count, as
//! containerd's runc shim gives them (cgroup v1: memory_oom_control from
//! memory.oom_control). CRI's container_oom_events_total metric is read from
//! there; critest's pod-metrics spec checks that it is present.
//!
//! Through a real containerd with `ctr`: a process in the container outgrows
//! the memory limit and is OOM-killed while the container's init lives on.

mod common;

use std::time::Duration;

use common::cgroups::{read_trim, v1_cgroup};
use common::{env, in_container, show, unique_id, wait_until};

#[test]
fn metrics_count_the_containers_oom_kills() {
    let env = env();
    let id = unique_id("oomctl");
    // `tail /dev/zero` keeps growing its buffer (no newline ever comes) until
    // the limit's OOM killer ends it; init then marks the kill and sleeps
    let _g = env.run_detached(
        &id,
        &["--memory-limit", &(32u64 << 20).to_string()],
        &["sh", "-c", "tail /dev/zero; touch /tmp/oomed; sleep 1000"],
    );
    let pid = env.task_pid(&id).expect("task pid");
    let mem = v1_cgroup(&env, &id, pid, "memory");
    assert!(
        wait_until(Duration::from_secs(60), || in_container(pid, "/tmp/oomed").exists()),
        "`tail /dev/zero` under a 32 MiB limit was not OOM-killed within 60 s"
    );
    let ctl = read_trim(&mem.join("memory.oom_control"));
    let kills: u64 = ctl
        .lines()
        .find_map(|l| l.strip_prefix("oom_kill ")?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no oom_kill count in memory.oom_control (kernel too old?): {ctl:?}"));
    assert!(kills >= 1, "memory.oom_control counts no OOM kill: {ctl:?}");

    let r = env.ctr(&["task", "metrics", "--format", "json", &id]);
    assert_eq!(r.code, 0, "ctr task metrics: {}", show(&r));
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("metrics not JSON ({e}): {}", r.stdout));
    assert_eq!(
        v["memory_oom_control"]["oom_kill"].as_u64(),
        Some(kills),
        "metrics' memory_oom_control.oom_kill should be the cgroup's count {kills}: {v}"
    );
}
