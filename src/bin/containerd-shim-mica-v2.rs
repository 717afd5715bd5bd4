//! The shim binary containerd starts for `io.containerd.mica.v2`.

#[tokio::main(flavor = "current_thread")]
async fn main() {
    containerd_shim::run::<micrun::shim::MicaShim>("io.containerd.mica.v2", None).await;
}
