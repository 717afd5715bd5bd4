//! Runtimes that refuse a spec version newer than they know. Debian 12's crun
//! 1.8.1 fails `create` with "unknown version specified" for any `ociVersion`
//! above 1.1, and containerd 2.3 writes 1.3.0, so without this no crun
//! container starts under containerd 2.x. A profile's `oci_version_max` names
//! the newest version its runtime accepts; a bundle above it is passed with
//! that version instead. Only the version string changes: fields of a newer
//! spec that the runtime does not implement have no effect either way.

use std::path::Path;

use crate::backend::{Error, Result};

/// `1.3.0`, `1.0.2-dev` → (1, 3, 0), (1, 0, 2); None for anything else.
fn parse(v: &str) -> Option<(u64, u64, u64)> {
    let core = v.split(['-', '+']).next()?;
    let mut parts = core.split('.').map(|p| p.parse::<u64>().ok());
    let major = parts.next()??;
    let minor = parts.next().flatten().unwrap_or(0);
    let patch = parts.next().flatten().unwrap_or(0);
    Some((major, minor, patch))
}

/// Lowers the bundle's `ociVersion` to `max` when it is newer; returns the
/// version it had when it was changed.
pub fn cap(bundle: &Path, max: &str) -> Result<Option<String>> {
    let limit = parse(max).ok_or_else(|| Error::InvalidArgument(format!("delegate profile: oci_version_max = {max:?} is not a version like 1.1.0")))?;
    let path = bundle.join("config.json");
    let text = std::fs::read(&path).map_err(|e| Error::failed(&format!("read {}", path.display()), e))?;
    let mut spec: serde_json::Value =
        serde_json::from_slice(&text).map_err(|e| Error::InvalidArgument(format!("{}: {e}", path.display())))?;
    let Some(version) = spec.get("ociVersion").and_then(|v| v.as_str()).map(str::to_string) else { return Ok(None) };
    match parse(&version) {
        Some(v) if v > limit => {}
        _ => return Ok(None),
    }
    spec["ociVersion"] = serde_json::Value::String(max.to_string());
    let tmp = bundle.join(".config.json.micrun");
    let body = serde_json::to_vec(&spec).expect("a parsed spec serializes");
    std::fs::write(&tmp, body)
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(|e| Error::failed(&format!("write {}", path.display()), e))?;
    Ok(Some(version))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle(version: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let spec = format!(r#"{{"ociVersion":"{version}","process":{{"args":["sh"]}},"root":{{"path":"rootfs"}}}}"#);
        std::fs::write(dir.path().join("config.json"), spec).unwrap();
        dir
    }

    fn version_in(dir: &Path) -> String {
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
        v["ociVersion"].as_str().unwrap().to_string()
    }

    #[test]
    fn a_newer_spec_is_lowered_and_nothing_else_changes() {
        let dir = bundle("1.3.0");
        assert_eq!(cap(dir.path(), "1.1.0").unwrap().as_deref(), Some("1.3.0"));
        assert_eq!(version_in(dir.path()), "1.1.0");
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.path().join("config.json")).unwrap()).unwrap();
        assert_eq!(v["process"]["args"][0], "sh");
        assert_eq!(v["root"]["path"], "rootfs");
        assert!(!dir.path().join(".config.json.micrun").exists());
    }

    #[test]
    fn an_accepted_spec_is_left_alone() {
        for v in ["1.0.2-dev", "1.1.0", "1.1.0-rc.1", "1.0"] {
            let dir = bundle(v);
            let before = std::fs::read(dir.path().join("config.json")).unwrap();
            assert_eq!(cap(dir.path(), "1.1.0").unwrap(), None, "{v}");
            assert_eq!(std::fs::read(dir.path().join("config.json")).unwrap(), before, "{v}");
        }
    }

    #[test]
    fn a_bad_limit_is_an_error_naming_it() {
        let dir = bundle("1.3.0");
        let e = cap(dir.path(), "new").unwrap_err().to_string();
        assert!(e.contains("oci_version_max"), "{e}");
    }
}
