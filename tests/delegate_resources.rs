//! What the shim reports and changes about a delegated container's processes and
//! cgroup, through a real containerd (started by scripts/test.sh) with `ctr`: ps,
//! pause/resume, metrics, update and the order of OOM and exit events.
//!
//! Every check looks at the real thing: the container's cgroup files under
//! /sys/fs/cgroup, its processes under /proc, containerd's event stream.

mod common;

use std::time::Duration;

use common::cgroups::{read_trim, read_u64, v1_cgroup};
use common::delegates::pick;
use common::events::Events;
use common::procs::detached;
use common::tasks_api::update;
use common::{env, in_container, per_delegate, show, strs, unique_id, wait_until, Env};

/// `ctr task ps ID` as (pid, info) rows.
fn task_ps(env: &Env, id: &str) -> Vec<(u32, String)> {
    let r = env.ctr(&["task", "ps", id]);
    assert_eq!(r.code, 0, "ctr task ps {id}: {}", show(&r));
    r.stdout
        .lines()
        .skip(1)
        .filter_map(|l| {
            let (pid, info) = l.trim().split_once(char::is_whitespace).unwrap_or((l.trim(), ""));
            Some((pid.parse().ok()?, info.trim().to_string()))
        })
        .collect()
}

// --------------------------------------------------------------------------
// 6. ps

#[test]
fn task_ps_lists_init_and_exec_pids() {
    let env = env();
    let id = unique_id("ps");
    let _g = detached(&env, &id, &[], &["sleep", "1000"]);
    let init = env.task_pid(&id).expect("task pid");
    let ps = task_ps(&env, &id);
    assert_eq!(ps.iter().map(|p| p.0).collect::<Vec<_>>(), vec![init], "ps of a lone `sleep`: {ps:?}");

    let r = env.ctr(&["task", "exec", "-d", "--exec-id", "e4", &id, "sleep", "500"]);
    assert_eq!(r.code, 0, "exec -d: {}", show(&r));
    let mut ps = Vec::new();
    assert!(
        wait_until(Duration::from_secs(10), || {
            ps = task_ps(&env, &id);
            ps.len() == 2
        }),
        "ps should list init and the exec: {ps:?}"
    );
    assert!(ps.iter().any(|p| p.0 == init), "init pid {init} missing from ps: {ps:?}");
    let (exec_pid, info) = ps.iter().find(|p| p.0 != init).cloned().unwrap();
    let cmdline = std::fs::read(format!("/proc/{exec_pid}/cmdline")).unwrap_or_default();
    assert_eq!(cmdline, b"sleep\0500\0", "pid {exec_pid} from ps is not the exec's `sleep 500`");
    assert!(info.contains("e4"), "ps should name the exec id of pid {exec_pid}: {info:?}");

    let k = env.ctr(&["task", "kill", "-s", "SIGKILL", "--exec-id", "e4", &id]);
    assert_eq!(k.code, 0, "kill the exec: {}", show(&k));
    assert!(
        wait_until(Duration::from_secs(10), || {
            ps = task_ps(&env, &id);
            ps.iter().map(|p| p.0).collect::<Vec<_>>() == vec![init]
        }),
        "after the exec was killed ps should list init only: {ps:?}"
    );
}

// --------------------------------------------------------------------------
// 7. pause / resume

/// The counter the container writes to /tmp/n (replaced by rename, so never half written).
fn counter(pid: u32) -> Option<u64> {
    std::fs::read_to_string(in_container(pid, "/tmp/n")).ok()?.trim().parse().ok()
}

fn check_pause_resume(delegate: &str) {
    let env = env();
    let a = pick(delegate);
    let id = unique_id(&format!("pause-{delegate}"));
    let _g = detached(
        &env,
        &id,
        &strs(&a),
        &["sh", "-c", "i=0; while :; do i=$((i+1)); echo $i > /tmp/n.new; mv /tmp/n.new /tmp/n; sleep 0.05; done"],
    );
    let pid = env.task_pid(&id).expect("task pid");
    let freezer = v1_cgroup(&env, &id, pid, "freezer").join("freezer.state");
    assert!(wait_until(Duration::from_secs(15), || counter(pid).is_some_and(|n| n >= 2)), "the counter never ran");
    assert_eq!(read_trim(&freezer), "THAWED");

    let r = env.ctr(&["task", "pause", &id]);
    assert_eq!(r.code, 0, "pause: {}", show(&r));
    assert_eq!(env.task_status(&id).as_deref(), Some("PAUSED"));
    assert!(wait_until(Duration::from_secs(10), || read_trim(&freezer) == "FROZEN"), "freezer.state is {}", read_trim(&freezer));
    let mut before = None;
    assert!(wait_until(Duration::from_secs(5), || {
        before = counter(pid);
        before.is_some()
    }));
    // frozen means no progress at all: a fixed wait is the point here
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(counter(pid), before, "the counter moved while the container was paused");
    assert_eq!(env.task_status(&id).as_deref(), Some("PAUSED"));

    let r = env.ctr(&["task", "resume", &id]);
    assert_eq!(r.code, 0, "resume: {}", show(&r));
    assert_eq!(env.task_status(&id).as_deref(), Some("RUNNING"));
    assert_eq!(read_trim(&freezer), "THAWED");
    let before = before.unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || counter(pid).is_some_and(|n| n > before + 2)),
        "the counter did not move after resume (stuck at {:?})",
        counter(pid)
    );
}

per_delegate!(check_pause_resume: pause_freezes_and_resume_thaws_crun, pause_freezes_and_resume_thaws_runc, pause_freezes_and_resume_thaws_youki);

// --------------------------------------------------------------------------
// 8. metrics

#[test]
fn metrics_report_the_containers_cgroup() {
    let env = env();
    let id = unique_id("metrics");
    let limit: u64 = 128 << 20;
    let _g = env.run_detached(
        &id,
        &["--memory-limit", &limit.to_string()],
        &["sh", "-c", "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; touch /tmp/done; sleep 1000 & sleep 1000 & wait"],
    );
    let pid = env.task_pid(&id).expect("task pid");
    let mem = v1_cgroup(&env, &id, pid, "memory");
    let cpu = v1_cgroup(&env, &id, pid, "cpuacct");
    let pids = v1_cgroup(&env, &id, pid, "pids");
    assert!(
        wait_until(Duration::from_secs(120), || in_container(pid, "/tmp/done").exists()),
        "the CPU burner did not finish within 120 s"
    );

    // sh and its two background sleeps
    assert!(
        wait_until(Duration::from_secs(10), || read_u64(&pids.join("pids.current")) == 3),
        "pids.current of the container's cgroup is {}, expected 3",
        read_u64(&pids.join("pids.current"))
    );
    let pids_before = read_u64(&pids.join("pids.current"));
    let mem_before = read_u64(&mem.join("memory.usage_in_bytes"));
    let cpu_before = read_u64(&cpu.join("cpuacct.usage"));
    let r = env.ctr(&["task", "metrics", "--format", "json", &id]);
    let mem_after = read_u64(&mem.join("memory.usage_in_bytes"));
    let cpu_after = read_u64(&cpu.join("cpuacct.usage"));
    let pids_after = read_u64(&pids.join("pids.current"));
    assert_eq!(r.code, 0, "ctr task metrics: {}", show(&r));
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("metrics not JSON ({e}): {}", r.stdout));

    let usage = v["memory"]["usage"]["usage"].as_u64().unwrap_or(0);
    assert!(usage > 0, "memory usage is 0: {v}");
    let (lo, hi) = (mem_before.min(mem_after), mem_before.max(mem_after));
    assert!(
        usage * 4 >= lo * 3 && usage * 4 <= hi * 5,
        "metrics memory usage {usage} is not the cgroup's memory.usage_in_bytes ({mem_before}..{mem_after})"
    );
    assert_eq!(v["memory"]["usage"]["limit"].as_u64(), Some(limit), "memory limit in metrics: {v}");

    let total = v["cpu"]["usage"]["total"].as_u64().unwrap_or(0);
    assert!(total >= 20_000_000, "200000 shell iterations should use at least 20 ms of CPU, metrics say {total} ns: {v}");
    assert!(
        cpu_before <= total && total <= cpu_after,
        "metrics cpu total {total} is not the cgroup's cpuacct.usage ({cpu_before}..{cpu_after})"
    );

    let current = v["pids"]["current"].as_u64().unwrap_or(0);
    assert_eq!(current, 3, "pids.current in metrics (sh + 2 sleeps): {v}");
    assert!(
        pids_before.min(pids_after) <= current && current <= pids_before.max(pids_after),
        "metrics pids.current {current} is not the cgroup's pids.current ({pids_before}..{pids_after})"
    );
}

// --------------------------------------------------------------------------
// 9. update


fn check_update_memory(delegate: &str) {
    let env = env();
    let a = pick(delegate);
    let id = unique_id(&format!("update-{delegate}"));
    let _g = detached(&env, &id, &strs(&a), &["sleep", "1000"]);
    let pid = env.task_pid(&id).expect("task pid");
    let limit_file = v1_cgroup(&env, &id, pid, "memory").join("memory.limit_in_bytes");
    let before = read_u64(&limit_file);
    for limit in [67108864u64, 33554432] {
        assert_ne!(before, limit);
        let r = update(&env, &id, &format!("{{\"memory\":{{\"limit\":{limit}}}}}"));
        assert_eq!(r.code, 0, "Tasks.Update memory.limit={limit} via {delegate}: {}", show(&r));
        assert_eq!(read_u64(&limit_file), limit, "{} after update", limit_file.display());
    }
    assert_eq!(env.task_status(&id).as_deref(), Some("RUNNING"));
}

per_delegate!(check_update_memory: update_sets_memory_limit_crun, update_sets_memory_limit_runc, update_sets_memory_limit_youki);

// --------------------------------------------------------------------------
// 10. OOM

fn check_oom(delegate: &str) {
    let env = env();
    let a = pick(delegate);
    let id = unique_id(&format!("oom-{delegate}"));
    let events = Events::start(&env);
    let mut extra = vec!["--memory-limit", "16777216"];
    extra.extend(strs(&a));
    let r = env.run_rm(&id, &extra, &["sh", "-c", "x=a; while :; do x=$x$x; done"]);
    assert_eq!(r.code, 137, "a container over its memory limit should be OOM-killed: {}", show(&r));
    assert!(
        events.wait_for(&id, "/tasks/exit", Duration::from_secs(20)).is_some(),
        "no /tasks/exit for {id}; events:\n{}",
        events.dump()
    );
    let seen = events.about(&id);
    let at = |topic: &str| seen.iter().find(|(_, t, _)| t == topic).map(|(i, _, v)| (*i, v.clone()));
    let (oom_at, _) = at("/tasks/oom").unwrap_or_else(|| panic!("no /tasks/oom for {id}; events:\n{}", events.dump()));
    let (exit_at, exit) = at("/tasks/exit").unwrap();
    assert!(oom_at < exit_at, "/tasks/oom must come before /tasks/exit; events:\n{}", events.dump());
    assert_eq!(exit["exit_status"].as_i64(), Some(137), "{exit}");
}

per_delegate!(check_oom: oom_event_precedes_exit_crun, oom_event_precedes_exit_runc, oom_event_precedes_exit_youki);

