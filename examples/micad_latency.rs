//! Raw micad protocol latency: times create, start, stop and rm of one RTOS
//! client through the library's `MicadClient`, N times, against a running micad
//! (or `micrun sim`). bench/rtos.sh compares this with the same life through
//! containerd and the shim.
//!
//!   cargo run --release --example micad_latency -- --socket-dir D --firmware F --runs N [--cpu C]
//!
//! Prints one line per run and a summary line
//! `raw create+start+stop+rm: runs N mean X ms median Y ms`.

use std::path::PathBuf;
use std::time::Instant;

use micrun::backend::mica::client::MicadClient;
use micrun::backend::mica::protocol::{CreateMsg, Pedestal};
use micrun::config::MicaConfig;

fn usage() -> ! {
    eprintln!("usage: micad_latency --socket-dir DIR --firmware FILE [--runs N] [--cpu LIST]");
    std::process::exit(2)
}

fn main() {
    let mut socket_dir = None;
    let mut firmware = None;
    let mut runs = 10usize;
    let mut cpu = "0".to_string();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--socket-dir" => socket_dir = Some(PathBuf::from(val())),
            "--firmware" => firmware = Some(val()),
            "--runs" => runs = val().parse().unwrap_or_else(|_| usage()),
            "--cpu" => cpu = val(),
            _ => usage(),
        }
    }
    let (Some(socket_dir), Some(firmware)) = (socket_dir, firmware) else { usage() };
    let client = MicadClient::new(&MicaConfig { socket_dir, ..MicaConfig::default() });
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    let mut ms: Vec<f64> = Vec::with_capacity(runs);
    rt.block_on(async {
        for i in 0..runs {
            let name = format!("lat-{}-{i}", std::process::id());
            let msg = CreateMsg { vcpu_num: 1, ..CreateMsg::new(&name, &firmware, Pedestal::BareMetal, &cpu) };
            let t = Instant::now();
            client.create(&msg).await.unwrap_or_else(|e| panic!("create {name}: {e}"));
            client.start(&name).await.unwrap_or_else(|e| panic!("start {name}: {e}"));
            client.stop(&name).await.unwrap_or_else(|e| panic!("stop {name}: {e}"));
            client.rm(&name).await.unwrap_or_else(|e| panic!("rm {name}: {e}"));
            let d = t.elapsed().as_secs_f64() * 1000.0;
            println!("run {i}: {d:.2} ms");
            ms.push(d);
        }
    });
    let mean = ms.iter().sum::<f64>() / ms.len().max(1) as f64;
    let mut sorted = ms.clone();
    sorted.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let median = match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    };
    println!("raw create+start+stop+rm: runs {} mean {mean:.2} ms median {median:.2} ms", ms.len());
}
