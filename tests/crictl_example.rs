//! The README's crictl walk-through (section "Kubernetes (CRI)"), run as
//! written: the real crictl (cri-tools v1.37.0, `MICRUN_CRICTL`, built by
//! scripts/lib-peers.sh) against the CRI-enabled containerd of
//! `bash scripts/test.sh`, with the pod and container files of
//! examples/crictl/ read unmodified. The images the files name are this
//! test's busybox and demo firmware images, tagged under those names in CRI's
//! namespace; the handler's micrun config points at a simulator of its own.
//!
//! Each step's output is what the README says it prints: `runp` and `create`
//! print ids, `ps` lists both containers Running, `exec` works in the Linux
//! container and is refused in the RTOS one, `logs` shows the Linux
//! container's line and the RTOS banner, `stats` has figures for the Linux
//! container only, and after `stopp` and `rmp` nothing is left.

mod common;
#[path = "common/cri.rs"]
mod cri;
#[path = "common/mica.rs"]
mod mica_common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::firmware::demo_image;
use common::leftovers::{assert_nothing_left, files_left, log_tail, CLEANUP_BOUND};
use common::procs::serving_shims;
use common::{show, wait_until, Env, Run};
use cri::{cri_env, CriEnv};
use mica_common::Sim;

const BANNER: &str = "*** Booting micrun demo RTOS v1 (native_sim) ***";
/// What app.json's command prints first (`$(hostname)` is the pod's hostname).
const APP_LINE: &str = "app: hello from the Linux side of mixed";
/// The files, as the README names them (relative to the repository root).
const POD: &str = "examples/crictl/pod.json";
const APP: &str = "examples/crictl/app.json";
const RTOS: &str = "examples/crictl/rtos.json";

/// crictl with a config file of its own (the README's /etc/crictl.yaml, here
/// pointing at the test's CRI containerd), run from the repository root.
struct Crictl {
    bin: PathBuf,
    config: PathBuf,
    _dir: tempfile::TempDir,
}

impl Crictl {
    fn new(env: &Env) -> Crictl {
        let bin = match std::env::var("MICRUN_CRICTL") {
            Ok(b) if !b.is_empty() => PathBuf::from(b),
            _ => panic!(
                "MICRUN_CRICTL is not set (or crictl could not be built): run this test with `bash scripts/test.sh crictl`, \
                 which builds crictl once per machine (scripts/lib-peers.sh micrun_crictl)"
            ),
        };
        assert!(bin.is_file(), "MICRUN_CRICTL={} is not a file", bin.display());
        let dir = tempfile::Builder::new().prefix("crictl").tempdir().unwrap();
        let config = dir.path().join("crictl.yaml");
        let endpoint = format!("unix://{}", env.address);
        std::fs::write(&config, format!("runtime-endpoint: {endpoint}\nimage-endpoint: {endpoint}\ntimeout: 30\n")).unwrap();
        Crictl { bin, config, _dir: dir }
    }

    /// `crictl ARGS...` from the repository root, killed after 60 s.
    fn run(&self, args: &[&str]) -> Run {
        let mut cmd = common::bounded(60, &self.bin);
        cmd.arg("--config").arg(&self.config).args(args).current_dir(env!("CARGO_MANIFEST_DIR"));
        cmd.output().unwrap_or_else(|e| panic!("run {}: {e}", self.bin.display())).into()
    }

    /// `crictl ARGS...`, which must succeed; its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let r = self.run(args);
        assert_eq!(r.code, 0, "crictl {}: {}", args.join(" "), show(&r));
        r.stdout
    }
}

/// Stops and removes the pod with crictl unless the test did, so a failing
/// test leaves no pod behind.
struct PodGuard<'a> {
    crictl: &'a Crictl,
    id: String,
    removed: bool,
}

impl Drop for PodGuard<'_> {
    fn drop(&mut self) {
        if !self.removed {
            let _ = self.crictl.run(&["stopp", &self.id]);
            let _ = self.crictl.run(&["rmp", &self.id]);
        }
    }
}

/// Removes the pod's log directory (kubelet's job, which `crictl rmp` leaves).
struct LogDir(PathBuf);

impl Drop for LogDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn json(path: &str) -> serde_json::Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn image_of(path: &str) -> String {
    json(path)["image"]["image"].as_str().unwrap_or_else(|| panic!("{path} names no image")).to_string()
}

/// `ctr images tag` in CRI's namespace: the image the test built, under the
/// name an example file uses.
fn tag(env: &Env, source: &str, name: &str) {
    let _ = env.ctr(&["images", "rm", name]);
    let r = env.ctr(&["images", "tag", source, name]);
    assert_eq!(r.code, 0, "ctr images tag {source} {name}: {}", show(&r));
}

/// A 64-hex CRI id: the only line crictl printed.
fn id_from(out: &str, what: &str) -> String {
    let id = out.trim();
    assert!(id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()), "{what} printed {out:?}, not an id");
    id.to_string()
}

/// The table row of a `crictl ps` or `crictl stats` listing for container `id`
/// (tables show the first 13 characters of an id), split at its column gaps.
fn row<'a>(table: &'a str, id: &str) -> Option<Vec<&'a str>> {
    let short = &id[..13];
    let line = table.lines().find(|l| l.starts_with(short))?;
    Some(line.split("   ").map(str::trim).filter(|f| !f.is_empty()).collect())
}

struct Setup {
    ce: CriEnv,
    sim: Sim,
    crictl: Crictl,
}

fn setup() -> Setup {
    let ce = cri_env();
    let crictl = Crictl::new(&ce.env);
    let sim = Sim::start(&ce.env, "baremetal");
    // the handler's ConfigPath (scripts/lib-cri.sh) names this file: the pod's
    // RTOS container reaches this test's simulator
    std::fs::copy(&sim.config, &ce.micrun_config).unwrap();
    let env = &ce.env;
    let demo = demo_image(env);
    for (source, file) in [(env.image.clone(), APP), (demo, RTOS)] {
        let name = image_of(file);
        tag(env, &source, &name);
        // CRI learns of a tagged image from containerd's event, asynchronously
        assert!(
            wait_until(Duration::from_secs(10), || crictl.run(&["inspecti", &name]).code == 0),
            "CRI does not know image {name} (tagged from {source}) within 10 s: {}",
            show(&crictl.run(&["inspecti", &name]))
        );
    }
    Setup { ce, sim, crictl }
}

#[test]
fn crictl_example_mixed_pod_runs_as_the_readme_shows() {
    let s = setup();
    let env = &s.ce.env;
    let c = &s.crictl;
    let log_dir = LogDir(PathBuf::from(json(POD)["log_directory"].as_str().expect("pod.json without log_directory")));
    // a leftover of an earlier, interrupted run would hold old log lines
    let _ = std::fs::remove_dir_all(&log_dir.0);

    // crictl runp --runtime mica examples/crictl/pod.json
    let t0 = Instant::now();
    let pod = id_from(&c.ok(&["runp", "--runtime", "mica", POD]), "runp");
    let t_runp = t0.elapsed();
    let mut guard = PodGuard { crictl: c, id: pod.clone(), removed: false };
    // crictl create POD examples/crictl/app.json examples/crictl/pod.json, the same for rtos.json
    let app = id_from(&c.ok(&["create", &pod, APP, POD]), "create app");
    let rtos = id_from(&c.ok(&["create", &pod, RTOS, POD]), "create rtos");
    // crictl start APP RTOS prints each id it started
    let out = c.ok(&["start", &app, &rtos]);
    assert_eq!(out.lines().collect::<Vec<_>>(), [app.as_str(), rtos.as_str()], "crictl start printed {out:?}");
    let t_started = t0.elapsed();

    // crictl ps: both containers Running in the pod, under the files' images;
    // the pod's name and namespace come from the labels the container files set
    let ps = c.ok(&["ps"]);
    eprintln!("$ crictl ps\n{ps}");
    for (name, id, file) in [("app", &app, APP), ("rtos", &rtos, RTOS)] {
        let r = row(&ps, id).unwrap_or_else(|| panic!("crictl ps lacks {name} ({id}):\n{ps}\n{}", log_tail(env, id)));
        let image = image_of(file);
        for want in ["Running", name, &pod[..13], image.as_str(), "mixed", "default"] {
            assert!(r.contains(&want), "crictl ps row of {name} lacks {want:?}: {r:?}\n{ps}");
        }
    }
    assert!(s.sim.has_client(&rtos), "rtos is no client of the simulator:\n{}", s.sim.log());

    // crictl exec APP hostname: the pod's hostname, from inside app
    let t_exec = Instant::now();
    let out = c.ok(&["exec", &app, "hostname"]);
    let t_exec = t_exec.elapsed();
    assert_eq!(out, "mixed\n", "crictl exec in app");
    // crictl exec RTOS true: refused, an RTOS has no processes to exec into
    let r = c.run(&["exec", &rtos, "true"]);
    assert_ne!(r.code, 0, "crictl exec in the RTOS container succeeded: {}", show(&r));
    eprintln!("$ crictl exec RTOS true\n{}", r.stderr);
    assert!(
        r.stderr.contains(&format!("execing command in container {rtos}: ")) && r.stderr.contains("an RTOS container has no processes to exec into"),
        "crictl exec in rtos: {}",
        show(&r)
    );

    // crictl logs: app's line; the RTOS console's banner
    let out = c.ok(&["logs", &app]);
    assert!(out.contains(APP_LINE), "crictl logs app: {out:?}");
    let logs = || c.run(&["logs", &rtos]);
    // the banner is what the firmware prints first; the console may still be on its way
    assert!(wait_until(Duration::from_secs(20), || logs().stdout.contains(BANNER)), "crictl logs rtos: {}", show(&logs()));

    // crictl stats: a row with figures for app; none for rtos, whose CRI stats
    // hold no CPU and no memory, which crictl's table leaves out
    let stats = c.ok(&["stats"]);
    eprintln!("$ crictl stats\n{stats}");
    let r = row(&stats, &app).unwrap_or_else(|| panic!("crictl stats lacks app:\n{stats}"));
    assert!(r.len() == 7 && r[1] == "app" && r[3] != "0B", "crictl stats row of app (MEM is the 4th column): {r:?}\n{stats}");
    assert!(row(&stats, &rtos).is_none(), "crictl stats shows the RTOS container:\n{stats}");
    let out = c.ok(&["stats", "-o", "json", &rtos]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("crictl stats -o json: {e}: {out}"));
    let st = &v["stats"][0];
    assert_eq!(st["attributes"]["id"], rtos.as_str(), "crictl stats -o json rtos: {out}");
    assert!(st["cpu"].is_null() && st["memory"].is_null(), "the RTOS container has CPU or memory figures: {out}");

    // positive controls for the checks after rmp
    for id in [&pod, &app, &rtos] {
        assert!(!files_left(env, id).is_empty(), "the running {id} shows no trace the cleanup check looks for");
    }
    let shims = serving_shims(env);
    assert_eq!(shims.len(), 1, "shim processes of the CRI containerd: {shims:?}");

    // crictl stopp POD; crictl rmp POD
    let t1 = Instant::now();
    let out = c.ok(&["stopp", &pod]);
    assert_eq!(out.trim(), format!("Stopped sandbox {pod}"), "crictl stopp");
    let out = c.ok(&["rmp", &pod]);
    assert_eq!(out.trim(), format!("Removed sandbox {pod}"), "crictl rmp");
    guard.removed = true;
    let t_down = t1.elapsed();
    let t_all = t0.elapsed();

    let pods = c.ok(&["pods", "-q"]);
    assert!(!pods.contains(&pod), "crictl pods still lists the pod: {pods}");
    assert!(wait_until(CLEANUP_BOUND, || serving_shims(env).is_empty()), "shims left: {:?}", serving_shims(env));
    assert!(!s.sim.has_client(&rtos), "the simulator still has client {rtos}");
    for id in [&pod, &app, &rtos] {
        assert_nothing_left(env, id);
    }
    eprintln!(
        "crictl walk-through: runp {t_runp:?}; runp to both started {t_started:?}; exec {t_exec:?}; \
         stopp+rmp {t_down:?}; whole sequence {t_all:?}"
    );
}
