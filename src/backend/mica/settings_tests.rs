//! Each mica annotation: accepted forms, refused forms, and the refusal naming
//! the full annotation and its value.

use std::collections::HashMap;
use std::time::Duration;

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
    assert_eq!(s.auto_close, None, "auto-close is opt-in");
    assert!(!s.gdb && !s.runtime_debug);
    assert_eq!(s.pedestal, Pedestal::BareMetal);
    assert_eq!(s.pedestal_conf, None);
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
    let on = Some(AUTO_CLOSE_DEFAULT);
    for v in ["true", "1", "TRUE", "t", "T", "True"] {
        assert_eq!(one(AUTO_CLOSE, v).unwrap().auto_close, on, "{v}");
    }
    for v in ["false", "0", "f", "False"] {
        assert_eq!(one(AUTO_CLOSE, v).unwrap().auto_close, None, "{v}");
    }
    assert_eq!(one("auto_disconnect", "true").unwrap().auto_close, on);
    refused(AUTO_CLOSE, "yes");
    refused(AUTO_CLOSE, "");
    // A duration in the boolean key: refused, pointing at the timeout key.
    let e = one(AUTO_CLOSE, "30").unwrap_err().to_string();
    assert!(e.contains("org.openeuler.micrun.container.auto_close_timeout"), "{e}");
    // The alias is named as written.
    let e = one("auto_disconnect", "maybe").unwrap_err().to_string();
    assert!(e.contains("org.openeuler.micran.auto_disconnect=\"maybe\""), "{e}");
}

/// Upstream's precedence (service_policy.go): the timeout wins over
/// `auto_close`, and `0` turns auto-close off even with `auto_close=true`.
#[test]
fn auto_close_timeout_forms_and_precedence() {
    let secs = |s: u64| Some(Duration::from_secs(s));
    for (v, want) in [
        ("60", secs(60)),
        ("60s", secs(60)),
        ("5m", secs(300)),
        ("1h30m", secs(5400)),
        ("1.5s", Some(Duration::from_millis(1500))),
        ("500ms", Some(Duration::from_millis(500))),
        ("1ns", Some(Duration::from_nanos(1))),
        ("0", None),
        ("0s", None),
    ] {
        assert_eq!(one(AUTO_CLOSE_TIMEOUT, v).unwrap().auto_close, want, "{v}");
    }
    for bad in ["-5s", "-1", "5x", "s", "1.2.3s", "", "5 s"] {
        refused(AUTO_CLOSE_TIMEOUT, bad);
    }
    let both = |close: &str, timeout: &str| {
        parse(&[
            ("org.openeuler.micrun.container.auto_close", close),
            ("org.openeuler.micrun.container.auto_close_timeout", timeout),
        ])
        .unwrap()
        .auto_close
    };
    assert_eq!(both("false", "10s"), secs(10), "the timeout wins over auto_close=false");
    assert_eq!(both("true", "0"), None, "0 turns it off");
    assert_eq!(both("true", "7"), secs(7));
}

#[test]
fn upstreams_old_timeout_key_is_refused_naming_the_new_one() {
    let e = one(AUTO_DISCONNECT_TIMEOUT, "100").unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains("org.openeuler.micran.container.auto_disconnect_timeout"), "{msg}");
    assert!(msg.contains("container.auto_close_timeout"), "{msg}");
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
fn gdb_and_runtime_debug() {
    assert!(one(GDB, "true").unwrap().gdb);
    assert!(!one(GDB, "0").unwrap().gdb);
    refused(GDB, "on");
    // runtime.debug is upstream's runtime flag: never micad's debug service.
    let s = one(RUNTIME_DEBUG, "true").unwrap();
    assert!(s.runtime_debug && !s.gdb);
    refused(RUNTIME_DEBUG, "");
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
