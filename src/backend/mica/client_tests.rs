//! The client against the real simulator, run in-process on its own thread; the
//! failure modes the simulator cannot produce (silence, garbage) use bare sockets.

use std::time::Duration;

use tokio::io::AsyncWriteExt;

use super::*;
use crate::backend::mica::protocol::{ClientState, Pedestal};
use crate::sim::{Options, Simulator};

struct InProcessSim {
    dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl InProcessSim {
    fn start(pedestal: Pedestal) -> InProcessSim {
        let dir = tempfile::tempdir().unwrap();
        let opts = Options {
            socket_dir: dir.path().join("mica"),
            tty_dir: dir.path().join("dev"),
            pedestal,
            pid_file: None,
            faults: Default::default(),
        };
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                let sim = Simulator::bind(opts).await.unwrap();
                ready_tx.send(()).unwrap();
                tokio::select! {
                    r = sim.serve() => r.unwrap(),
                    _ = stop_rx => {}
                }
                sim.shut_down();
            });
        });
        ready_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        InProcessSim { dir, stop: Some(stop_tx), thread: Some(thread) }
    }

    fn client(&self) -> MicadClient {
        MicadClient::new(&config(self.dir.path().join("mica"), 5000))
    }
}

impl Drop for InProcessSim {
    fn drop(&mut self) {
        let _ = self.stop.take().map(|s| s.send(()));
        let _ = self.thread.take().map(|t| t.join());
    }
}

fn config(socket_dir: std::path::PathBuf, timeout_ms: u64) -> MicaConfig {
    MicaConfig { socket_dir, timeout_ms, start_timeout_ms: timeout_ms * 2, ..MicaConfig::default() }
}

#[tokio::test]
async fn lifecycle_on_xen() {
    let sim = InProcessSim::start(Pedestal::Xen);
    let c = sim.client();
    // what micad's Xen pedestal needs to build a domain config
    let msg = CreateMsg {
        vcpu_num: 1,
        memory_mib: 64,
        pedestal_config: "/boot/zephyr.bin".into(),
        ..CreateMsg::new("rtos-a", "/bin/cat", Pedestal::Xen, "0")
    };
    assert!(!c.exists("rtos-a"));
    c.create(&msg).await.unwrap();
    assert!(c.exists("rtos-a"));
    // micad: remoteproc_init leaves a new client Offline on every pedestal
    assert_eq!(c.status("rtos-a").await.unwrap().state, ClientState::Offline);
    c.set("rtos-a", SetKey::Memory, "64").await.unwrap();
    c.set("rtos-a", SetKey::Cpu, "0").await.unwrap();
    c.start("rtos-a").await.unwrap();
    let mut tty = None;
    for _ in 0..100 {
        let st = c.status("rtos-a").await.unwrap();
        assert_eq!(st.state, ClientState::Running);
        if let Some(t) = st.tty() {
            tty = Some(t.to_string());
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let tty = tty.expect("tty service announced");
    assert!(tty.ends_with("ttyRPMSG_rtos-a_0"), "{tty}");
    c.stop("rtos-a").await.unwrap();
    assert_eq!(c.status("rtos-a").await.unwrap().state, ClientState::Offline);
    c.rm("rtos-a").await.unwrap();
    for _ in 0..100 {
        if !c.exists("rtos-a") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!c.exists("rtos-a"));
}

#[tokio::test]
async fn failures_carry_micad_text() {
    let sim = InProcessSim::start(Pedestal::BareMetal);
    let c = sim.client();
    let e = c.create(&CreateMsg::new("x", "/nonexistent/fw.elf", Pedestal::BareMetal, "0")).await.unwrap_err();
    match &e {
        MicadError::Failed { text, .. } => assert_eq!(text, "No such file: /nonexistent/fw.elf"),
        other => panic!("{other:?}"),
    }
    c.create(&CreateMsg::new("x", "/bin/true", Pedestal::BareMetal, "0")).await.unwrap();
    // Bare metal has no `set`: MICA-FAILED without text, explained by our message.
    let e = c.set("x", SetKey::Memory, "64").await.unwrap_err().to_string();
    assert!(e.contains("set memory 64") && e.contains("without a reason"), "{e}");
    let e = c.gdb("x").await.unwrap_err().to_string();
    assert!(e.contains("The elf file does not support debugging"), "{e}");
    let e = c.start("nobody").await.unwrap_err();
    assert!(matches!(e, MicadError::NoSuchClient { ref name, .. } if name == "nobody"), "{e:?}");
}

#[tokio::test]
async fn not_running_names_the_dir() {
    let dir = tempfile::tempdir().unwrap();
    let c = MicadClient::new(&config(dir.path().to_path_buf(), 500));
    let e = c.status("x").await.unwrap_err();
    assert!(matches!(e, MicadError::NotRunning { .. }), "{e:?}");
    assert!(e.to_string().contains(&format!("micad is not running at {}", dir.path().display())), "{e}");
    // A stale socket left by a dead micad: connection refused.
    drop(std::os::unix::net::UnixListener::bind(dir.path().join("mica-create.socket")).unwrap());
    let e = c.create(&CreateMsg::new("x", "/bin/true", Pedestal::BareMetal, "0")).await.unwrap_err();
    assert!(matches!(e, MicadError::NotRunning { .. }), "{e:?}");
}

#[tokio::test]
async fn silence_is_a_bounded_timeout_naming_the_request() {
    let dir = tempfile::tempdir().unwrap();
    let _listener = std::os::unix::net::UnixListener::bind(dir.path().join("x.socket")).unwrap();
    let c = MicadClient::new(&config(dir.path().to_path_buf(), 200));
    let t0 = std::time::Instant::now();
    let e = c.stop("x").await.unwrap_err();
    assert!(matches!(e, MicadError::Timeout { .. }), "{e:?}");
    assert!(e.to_string().contains("`stop (x)` within 200 ms"), "{e}");
    assert!(t0.elapsed() < Duration::from_secs(2));
    // start waits for the longer start timeout.
    let t0 = std::time::Instant::now();
    let e = c.start("x").await.unwrap_err().to_string();
    assert!(e.contains("within 400 ms") && t0.elapsed() >= Duration::from_millis(400), "{e}");
}

#[tokio::test]
async fn eof_without_terminator_is_a_protocol_error() {
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::UnixListener::bind(dir.path().join("x.socket")).unwrap();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut req = [0u8; 32];
        let _ = tokio::io::AsyncReadExt::read(&mut s, &mut req).await;
        s.write_all(b"half an answer").await.unwrap();
    });
    let c = MicadClient::new(&config(dir.path().to_path_buf(), 2000));
    let e = c.status("x").await.unwrap_err();
    assert!(matches!(e, MicadError::Protocol { source: ProtocolError::NoTerminator(_), .. }), "{e:?}");
}
