//! Each mica annotation: accepted forms, refused forms, and the refusal naming
//! the full annotation and its value.

use std::collections::HashMap;

use super::*;

fn parse(pairs: &[(&str, &str)]) -> Result<MicaSettings> {
    let raw: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    MicaSettings::parse(&Annotations::parse(&raw).unwrap())
}

fn one(key: &str, value: &str) -> Result<MicaSettings> {
    parse(&[(&format!("org.openeuler.micran.{key}"), value)])
}

/// Refused as InvalidArgument, naming the full key (with the prefix used) and the value.
fn refused(key: &str, value: &str) {
    let full = format!("org.openeuler.micrun.{key}");
    let e = parse(&[(&full, value)]).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains(&full), "{msg}");
    assert!(msg.contains("expected"), "{msg}");
    if !value.trim().is_empty() {
        assert!(msg.contains(value.trim()), "{msg}");
    }
}

#[test]
fn defaults_without_annotations() {
    let s = parse(&[]).unwrap();
    assert_eq!(s.os, None);
    assert_eq!(s.firmware_path, None);
    assert_eq!(s.firmware_hash, None);
    assert_eq!(s.min_memory_mib, None);
    assert_eq!(s.max_vcpu_num, None);
    assert!(!s.auto_close, "auto_close is opt-in");
    assert_eq!(s.pedestal, Pedestal::BareMetal);
    assert_eq!(s.pedestal_conf, None);
    assert!(!s.debug);
    assert!(s.unknown.is_empty());
}

#[test]
fn os() {
    assert_eq!(one(OS, "Zephyr").unwrap().os.as_deref(), Some("zephyr"));
    assert_eq!(one(OS, "uniproton").unwrap().os.as_deref(), Some("uniproton"));
    assert_eq!(one(OS, "free-rtos_10.5").unwrap().os.as_deref(), Some("free-rtos_10.5"));
    refused(OS, "");
    refused(OS, "zephyr rtos");
    refused(OS, "zephyr;rm");
}

#[test]
fn firmware_path() {
    assert_eq!(one(FIRMWARE_PATH, "/lib/firmware/rtos.elf").unwrap().firmware_path.as_deref(), Some("/lib/firmware/rtos.elf"));
    // `..` and symlinks are firmware.rs's to refuse, against the real rootfs.
    refused(FIRMWARE_PATH, " ");
}

#[test]
fn firmware_hash() {
    let hex = "ab".repeat(32);
    assert_eq!(one(FIRMWARE_HASH, &hex).unwrap().firmware_hash, Some(hex.clone()));
    assert_eq!(one(FIRMWARE_HASH, &format!("sha256:{}", hex.to_uppercase())).unwrap().firmware_hash, Some(hex.clone()));
    refused(FIRMWARE_HASH, "");
    refused(FIRMWARE_HASH, &hex[..63]);
    refused(FIRMWARE_HASH, &format!("{hex}0"));
    refused(FIRMWARE_HASH, &format!("sha512:{hex}"));
    refused(FIRMWARE_HASH, &"zz".repeat(32));
}

#[test]
fn min_memory_mb() {
    assert_eq!(one(MIN_MEMORY_MB, "64").unwrap().min_memory_mib, Some(64));
    assert_eq!(one(MIN_MEMORY_MB, "2147483647").unwrap().min_memory_mib, Some(i32::MAX));
    for bad in ["0", "-1", "+5", "1.5", "64M", "2147483648", "", "sixty"] {
        refused(MIN_MEMORY_MB, bad);
    }
}

#[test]
fn max_vcpu_num() {
    assert_eq!(one(MAX_VCPU_NUM, "4").unwrap().max_vcpu_num, Some(4));
    for bad in ["0", "-2", "4 ", "four", "99999999999", ""] {
        if bad == "4 " {
            // Values are trimmed: trailing space is accepted.
            assert_eq!(one(MAX_VCPU_NUM, bad).unwrap().max_vcpu_num, Some(4));
            continue;
        }
        refused(MAX_VCPU_NUM, bad);
    }
}

#[test]
fn auto_close_and_its_alias() {
    assert!(one(AUTO_CLOSE, "true").unwrap().auto_close);
    assert!(one(AUTO_CLOSE, "1").unwrap().auto_close);
    assert!(one(AUTO_CLOSE, "TRUE").unwrap().auto_close);
    assert!(!one(AUTO_CLOSE, "false").unwrap().auto_close);
    assert!(!one(AUTO_CLOSE, "0").unwrap().auto_close);
    assert!(one("auto_disconnect", "true").unwrap().auto_close);
    refused(AUTO_CLOSE, "yes");
    refused(AUTO_CLOSE, "30");
    refused(AUTO_CLOSE, "");
    // The alias is named as written.
    let e = one("auto_disconnect", "maybe").unwrap_err().to_string();
    assert!(e.contains("org.openeuler.micran.auto_disconnect=\"maybe\""), "{e}");
}

#[test]
fn pedestal() {
    assert_eq!(one(PEDESTAL, "Xen").unwrap().pedestal, Pedestal::Xen);
    assert_eq!(one(PEDESTAL, "baremetal").unwrap().pedestal, Pedestal::BareMetal);
    assert_eq!(one(PEDESTAL, "bare-metal").unwrap().pedestal, Pedestal::BareMetal);
    assert_eq!(one(PEDESTAL, "jailhouse").unwrap().pedestal, Pedestal::Jailhouse);
    assert_eq!(one(PEDESTAL, "hetero").unwrap().pedestal, Pedestal::Hetero);
    refused(PEDESTAL, "kvm");
    refused(PEDESTAL, "");
    assert!(one(PEDESTAL, "kvm").unwrap_err().to_string().contains("expected baremetal, xen"));
}

#[test]
fn pedestal_conf() {
    assert_eq!(one(PEDESTAL_CONF, "/boot/zephyr.img").unwrap().pedestal_conf.as_deref(), Some("/boot/zephyr.img"));
    refused(PEDESTAL_CONF, "");
}

#[test]
fn debug() {
    assert!(one(DEBUG, "true").unwrap().debug);
    assert!(one(DEBUG, "1").unwrap().debug);
    assert!(!one(DEBUG, "0").unwrap().debug);
    refused(DEBUG, "on");
    refused(DEBUG, "");
}

#[test]
fn unknown_keys_are_listed_not_refused() {
    let s = parse(&[
        ("org.openeuler.micrun.container.new_thing", "x"),
        ("org.openeuler.micran.ped.extra", "y"),
        ("org.openeuler.micran.container.os", "zephyr"),
    ])
    .unwrap();
    assert_eq!(s.unknown, vec!["org.openeuler.micrun.container.new_thing".to_string(), "org.openeuler.micran.ped.extra".to_string()]);
    assert_eq!(s.os.as_deref(), Some("zephyr"));
}
