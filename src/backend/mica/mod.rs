//! The mica backend: RTOS clients of openEuler MICA's micad. The wire codec and
//! the client are here; the Instance lands with the mica issue, and until then the
//! route answers Create with a clear error instead of pretending.

pub mod client;
pub mod firmware;
pub mod protocol;
pub mod resources;
pub mod status;

use crate::backend::{CreateContext, Error, Result};

pub fn create(ctx: &CreateContext<'_>) -> Result<()> {
    Err(Error::Unimplemented(format!(
        "container {} routes to the mica (RTOS) backend ({}), which this build does not have yet; \
         remove the org.openeuler.micran.*/micrun.* annotations or set io.containerd.mica.v2.delegate to run it as a Linux container",
        ctx.id, ctx.decision.reason
    )))
}
