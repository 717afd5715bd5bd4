//! Fault injection for the exec delegate: a crun wrapper, given to the shim as a
//! delegate profile, that misbehaves once at a chosen step; and the one
//! consistency check every fault test ends with.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::delegates::runtime_binary;
use super::events::Events;
use super::leftovers::{assert_nothing_left, log_tail, remove_record, CLEANUP_BOUND};
use super::procs::cmdline;
use super::{show, wait_until, Env};

/// The wrapper. The fault is data: the file `fault` beside it holds one line
/// `STEP ACTION [SECONDS]` (STEP is the runtime's subcommand: create, start,
/// exec, delete). The first call of that step renames the file to `fired` (so the
/// fault happens once and a retry or containerd's cleanup sees a healthy crun)
/// and then:
///   fail          exits 1 with its message on stderr and in crun's JSON log
///   sleep-before  sleeps, then runs the step
///   sleep-after   runs the step, then sleeps
///   kill          runs the step, then kill -9 the process it made (the pid
///                 in --pid-file, else the container's init from `crun state`)
/// A sleep creates the file `held` as it begins (the step is then held for
/// sure, its work done for sleep-after), and ends early once the shim that
/// called it is gone, so no wrapper outlives a killed shim by more than a moment.
const WRAPPER: &str = r#"#!/bin/sh
here=$(dirname "$0")
real=@CRUN@
step= skip= pid_file= log= prev= root= id=
for a in "$@"; do
    case "$prev" in --pid-file) pid_file=$a ;; --root) root=$a ;; esac
    id=$a
    case "$a" in --log=*) log=${a#--log=} ;; esac
    prev=$a
    [ -n "$step" ] && continue
    if [ -n "$skip" ]; then skip=; continue; fi
    case "$a" in --root) skip=1 ;; -*) ;; *) step=$a ;; esac
done
caller=$PPID
hold() {
    : > "$here/held"
    n=0
    while [ "$n" -lt "$(($1 * 5))" ]; do
        [ "$(cut -d' ' -f4 /proc/$$/stat)" = "$caller" ] || return 0
        sleep 0.2
        n=$((n + 1))
    done
}
if [ -f "$here/fault" ] && read -r f_step f_action f_secs < "$here/fault" && [ "$f_step" = "$step" ]; then
    mv "$here/fault" "$here/fired"
    case "$f_action" in
    fail)
        msg="injected fault: $step fails"
        echo "$msg" >&2
        [ -n "$log" ] && printf '{"msg":"%s","level":"error"}\n' "$msg" >> "$log"
        exit 1 ;;
    sleep-before)
        hold "$f_secs" ;;
    sleep-after)
        "$real" "$@" || exit
        hold "$f_secs"
        exit 0 ;;
    kill)
        "$real" "$@" || exit
        if [ -n "$pid_file" ]; then
            pid=$(cat "$pid_file")
        else
            pid=$("$real" --root "$root" state "$id" | sed -n 's/.*"pid": *\([0-9]*\).*/\1/p')
        fi
        kill -9 "$pid" || exit
        exit 0 ;;
    esac
fi
exec "$real" "$@"
"#;

/// A profile dir whose `crun` is the wrapper, and the micrun config naming it.
pub struct Wrapper {
    pub dir: PathBuf,
    pub config: PathBuf,
    pub script: PathBuf,
}

impl Wrapper {
    pub fn new(env: &Env, id: &str) -> Wrapper {
        let dir = env.state.join(format!("fault-{id}"));
        std::fs::create_dir_all(&dir).unwrap();
        let crun = runtime_binary("crun");
        let script = dir.join("crun-wrapper.sh");
        std::fs::write(&script, WRAPPER.replace("@CRUN@", &crun.display().to_string())).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        // the built-in crun profile's spec version cap, which the wrapper needs too
        let profile = format!("name = \"crun\"\nbinary = {:?}\noci_version_max = \"1.1.0\"\n", script.display().to_string());
        std::fs::write(dir.join("crun.toml"), profile).unwrap();
        let config = env.config_file(
            &format!("fault-{id}"),
            &format!("[delegate]\ndefault = \"crun\"\nprofile_dir = {:?}\n", dir.display().to_string()),
        );
        Wrapper { dir, config, script }
    }

    /// `--runtime-config-path <config>` for `ctr run`.
    pub fn run_args(&self) -> [String; 2] {
        ["--runtime-config-path".into(), self.config.display().to_string()]
    }

    /// Arms the fault for the next call of `step`.
    pub fn arm(&self, step: &str, action: &str, secs: u32) {
        let _ = std::fs::remove_file(self.dir.join("fired"));
        let _ = std::fs::remove_file(self.dir.join("held"));
        std::fs::write(self.dir.join("fault"), format!("{step} {action} {secs}\n")).unwrap();
    }

    /// The armed fault happened (a test whose fault never fired tests nothing).
    pub fn fired(&self) -> bool {
        self.dir.join("fired").exists()
    }

    /// A sleep-before or sleep-after fault holds its step now.
    pub fn wait_held(&self, bound: Duration) -> bool {
        wait_until(bound, || self.dir.join("held").exists())
    }

    /// Running copies of the wrapper (one held by a killed shim must end).
    pub fn running(&self) -> Vec<u32> {
        let me = self.script.display().to_string();
        let Ok(dir) = std::fs::read_dir("/proc") else { return vec![] };
        dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| cmdline(*pid).iter().any(|a| *a == me))
            .collect()
    }
}

impl Drop for Wrapper {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        let _ = std::fs::remove_file(&self.config);
    }
}

/// `/tasks/exit` events about container `id`, counted per process (the init's
/// events carry the container id as their id, an exec's its exec id).
pub fn exits(events: &Events, id: &str) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for (_, topic, v) in events.about(id) {
        if topic == "/tasks/exit" {
            *out.entry(v["id"].as_str().unwrap_or_default().to_string()).or_default() += 1;
        }
    }
    out
}

/// The check every fault test ends with, once the user has removed the task:
/// containerd reports no task; each process that ran had exactly one
/// `/tasks/exit` (`ran`: the init as the container id, execs by exec id; a
/// process named twice had two) and no other process had any; nothing is left behind (mounts, work dir, micrun.json,
/// delegate state, cgroups, shim process and socket, a wrapper still running);
/// and the id is reusable: the container record goes, and the same id runs again.
pub fn assert_consistent(env: &Env, events: &Events, wrapper: &Wrapper, id: &str, ran: &[&str]) {
    assert_eq!(env.task_status(id), None, "containerd still lists task {id} after its removal");

    let mut want: BTreeMap<String, usize> = BTreeMap::new();
    for p in ran {
        *want.entry(p.to_string()).or_default() += 1;
    }
    wait_until(CLEANUP_BOUND, || exits(events, id) == want);
    // a duplicate may trail the first: give it the time to show
    std::thread::sleep(Duration::from_secs(1));
    let seen = exits(events, id);
    assert_eq!(seen, want, "/tasks/exit events of {id} (per process id): want {want:?}, saw {seen:?}\nevents:\n{}", dump_about(events, id));

    assert_nothing_left(env, id);
    assert!(wait_until(CLEANUP_BOUND, || wrapper.running().is_empty()), "wrapper still running: {:?}", wrapper.running());

    remove_record(env, id);
    let again = env.run_rm(id, &["--null-io"], &["true"]);
    assert_eq!(again.code, 0, "re-run of {id} after the fault: {}\n{}", show(&again), log_tail(env, id));
    assert_eq!(env.task_status(id), None, "re-run of {id} left a task");
    assert_nothing_left(env, id);
}

fn dump_about(events: &Events, id: &str) -> String {
    events.about(id).into_iter().map(|(_, t, v)| format!("{t} {v}")).collect::<Vec<_>>().join("\n")
}
