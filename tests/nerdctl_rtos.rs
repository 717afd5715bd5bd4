//! nerdctl 2.x end to end through micrun, RTOS containers: the demo firmware
//! image (examples/demo-firmware, packed by `micrun image build`) against
//! `micrun sim`, run by nerdctl with
//! `--annotation org.openeuler.micran.container.os=zephyr`.
//!
//! nerdctl gives a runtime that is not runc's no runtime options, so the micrun
//! config that points the shim at the simulator comes from containerd's
//! environment (MICRUN_CONFIG): each test starts a containerd of its own with it
//! (common/nerdctl.rs `OwnContainerd`). The RTOS containers run with
//! `--network none`: an RTOS has no process, so no network namespace for CNI.
//!
//! nerdctl puts its own createRuntime and postStop OCI hooks
//! (`nerdctl internal oci-hook`) in every spec: createRuntime re-acquires the
//! container's name and records its start (`nerdctl inspect`'s StartedAt),
//! postStop releases the name. The RTOS route runs them as the OCI runtime
//! spec says; the hooks test checks each one's effect and its log.

mod common;
#[path = "common/mica.rs"]
mod mica_common;
#[path = "common/nerdctl.rs"]
mod nerdctl_common;

use std::time::Duration;

use common::firmware::demo_image;
use common::{show, unique_id, wait_until};
use mica_common::{Sim, OS_ANNOTATION};
use nerdctl_common::{Nerdctl, OwnContainerd};

const BANNER: &str = "*** Booting micrun demo RTOS v1 (native_sim) ***";
const PROMPT: &str = "demo:~$ ";
/// What micad's Xen pedestal cannot boot without: its config and a memory size.
const XEN: [&str; 6] = [
    "--annotation",
    "org.openeuler.micran.ped.pedestal=xen",
    "--annotation",
    "org.openeuler.micran.ped.conf=/boot/zephyr.bin",
    "--memory",
    "512m",
];

/// A simulator, a containerd whose MICRUN_CONFIG points the shim at it, the
/// demo image in it, and nerdctl against it. Dropped in this order: nerdctl's
/// data root, then containerd with its shims (which remove their micad
/// clients while the simulator still answers), then the simulator.
struct Rig {
    n: Nerdctl,
    ctd: OwnContainerd,
    sim: Sim,
    image: String,
}

fn rig(pedestal: &str) -> Rig {
    rig_with(pedestal, "")
}

/// `rig` whose micrun config starts with the top-level keys in `top`.
fn rig_with(pedestal: &str, top: &str) -> Rig {
    let env = common::env();
    let sim = Sim::start(&env, pedestal);
    let mut config = sim.config.clone();
    if !top.is_empty() {
        let text = format!("{top}\n{}", std::fs::read_to_string(&sim.config).unwrap());
        config = env.config_file(&format!("nerdctl-{}", unique_id("cfg")), &text);
    }
    let config = config.to_string_lossy().into_owned();
    let ctd = OwnContainerd::start(&env, &[("MICRUN_CONFIG", &config)]);
    let image = demo_image(&ctd.env);
    let n = Nerdctl::new(&ctd.env);
    Rig { n, ctd, sim, image }
}

impl Rig {
    /// `nerdctl run -d MODE.. --name NAME` of the demo RTOS; its id.
    fn run_detached(&self, name: &str, mode: &[&str], extra: &[&str]) -> String {
        let mut m = vec!["-d", "--name", name];
        m.extend_from_slice(mode);
        let mut x = vec!["--annotation", OS_ANNOTATION];
        x.extend_from_slice(extra);
        let r = self.n.run(&Nerdctl::run_args(&m, &x, &self.image, &[]));
        assert_eq!(r.code, 0, "nerdctl run -d {name}: {}\n{}", show(&r), self.ctd.log_about(name));
        let id = r.stdout.trim().to_string();
        assert_eq!(id.len(), 64, "nerdctl run -d prints the id: {}", show(&r));
        assert!(
            wait_until(Duration::from_secs(15), || self.ctd.env.task_status(&id).as_deref() == Some("RUNNING")),
            "{name} never RUNNING: {:?}\n{}",
            self.ctd.env.task_status(&id),
            self.ctd.log_about(&id)
        );
        assert!(self.sim.has_client(&id), "{name} ({id}) is no client of the simulator");
        assert_eq!(self.ctd.env.task_pid(&id), Some(0), "an RTOS has no host pid");
        id
    }

    /// No micad client, no shim work dir, no task, no nerdctl trace of the name.
    fn assert_gone(&self, name: &str, id: &str) {
        assert!(wait_until(Duration::from_secs(5), || !self.sim.has_client(id)), "micad client {id} left behind");
        mica_common::assert_nothing_left(&self.ctd.env, &self.sim, id);
        self.n.assert_forgotten(name, id);
    }
}

/// `nerdctl rm -f NAME` when dropped, so a failing test leaves nothing running.
struct Remove<'a>(&'a Nerdctl, &'a str);

impl Drop for Remove<'_> {
    fn drop(&mut self) {
        let _ = self.0.run_timeout(30, &["rm", "-f", self.1]);
    }
}

#[test]
fn nerdctl_rtos_detached_ps_exec_update_stop_rm_on_xen() {
    let rig = rig("xen");
    let n = &rig.n;
    let name = unique_id("nerdctl-rtos");
    let _cleanup = Remove(n, &name);
    let id = rig.run_detached(&name, &[], &XEN);
    n.assert_name_held(&name, &id);

    let st = n.ps_status(&name, false).unwrap_or_else(|| panic!("nerdctl ps does not name {name}: {:?}", n.ps(true)));
    assert!(st.starts_with("Up"), "nerdctl ps status of {name}: {st:?}");

    // exec: refused, an RTOS has no processes
    let r = n.run(&["exec", &name, "true"]);
    assert!(r.code != 0 && r.stderr.contains("no processes to exec into"), "nerdctl exec into an RTOS: {}", show(&r));
    assert_eq!(rig.ctd.env.task_status(&id).as_deref(), Some("RUNNING"), "a refused exec disturbed the RTOS");

    // update --memory: micad's `set memory` on Xen
    let r = n.run(&["update", "--memory", "1024m", &name]);
    assert_eq!(r.code, 0, "nerdctl update --memory 1024m: {}\n{}", show(&r), rig.ctd.log_about(&id));
    assert!(rig.sim.log().contains("set memory 1024"), "the simulator got no `set memory 1024`: {}", rig.sim.log());

    // stop: SIGTERM is micad's `stop`, exit 128+15
    let r = n.run_timeout(40, &["stop", &name]);
    assert_eq!(r.code, 0, "nerdctl stop: {}", show(&r));
    assert_eq!(n.inspect(&name, "{{.State.Status}}"), "exited");
    assert_eq!(n.inspect(&name, "{{.State.ExitCode}}"), "143");
    let st = n.ps_status(&name, true).unwrap_or_else(|| panic!("nerdctl ps -a lacks the stopped {name}"));
    assert!(st.starts_with("Exited (143)"), "nerdctl ps -a status of {name}: {st:?}");

    // rm: no micad client, no name reservation; the name is free again
    n.ok(&["rm", &name]);
    rig.assert_gone(&name, &id);
    let again = rig.run_detached(&name, &[], &XEN);
    assert_ne!(again, id);
    n.ok(&["rm", "-f", &name]);
    rig.assert_gone(&name, &again);
}

/// `nerdctl logs`: the console output of a `-d` RTOS, which nerdctl hands the
/// shim as a `binary://` logging URI (itself), with and without `-t`.
#[test]
fn nerdctl_rtos_logs_show_the_console() {
    let rig = rig("baremetal");
    let n = &rig.n;
    for mode in [&[][..], &["-t"][..]] {
        let name = unique_id("nerdctl-rtos-logs");
        let _cleanup = Remove(n, &name);
        let id = rig.run_detached(&name, mode, &[]);
        assert!(
            wait_until(Duration::from_secs(10), || n.run(&["logs", &name]).stdout.contains(BANNER)),
            "nerdctl logs of `run -d {mode:?}` lacks the banner: {}",
            show(&n.run(&["logs", &name]))
        );
        n.ok(&["rm", "-f", &name]);
        rig.assert_gone(&name, &id);
    }
}

/// nerdctl attaches only to a container started with `-it` (a `-d` one logs
/// through its logging driver and has no stdio to attach to: nerdctl's own
/// caveat), so: `run -it`, detach with ctrl-p ctrl-q, `attach`, type.
#[test]
fn nerdctl_rtos_run_it_detach_attach_stop_rm() {
    let rig = rig("baremetal");
    let n = &rig.n;
    let name = unique_id("nerdctl-rtos-it");
    let _cleanup = Remove(n, &name);
    let args = Nerdctl::run_args(&["-it", "--name", &name], &["--annotation", OS_ANNOTATION], &rig.image, &[]);
    let mut run = n.spawn_on_pty(&args, 60);
    assert!(run.wait_for(PROMPT, Duration::from_secs(20)), "no prompt on nerdctl run -it: {:?}", run.output.text());
    assert!(run.output.text().contains(BANNER), "no banner: {:?}", run.output.text());
    let id = n.id_of(&name);
    assert!(rig.sim.has_client(&id), "{name} is no client of the simulator");
    // ctrl-p ctrl-q: nerdctl leaves, the RTOS runs on
    run.type_in("\x10\x11");
    assert_eq!(run.wait(Duration::from_secs(15)), Some(0), "nerdctl run -it after ctrl-p ctrl-q: {:?}", run.output.text());
    assert_eq!(rig.ctd.env.task_status(&id).as_deref(), Some("RUNNING"), "detaching stopped the RTOS");

    let mut attach = n.spawn_on_pty(&["attach", &name], 60);
    // nerdctl attaches asynchronously: type until the answer shows (the
    // demo echoes typed input on a terminal; its answer starts a line)
    let answered = wait_until(Duration::from_secs(15), || {
        attach.type_in("echo attach-probe-42\r");
        std::thread::sleep(Duration::from_millis(300));
        attach.output.text().contains("\nattach-probe-42")
    });
    assert!(answered, "nerdctl attach {name}: no answer from the console: {:?}", attach.output.text());
    attach.type_in("\x10\x11");
    assert_eq!(attach.wait(Duration::from_secs(15)), Some(0), "nerdctl attach after ctrl-p ctrl-q: {:?}", attach.output.text());
    assert_eq!(rig.ctd.env.task_status(&id).as_deref(), Some("RUNNING"), "leaving attach stopped the RTOS");

    let r = n.run_timeout(40, &["stop", &name]);
    assert_eq!(r.code, 0, "nerdctl stop: {}", show(&r));
    assert_eq!(n.inspect(&name, "{{.State.ExitCode}}"), "143");
    n.ok(&["rm", &name]);
    rig.assert_gone(&name, &id);
}

/// The hooks nerdctl injects run on the RTOS route, each at its point: createRuntime
/// at Create (StartedAt recorded, its log written), postStop when the task is
/// deleted (the name released while the container record stays).
#[test]
fn nerdctl_rtos_runs_the_oci_hooks_nerdctl_injects() {
    let rig = rig("baremetal");
    check_hooks(&rig, &["--annotation", OS_ANNOTATION], &rig.image);
}

/// The same checks on a Linux container (crun runs the hooks): the control that
/// shows what the RTOS route must match.
#[test]
fn nerdctl_linux_runs_the_oci_hooks_nerdctl_injects() {
    let rig = rig("baremetal");
    let env = common::env();
    let r = rig.ctd.env.ctr(&["images", "import", env.state.join("busybox.tar").to_str().unwrap()]);
    assert_eq!(r.code, 0, "import busybox: {}", show(&r));
    check_hooks(&rig, &[], &env.image);
}

fn check_hooks(rig: &Rig, extra: &[&str], image: &str) {
    let n = &rig.n;
    let env = &rig.ctd.env;
    let name = unique_id("nerdctl-hooks");
    let _cleanup = Remove(n, &name);
    let cmd: &[&str] = if image == rig.image { &[] } else { &["sleep", "60"] };
    let r = n.run(&Nerdctl::run_args(&["-d", "--name", &name], extra, image, cmd));
    assert_eq!(r.code, 0, "nerdctl run -d: {}\n{}", show(&r), rig.ctd.log_about(&name));
    let id = r.stdout.trim().to_string();
    assert!(wait_until(Duration::from_secs(15), || env.task_status(&id).as_deref() == Some("RUNNING")), "never RUNNING");
    let state = n.state_dir(&id);
    let hook_log = |event: &str| std::fs::read_to_string(state.join(format!("oci-hook.{event}.log")));

    // createRuntime ran: its log exists (empty when all went well), StartedAt is set
    let created = hook_log("createRuntime");
    assert!(created.is_ok(), "no createRuntime hook log in {}: {created:?}\n{}", state.display(), rig.ctd.log_about(&id));
    assert_eq!(created.unwrap().trim(), "", "the createRuntime hook complained");
    let started = n.inspect(&name, "{{.State.StartedAt}}");
    assert!(!started.is_empty(), "nerdctl inspect has no StartedAt: the createRuntime hook did not record the start");
    assert!(hook_log("postStop").is_err(), "postStop ran while the container runs");
    n.assert_name_held(&name, &id);

    // postStop runs when the task is deleted: stop, then delete the task alone
    // (nerdctl rm would release the name itself too)
    let r = n.run_timeout(40, &["stop", &name]);
    assert_eq!(r.code, 0, "nerdctl stop: {}", show(&r));
    assert!(hook_log("postStop").is_err(), "postStop ran at stop, before the task was deleted");
    let r = env.ctr(&["tasks", "rm", &id]);
    assert_eq!(r.code, 0, "ctr task rm: {}\n{}", show(&r), rig.ctd.log_about(&id));
    let stopped = hook_log("postStop");
    assert!(stopped.is_ok(), "no postStop hook log in {} after the task's delete: {stopped:?}\n{}", state.display(), rig.ctd.log_about(&id));
    assert_eq!(stopped.unwrap().trim(), "", "the postStop hook complained");
    assert!(!n.name_file(&name).exists(), "postStop did not release the name {name}");
    assert!(n.ps_status(&name, true).is_some(), "the container record went with the task");

    n.ok(&["rm", &name]);
    n.assert_forgotten(&name, &id);
}

/// nerdctl 2.x `-l org.openeuler.micran.container.os=zephyr` never reaches the
/// spec (tests/nerdctl.rs shows the image then runs as Linux); with
/// `labels_as_annotations = true` the shim reads the label from containerd and
/// the container is an RTOS.
#[test]
fn nerdctl_rtos_by_label_with_labels_as_annotations() {
    let rig = rig_with("baremetal", "labels_as_annotations = true");
    let n = &rig.n;
    let name = unique_id("nerdctl-rtos-label");
    let _cleanup = Remove(n, &name);
    let r = n.run(&Nerdctl::run_args(&["-d", "--name", &name], &["--label", OS_ANNOTATION], &rig.image, &[]));
    assert_eq!(r.code, 0, "nerdctl run -d -l: {}\n{}", show(&r), rig.ctd.log_about(&name));
    let id = r.stdout.trim().to_string();
    assert!(wait_until(Duration::from_secs(15), || rig.sim.has_client(&id)), "{name} is no client of the simulator\n{}", rig.ctd.log_about(&id));
    let spec = std::fs::read_to_string(common::bundle_dir(&rig.ctd.env, &id).join("config.json")).unwrap();
    let spec: serde_json::Value = serde_json::from_str(&spec).unwrap();
    let key = OS_ANNOTATION.split('=').next().unwrap();
    assert!(spec["annotations"].get(key).is_none(), "the label reached the spec, so this proves nothing: {}", spec["annotations"]);
    assert_eq!(rig.ctd.env.task_pid(&id), Some(0), "an RTOS has no host pid");
    n.ok(&["rm", "-f", &name]);
    rig.assert_gone(&name, &id);
}
