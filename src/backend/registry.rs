//! The one place that names the backends: which one serves a route, and which
//! one reads a record back after a shim died.

use std::path::Path;

use super::{delegate, holder, mica, Backend, Error, Leftovers, Result};
use crate::router::Route;

static DELEGATE: delegate::DelegateBackend = delegate::DelegateBackend;
static MICA: mica::MicaBackend = mica::MicaBackend;
static HOLDER: holder::HolderBackend = holder::HolderBackend;

const ALL: [&dyn Backend; 3] = [&DELEGATE, &MICA, &HOLDER];

pub fn backend_for(route: &Route) -> &'static dyn Backend {
    match route {
        Route::Delegate(_) => &DELEGATE,
        Route::Mica => &MICA,
        Route::Holder => &HOLDER,
    }
}

/// Hands each record of a dead shim's container to the backend that wrote it.
pub async fn cleanup_dead(left: Leftovers, bundle: &Path, id: &str) -> Result<()> {
    for (name, record) in left.0 {
        if record.is_null() {
            continue;
        }
        let backend = ALL
            .iter()
            .find(|b| b.name() == name)
            .ok_or_else(|| Error::Failed(format!("the container's state names backend {name:?}, which this micrun does not have")))?;
        backend.cleanup(record, bundle, id).await?;
    }
    Ok(())
}
