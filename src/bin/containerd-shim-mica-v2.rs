//! The shim binary containerd starts for `io.containerd.mica.v2`.

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // The pod's namespace holder: the shim re-run by itself, before any thread exists.
    if args.get(1).map(String::as_str) == Some(micrun::backend::holder::process::ARG) {
        micrun::backend::holder::process::main();
    }
    // containerd 2.x's feature probe: no runtime, no socket, one answer on stdout.
    if micrun::shim::info::requested(&args) {
        std::process::exit(match micrun::shim::info::answer() {
            Ok(bytes) => {
                use std::io::Write;
                let mut out = std::io::stdout().lock();
                if out.write_all(&bytes).and_then(|()| out.flush()).is_ok() { 0 } else { 1 }
            }
            Err(e) => {
                eprintln!("{}: -info: {e}", micrun::RUNTIME_NAME);
                1
            }
        });
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    // Serving is ours (Task and Sandbox services on one socket); `start` and
    // `delete` are the crate's.
    match containerd_shim::parse(&args[1..]) {
        Ok(flags) if micrun::shim::serve::requested(&flags) => {
            if let Err(e) = runtime.block_on(micrun::shim::serve::serve(flags)) {
                eprintln!("{}: {e}", micrun::RUNTIME_NAME);
                std::process::exit(1);
            }
        }
        _ => runtime.block_on(containerd_shim::run::<micrun::shim::MicaShim>(micrun::RUNTIME_NAME, None)),
    }
}
