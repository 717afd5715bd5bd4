//! containerd's event stream (`ctr events`), collected while a test acts.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use super::{bounded, show, unique_id, wait_until, Env};

/// containerd's event stream (`ctr events`), collected by a thread, each line
/// stamped with the wall time it reached us. Started before the action it
/// observes; synchronised so that no event after `start` returns can be missed.
pub struct Events {
    child: Child,
    lines: Arc<Mutex<Vec<(SystemTime, String)>>>,
}

impl Events {
    pub fn start(env: &Env) -> Events {
        // `timeout` bounds ctr even if this test process dies; on drop it is sent
        // TERM, which it forwards to ctr.
        let mut child = bounded(300, "ctr")
            .args(["--address", &env.address, "events"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn ctr events");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let out = child.stdout.take().unwrap();
        let sink = lines.clone();
        std::thread::spawn(move || {
            let mut out = BufReader::new(out);
            let mut buf = Vec::new();
            // bytes, not `lines()`: one line that is not UTF-8 must not end the stream
            while out.read_until(b'\n', &mut buf).is_ok_and(|n| n > 0) {
                let line = String::from_utf8_lossy(&buf).trim_end().to_string();
                sink.lock().unwrap().push((SystemTime::now(), line));
                buf.clear();
            }
        });
        let ev = Events { child, lines };
        // An event of our own making: once one shows, the subscription is live.
        // ctr subscribes some time after it starts, so keep making them until one arrives.
        let start = Instant::now();
        let mut tokens = Vec::new();
        loop {
            let token = unique_id("sync");
            let r = env.ctr(&["namespaces", "label", &env.namespace, &format!("micrun.test/events-sync={token}")]);
            assert_eq!(r.code, 0, "ctr namespaces label: {}", show(&r));
            tokens.push(token);
            let seen = || ev.lines.lock().unwrap().iter().any(|(_, l)| tokens.iter().any(|t| l.contains(t.as_str())));
            if wait_until(Duration::from_millis(500), seen) {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "ctr events showed none of our /namespaces/update events within 20 s: {}",
                ev.dump()
            );
        }
        ev
    }

    /// (index, topic, payload) of the events about container `id`, in order.
    pub fn about(&self, id: &str) -> Vec<(usize, String, serde_json::Value)> {
        let lines = self.lines.lock().unwrap();
        lines
            .iter()
            .enumerate()
            .filter_map(|(i, (_, l))| {
                let brace = l.find('{')?;
                let topic = l[..brace].split_whitespace().last()?.to_string();
                let v: serde_json::Value = serde_json::from_str(&l[brace..]).ok()?;
                (v["container_id"].as_str() == Some(id)).then_some((i, topic, v))
            })
            .collect()
    }

    pub fn wait_for(&self, id: &str, topic: &str, bound: Duration) -> Option<serde_json::Value> {
        let mut found = None;
        wait_until(bound, || {
            found = self.about(id).into_iter().find(|(_, t, _)| t == topic).map(|(_, _, v)| v);
            found.is_some()
        });
        found
    }

    /// When the first `topic` event about container `id` reached us.
    pub fn arrival(&self, topic: &str, id: &str) -> Option<SystemTime> {
        let at = self.about(id).into_iter().find(|(_, t, _)| t == topic).map(|(i, _, _)| i)?;
        Some(self.lines.lock().unwrap()[at].0)
    }

    pub fn dump(&self) -> String {
        self.lines.lock().unwrap().iter().map(|(_, l)| l.as_str()).collect::<Vec<_>>().join("\n")
    }
}

impl Drop for Events {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), nix::sys::signal::Signal::SIGTERM);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
