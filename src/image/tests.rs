use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::Value;

use super::*;

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A scratch directory removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        let d = std::env::temp_dir()
            .join(format!("micrun-image-test-{}-{}", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed)));
        std::fs::create_dir_all(&d).unwrap();
        Scratch(d)
    }
    fn file(&self, name: &str, data: &[u8]) -> PathBuf {
        let p = self.0.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, data).unwrap();
        p
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn fake_elf(tail: &[u8]) -> Vec<u8> {
    let mut v = b"\x7fELF\x02\x01\x01\0".to_vec();
    v.extend_from_slice(tail);
    v
}

struct Entry {
    kind: tar::EntryType,
    mode: u32,
    mtime: u64,
    uid: u64,
    gid: u64,
    data: Vec<u8>,
}

/// Every entry of a tar, in archive order.
fn untar(bytes: &[u8]) -> Vec<(String, Entry)> {
    let mut a = tar::Archive::new(bytes);
    a.entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let path = e.path().unwrap().to_string_lossy().into_owned();
            let h = e.header();
            let (kind, mode, mtime, uid, gid) =
                (h.entry_type(), h.mode().unwrap(), h.mtime().unwrap(), h.uid().unwrap(), h.gid().unwrap());
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            (path, Entry { kind, mode, mtime, uid, gid, data })
        })
        .collect()
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes).read_to_end(&mut out).unwrap();
    out
}

fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap()
}

/// Resolves a descriptor against the blobs, checking its size.
fn blob<'a>(blobs: &'a BTreeMap<String, Vec<u8>>, desc: &Value) -> &'a [u8] {
    let digest = desc["digest"].as_str().unwrap();
    let hex = digest.strip_prefix("sha256:").unwrap();
    let data = blobs.get(hex).unwrap_or_else(|| panic!("descriptor {digest} has no blob"));
    assert_eq!(desc["size"].as_u64().unwrap(), data.len() as u64, "size of {digest}");
    data
}

#[test]
fn archive_layout_and_every_digest_verify() {
    let s = Scratch::new();
    let fw = fake_elf(b"firmware body");
    let mut spec = BuildSpec::new(s.file("zephyr.elf", &fw), "localhost/rtos/demo:1");
    spec.pedestal_files = vec![s.file("b/xen.bin", b"kernel"), s.file("a.cell", b"cell")];
    spec.annotations = vec![("com.example.board".into(), "qemu".into())];
    spec.arch = "arm64".into();
    let a = build(&spec).unwrap();

    let outer = untar(&a.bytes);
    let names: Vec<&str> = outer.iter().map(|(p, _)| p.as_str()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "archive entries are sorted");
    assert_eq!(names.len(), 2 + 3 + 2, "{names:?}");
    assert_eq!(&names[..2], ["blobs/", "blobs/sha256/"]);
    assert_eq!(&names[5..], ["index.json", "oci-layout"]);
    for (p, e) in &outer {
        assert_eq!((e.mtime, e.uid, e.gid), (0, 0, 0), "{p}");
        let dir = p.ends_with('/');
        assert_eq!(e.kind, if dir { tar::EntryType::Directory } else { tar::EntryType::Regular }, "{p}");
        assert_eq!(e.mode, if dir { 0o755 } else { 0o644 }, "{p}");
    }
    let file = |name: &str| &outer.iter().find(|(p, _)| p == name).unwrap().1.data;
    assert_eq!(json(file("oci-layout")), serde_json::json!({"imageLayoutVersion": "1.0.0"}));

    // Every blob is named by the sha256 of its bytes.
    let blobs: BTreeMap<String, Vec<u8>> = outer
        .iter()
        .filter_map(|(p, e)| p.strip_prefix("blobs/sha256/").filter(|h| !h.is_empty()).map(|h| (h.to_string(), e.data.clone())))
        .collect();
    assert_eq!(blobs.len(), 3);
    for (hex, data) in &blobs {
        assert_eq!(super::sha256_hex(data), *hex, "blob digest");
    }

    // index -> manifest, with both name annotations ctr import reads.
    let index = json(file("index.json"));
    assert_eq!(index["schemaVersion"], 2);
    assert_eq!(index["mediaType"], MEDIA_INDEX);
    let manifests = index["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 1);
    let m = &manifests[0];
    assert_eq!(m["mediaType"], MEDIA_MANIFEST);
    assert_eq!(m["annotations"]["org.opencontainers.image.ref.name"], "localhost/rtos/demo:1");
    assert_eq!(m["annotations"]["io.containerd.image.name"], "localhost/rtos/demo:1");
    assert_eq!(m["platform"], serde_json::json!({"architecture": "arm64", "os": "linux"}));
    assert_eq!(m["digest"], format!("sha256:{}", a.manifest_digest));

    // manifest -> config and layer.
    let manifest = json(blob(&blobs, m));
    assert_eq!(manifest["schemaVersion"], 2);
    assert_eq!(manifest["mediaType"], MEDIA_MANIFEST);
    assert_eq!(manifest["config"]["mediaType"], MEDIA_CONFIG);
    assert_eq!(manifest["annotations"][LABEL_OS], "zephyr");
    assert_eq!(manifest["annotations"][LABEL_FIRMWARE_PATH], "/firmware.elf");
    assert_eq!(manifest["annotations"]["com.example.board"], "qemu");
    let config = json(blob(&blobs, &manifest["config"]));
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1);
    assert_eq!(layers[0]["mediaType"], MEDIA_LAYER_GZIP);
    let layer_gz = blob(&blobs, &layers[0]);
    assert_eq!(format!("sha256:{}", a.config_digest), manifest["config"]["digest"]);
    assert_eq!(format!("sha256:{}", a.layer_digest), layers[0]["digest"]);

    // config: platform, labels, command, and the diff_id of the uncompressed layer.
    assert_eq!(config["architecture"], "arm64");
    assert_eq!(config["os"], "linux");
    assert_eq!(config["config"]["Cmd"], serde_json::json!(["/firmware.elf"]));
    let labels = &config["config"]["Labels"];
    assert_eq!(labels[LABEL_OS], "zephyr");
    assert_eq!(labels[LABEL_FIRMWARE_PATH], "/firmware.elf");
    assert_eq!(labels["com.example.board"], "qemu");
    assert!(config.get("created").is_none(), "no timestamps: they would break determinism");
    let layer_tar = gunzip(layer_gz);
    assert_eq!(config["rootfs"]["type"], "layers");
    assert_eq!(config["rootfs"]["diff_ids"], serde_json::json!([format!("sha256:{}", super::sha256_hex(&layer_tar))]));

    // The layer: firmware, then the pedestal files sorted by name.
    let layer = untar(&layer_tar);
    let names: Vec<&str> = layer.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(names, ["firmware.elf", "pedestal/", "pedestal/a.cell", "pedestal/xen.bin"]);
    assert_eq!(layer[0].1.data, fw);
    assert_eq!(layer[0].1.mode, 0o755);
    assert_eq!(layer[2].1.data, b"cell");
    assert_eq!(layer[3].1.data, b"kernel");
    for (p, e) in &layer {
        assert_eq!((e.mtime, e.uid, e.gid), (0, 0, 0), "{p}");
    }
    assert_eq!(a.firmware_sha256, super::sha256_hex(&fw));
}

#[test]
fn without_pedestal_files_the_layer_holds_only_the_firmware() {
    let s = Scratch::new();
    let a = build(&BuildSpec::new(s.file("fw.elf", &fake_elf(b"x")), "localhost/rtos/demo:1")).unwrap();
    let outer = untar(&a.bytes);
    let layer = &outer.iter().find(|(p, _)| p.ends_with(&a.layer_digest)).unwrap().1.data;
    let names: Vec<String> = untar(&gunzip(layer)).into_iter().map(|(p, _)| p).collect();
    assert_eq!(names, ["firmware.elf"]);
}

#[test]
fn same_inputs_give_the_same_bytes() {
    let s = Scratch::new();
    let fw = s.file("fw.elf", &fake_elf(&[7u8; 5000]));
    let (p1, p2) = (s.file("p/one.bin", b"1"), s.file("p/two.cfg", b"2"));
    let mut spec = BuildSpec::new(&fw, "localhost/rtos/demo:1");
    spec.pedestal_files = vec![p1.clone(), p2.clone()];
    let first = build(&spec).unwrap();
    let second = build(&spec).unwrap();
    assert_eq!(first.bytes, second.bytes);
    assert_eq!(first.manifest_digest, second.manifest_digest);

    // The order pedestal files are given in does not matter.
    spec.pedestal_files = vec![p2, p1];
    assert_eq!(build(&spec).unwrap().bytes, first.bytes);

    // Written to disk: the same bytes again.
    let out = s.0.join("out/image.tar");
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    build_to_file(&spec, &out).unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), first.bytes);
    assert_eq!(std::fs::read_dir(out.parent().unwrap()).unwrap().count(), 1, "no temporary file left");

    // A different firmware is a different image.
    let other = BuildSpec::new(s.file("fw2.elf", &fake_elf(&[8u8; 5000])), "localhost/rtos/demo:1");
    assert_ne!(build(&other).unwrap().manifest_digest, first.manifest_digest);
}

#[test]
fn non_elf_firmware_is_rejected_with_what_it_is() {
    let s = Scratch::new();
    let out = s.0.join("image.tar");
    for (name, data, expect) in [
        ("zephyr.bin", &b"\x00\x10\x00\x20rest of a raw image"[..], "00 10 00 20"),
        ("empty.elf", b"", "empty"),
        ("short.elf", b"\x7fEL", "7f 45 4c"),
    ] {
        let fw = s.file(name, data);
        let e = build_to_file(&BuildSpec::new(&fw, "localhost/rtos/demo:1"), &out).unwrap_err();
        assert!(matches!(e, ImageError::NotElf { .. }), "{e:?}");
        let msg = e.to_string();
        assert!(msg.contains(&fw.display().to_string()) && msg.contains("not an ELF") && msg.contains(expect), "{msg}");
        assert!(!out.exists(), "nothing written for a rejected firmware");
    }
    let missing = s.0.join("missing.elf");
    let e = build(&BuildSpec::new(&missing, "localhost/rtos/demo:1")).unwrap_err();
    assert!(e.to_string().contains("missing.elf"), "{e}");
}

#[test]
fn annotations_may_repeat_but_not_contradict_ours() {
    let s = Scratch::new();
    let fw = s.file("fw.elf", &fake_elf(b""));
    let mut spec = BuildSpec::new(&fw, "localhost/rtos/demo:1");
    spec.os = RtosOs::UniProton;
    spec.annotations = vec![("org.openeuler.micran.container.os".into(), "zephyr".into())];
    let e = build(&spec).unwrap_err().to_string();
    assert!(e.contains("org.openeuler.micran.container.os") && e.contains("uniproton"), "{e}");

    spec.annotations = vec![("org.openeuler.micrun.container.firmware_path".into(), "/other.elf".into())];
    assert!(matches!(build(&spec), Err(ImageError::AnnotationConflict { .. })));

    spec.annotations = vec![("org.openeuler.micran.container.os".into(), "uniproton".into())];
    let a = build(&spec).unwrap();
    let text = String::from_utf8_lossy(&a.bytes);
    assert!(text.contains(r#""org.openeuler.micrun.container.os":"uniproton""#));
}

#[test]
fn input_errors_say_what_to_fix() {
    assert_eq!(parse_annotation("a=b=c").unwrap(), ("a".into(), "b=c".into()));
    assert_eq!(parse_annotation("a=").unwrap(), ("a".into(), "".into()));
    assert!(parse_annotation("novalue").is_err());
    assert!(parse_annotation("=v").is_err());
    assert_eq!("Zephyr".parse::<RtosOs>().unwrap(), RtosOs::Zephyr);
    assert_eq!("uniproton".parse::<RtosOs>().unwrap(), RtosOs::UniProton);
    assert!("linux".parse::<RtosOs>().unwrap_err().to_string().contains("zephyr or uniproton"));

    let s = Scratch::new();
    let fw = s.file("fw.elf", &fake_elf(b""));
    assert!(matches!(build(&BuildSpec::new(&fw, "bad ref")), Err(ImageError::BadReference(_))));
    assert!(matches!(build(&BuildSpec::new(&fw, "")), Err(ImageError::BadReference(_))));
    let mut spec = BuildSpec::new(&fw, "localhost/rtos/demo:1");
    spec.pedestal_files = vec![s.file("a/xen.bin", b"1"), s.file("b/xen.bin", b"2")];
    let e = build(&spec).unwrap_err().to_string();
    assert!(e.contains("a/xen.bin") && e.contains("b/xen.bin") && e.contains("/pedestal/xen.bin"), "{e}");
    spec.pedestal_files = vec![Path::new("/").to_path_buf()];
    assert!(matches!(build(&spec), Err(ImageError::BadPedestalName(_))));
    spec.pedestal_files.clear();
    spec.arch = "arm/v7".into();
    assert!(matches!(build(&spec), Err(ImageError::BadArch(_))));
}
