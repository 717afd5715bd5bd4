//! `micrun image build`: packs RTOS firmware into an OCI image archive that
//! `ctr image import` takes (oci-layout, index.json, blobs/sha256).
//!
//! The image holds one gzip layer: the firmware at `/firmware.elf` and optional
//! pedestal files under `/pedestal/`. Its config labels and manifest annotations
//! carry the RTOS keys the runtime reads (`org.openeuler.micrun.container.os`,
//! `...container.firmware_path`), for tooling: containerd does not copy image
//! labels into a container's OCI annotations, so users still pass the os
//! annotation to `ctr run`.
//!
//! The output is deterministic: fixed mtimes and owners, sorted entries, no
//! timestamps in the JSON, so the same inputs give the same bytes and digests.
//!
//! Only the operator CLI compiles this module (src/bin/micrun.rs includes it by
//! path); it is not part of the library, so the shim never sees it.

pub mod cli;

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use flate2::{Compression, GzBuilder};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// Where the firmware lands in the image; the runtime's default firmware path.
pub const FIRMWARE_PATH: &str = "/firmware.elf";
/// Directory for pedestal files (e.g. a Xen kernel image or a jailhouse cell).
pub const PEDESTAL_DIR: &str = "/pedestal";
pub const LABEL_OS: &str = "org.openeuler.micrun.container.os";
pub const LABEL_FIRMWARE_PATH: &str = "org.openeuler.micrun.container.firmware_path";

pub const MEDIA_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MEDIA_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MEDIA_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MEDIA_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
const ANNOTATION_CONTAINERD_NAME: &str = "io.containerd.image.name";
const ELF_MAGIC: [u8; 4] = [0x7f, b'E', b'L', b'F'];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RtosOs {
    Zephyr,
    UniProton,
}

impl RtosOs {
    pub fn as_str(self) -> &'static str {
        match self {
            RtosOs::Zephyr => "zephyr",
            RtosOs::UniProton => "uniproton",
        }
    }
}

impl fmt::Display for RtosOs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RtosOs {
    type Err = ImageError;
    fn from_str(s: &str) -> Result<RtosOs, ImageError> {
        match s.to_ascii_lowercase().as_str() {
            "zephyr" => Ok(RtosOs::Zephyr),
            "uniproton" => Ok(RtosOs::UniProton),
            _ => Err(ImageError::UnknownOs(s.to_string())),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path} is not an ELF file (it starts with {start}, not the ELF magic 7f 45 4c 46): pass the firmware's ELF image (e.g. zephyr.elf), not a .bin or .hex")]
    NotElf { path: PathBuf, start: String },
    #[error("unknown RTOS os {0:?}: use zephyr or uniproton")]
    UnknownOs(String),
    #[error("invalid image reference {0:?}: give a full reference such as localhost/rtos/demo:1 (no spaces)")]
    BadReference(String),
    #[error("invalid annotation {0:?}: use KEY=VALUE with a non-empty KEY")]
    BadAnnotation(String),
    #[error("annotation {key}={value:?} contradicts {ours:?}, which micrun image build sets itself (use --os, or leave the key out)")]
    AnnotationConflict { key: String, value: String, ours: String },
    #[error("pedestal files {first} and {second} would both become {PEDESTAL_DIR}/{name}: rename one")]
    DuplicatePedestal { first: PathBuf, second: PathBuf, name: String },
    #[error("pedestal file {0} has no usable file name")]
    BadPedestalName(PathBuf),
    #[error("unsupported architecture {0:?}: give an OCI architecture such as amd64 or arm64")]
    BadArch(String),
}

/// What goes into the image.
#[derive(Debug, Clone)]
pub struct BuildSpec {
    pub firmware: PathBuf,
    pub reference: String,
    pub os: RtosOs,
    pub pedestal_files: Vec<PathBuf>,
    /// Extra labels and manifest annotations, `KEY=VALUE` already split.
    pub annotations: Vec<(String, String)>,
    /// OCI architecture of the Linux host that runs micad (not of the RTOS core):
    /// containerd imports and unpacks the image for its own platform.
    pub arch: String,
}

impl BuildSpec {
    pub fn new(firmware: impl Into<PathBuf>, reference: impl Into<String>) -> BuildSpec {
        BuildSpec {
            firmware: firmware.into(),
            reference: reference.into(),
            os: RtosOs::Zephyr,
            pedestal_files: Vec::new(),
            annotations: Vec::new(),
            arch: host_arch().to_string(),
        }
    }
}

/// A finished archive, in memory, with the digests a caller may want to show.
#[derive(Debug, Clone)]
pub struct ImageArchive {
    pub bytes: Vec<u8>,
    pub manifest_digest: String,
    pub config_digest: String,
    pub layer_digest: String,
    pub firmware_sha256: String,
}

/// The host's OCI (GOARCH) architecture name.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "loongarch64" => "loong64",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// Splits `KEY=VALUE`.
pub fn parse_annotation(s: &str) -> Result<(String, String), ImageError> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(ImageError::BadAnnotation(s.to_string())),
    }
}

fn sha256_hex(data: &[u8]) -> String {
    let d = Sha256::digest(data);
    let mut s = String::with_capacity(64);
    for b in d.iter() {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

fn read(path: &Path) -> Result<Vec<u8>, ImageError> {
    std::fs::read(path).map_err(|source| ImageError::Io { path: path.to_path_buf(), source })
}

fn check_elf(path: &Path, data: &[u8]) -> Result<(), ImageError> {
    if data.starts_with(&ELF_MAGIC) {
        return Ok(());
    }
    let start = if data.is_empty() {
        "nothing (the file is empty)".to_string()
    } else {
        data.iter().take(4).map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ")
    };
    Err(ImageError::NotElf { path: path.to_path_buf(), start })
}

fn check_reference(r: &str) -> Result<(), ImageError> {
    if r.is_empty() || r.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(ImageError::BadReference(r.to_string()));
    }
    Ok(())
}

/// A tar header with everything that could vary between builds fixed.
fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h
}

/// A deterministic tar: entries in the given order, fixed metadata.
/// Paths ending in `/` are directories.
fn tar_of(entries: &[(String, u32, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, mode, data) in entries {
        let kind = if path.ends_with('/') { tar::EntryType::Directory } else { tar::EntryType::Regular };
        let mut h = header(kind, *mode, data.len() as u64);
        b.append_data(&mut h, path, *data).expect("tar into memory");
    }
    b.into_inner().expect("tar into memory")
}

fn gzip(data: &[u8]) -> Vec<u8> {
    // mtime 0 and no file name in the gzip header: nothing that varies.
    let mut gz = GzBuilder::new().mtime(0).write(Vec::new(), Compression::best());
    gz.write_all(data).expect("gzip into memory");
    gz.finish().expect("gzip into memory")
}

fn json_bytes(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).expect("serialize JSON")
}

fn descriptor(media: &str, digest: &str, size: usize) -> Value {
    json!({ "mediaType": media, "digest": format!("sha256:{digest}"), "size": size })
}

/// Builds the archive in memory.
pub fn build(spec: &BuildSpec) -> Result<ImageArchive, ImageError> {
    check_reference(&spec.reference)?;
    if spec.arch.is_empty() || !spec.arch.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(ImageError::BadArch(spec.arch.clone()));
    }
    let firmware = read(&spec.firmware)?;
    check_elf(&spec.firmware, &firmware)?;

    // Labels: ours, then the user's, which may repeat ours but not contradict them.
    let mut labels: BTreeMap<String, String> = BTreeMap::new();
    labels.insert(LABEL_OS.into(), spec.os.to_string());
    labels.insert(LABEL_FIRMWARE_PATH.into(), FIRMWARE_PATH.into());
    for (k, v) in &spec.annotations {
        if k.is_empty() {
            return Err(ImageError::BadAnnotation(format!("={v}")));
        }
        // Either prefix names the same runtime key (annotations.rs).
        let ours = micrun::annotations::MICA_PREFIXES.iter().find_map(|p| k.strip_prefix(p)).and_then(|rest| {
            [LABEL_OS, LABEL_FIRMWARE_PATH].into_iter().find(|l| l.strip_prefix(micrun::annotations::MICA_PREFIXES[1]) == Some(rest))
        });
        if let Some(ours) = ours {
            if labels[ours] != *v {
                return Err(ImageError::AnnotationConflict { key: k.clone(), value: v.clone(), ours: labels[ours].clone() });
            }
        }
        labels.insert(k.clone(), v.clone());
    }

    // Pedestal files, sorted by their name in the image.
    let mut pedestal: BTreeMap<String, (PathBuf, Vec<u8>)> = BTreeMap::new();
    for p in &spec.pedestal_files {
        let name = p
            .file_name()
            .and_then(|n| n.to_str())
            .filter(|n| !n.is_empty() && *n != "." && *n != "..")
            .ok_or_else(|| ImageError::BadPedestalName(p.clone()))?
            .to_string();
        if let Some((first, _)) = pedestal.get(&name) {
            return Err(ImageError::DuplicatePedestal { first: first.clone(), second: p.clone(), name });
        }
        let data = read(p)?;
        pedestal.insert(name, (p.clone(), data));
    }

    // The layer.
    let mut entries: Vec<(String, u32, &[u8])> = vec![(FIRMWARE_PATH.trim_start_matches('/').into(), 0o755, &firmware)];
    if !pedestal.is_empty() {
        let dir = PEDESTAL_DIR.trim_start_matches('/');
        entries.push((format!("{dir}/"), 0o755, &[]));
        for (name, (_, data)) in &pedestal {
            entries.push((format!("{dir}/{name}"), 0o644, data));
        }
    }
    let layer_tar = tar_of(&entries);
    let diff_id = sha256_hex(&layer_tar);
    let layer = gzip(&layer_tar);
    let layer_digest = sha256_hex(&layer);

    let config = json_bytes(&json!({
        "architecture": spec.arch,
        "os": "linux",
        "config": {
            "Cmd": [FIRMWARE_PATH],
            "WorkingDir": "/",
            "Labels": labels,
        },
        "rootfs": { "type": "layers", "diff_ids": [format!("sha256:{diff_id}")] },
        "history": [{ "created_by": format!("micrun image build ({} firmware)", spec.os) }],
    }));
    let config_digest = sha256_hex(&config);

    let manifest = json_bytes(&json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": descriptor(MEDIA_CONFIG, &config_digest, config.len()),
        "layers": [descriptor(MEDIA_LAYER_GZIP, &layer_digest, layer.len())],
        "annotations": labels,
    }));
    let manifest_digest = sha256_hex(&manifest);

    let mut index_entry = descriptor(MEDIA_MANIFEST, &manifest_digest, manifest.len());
    index_entry["platform"] = json!({ "architecture": spec.arch, "os": "linux" });
    index_entry["annotations"] = json!({
        ANNOTATION_CONTAINERD_NAME: spec.reference,
        ANNOTATION_REF_NAME: spec.reference,
    });
    let index = json_bytes(&json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_INDEX,
        "manifests": [index_entry],
    }));
    let layout = json_bytes(&json!({ "imageLayoutVersion": "1.0.0" }));

    // The archive: sorted by path, blobs in digest order.
    let mut blobs = [(&config_digest, &config), (&layer_digest, &layer), (&manifest_digest, &manifest)];
    blobs.sort_by(|a, b| a.0.cmp(b.0));
    let mut outer: Vec<(String, u32, &[u8])> = vec![
        ("blobs/".into(), 0o755, &[]),
        ("blobs/sha256/".into(), 0o755, &[]),
    ];
    for (digest, data) in blobs {
        outer.push((format!("blobs/sha256/{digest}"), 0o644, data.as_slice()));
    }
    outer.push(("index.json".into(), 0o644, &index));
    outer.push(("oci-layout".into(), 0o644, &layout));
    let bytes = tar_of(&outer);

    Ok(ImageArchive { bytes, manifest_digest, config_digest, layer_digest, firmware_sha256: sha256_hex(&firmware) })
}

/// Builds the archive and writes it to `output` (through a temporary file in
/// the same directory, so a failed build leaves no half-written archive).
pub fn build_to_file(spec: &BuildSpec, output: &Path) -> Result<ImageArchive, ImageError> {
    let archive = build(spec)?;
    let io = |source| ImageError::Io { path: output.to_path_buf(), source };
    let name = output.file_name().ok_or_else(|| {
        io(std::io::Error::new(std::io::ErrorKind::InvalidInput, "the output needs a file name"))
    })?;
    let tmp = output.with_file_name(format!(".{}.tmp{}", name.to_string_lossy(), std::process::id()));
    let written = std::fs::write(&tmp, &archive.bytes).and_then(|_| std::fs::rename(&tmp, output));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(e));
    }
    Ok(archive)
}

#[cfg(test)]
mod tests;
