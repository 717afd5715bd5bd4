//! Annotations are written by whoever runs the container. Maps are built mostly
//! from the keys micrun knows, under both upstream prefixes, with values that
//! are either plausible or arbitrary; the typed RTOS settings are parsed from
//! whatever `Annotations::parse` accepts.
#![no_main]

use std::collections::HashMap;

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use micrun::annotations::{self, Annotations, MICA_PREFIXES, MICA_SELECTOR_KEY};
use micrun::backend::mica::settings::{self, MicaSettings};

/// Keys after a mica prefix that the parsers give meaning to.
const MICA_KEYS: &[&str] = &[
    settings::OS,
    settings::FIRMWARE_PATH,
    settings::FIRMWARE_HASH,
    settings::MIN_MEMORY_MB,
    settings::MAX_VCPU_NUM,
    settings::AUTO_CLOSE,
    settings::AUTO_CLOSE_TIMEOUT,
    settings::AUTO_DISCONNECT_TIMEOUT,
    settings::GDB,
    settings::PEDESTAL,
    settings::PEDESTAL_CONF,
    settings::RUNTIME_DEBUG,
    MICA_SELECTOR_KEY,
    "auto_disconnect",
];

/// Full keys outside the mica prefixes: ours and CRI's.
const OTHER_KEYS: &[&str] = &[
    annotations::DELEGATE,
    annotations::GROUP,
    annotations::CRI_CONTAINER_TYPE,
    annotations::CRIO_CONTAINER_TYPE,
    annotations::CRI_SANDBOX_ID,
    annotations::CRI_CONTAINER_NAME,
];

/// Values near the edges of what the settings accept.
const VALUES: &[&str] = &[
    "", " ", "true", "FALSE", "t", "0", "1", "30", "30s", "1h30m", "1.5s", "500ms", "1µs", "0s", ".s", "1e3s",
    "18446744073709551615", "99999999999999999999h", "2147483647", "2147483648", "-1", "zephyr", "UniProton",
    "xen", "bare-metal", "jailhouse", "hetero", "kvm", "sandbox", "container", "rtos, fw2", ",,",
    "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855", "/lib/firmware/zephyr.elf", "crun",
];

#[derive(Debug)]
struct Entry(String, String);

impl<'a> Arbitrary<'a> for Entry {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let key = match u.int_in_range(0..=9)? {
            0..=6 => format!("{}{}", u.choose(&MICA_PREFIXES)?, u.choose(MICA_KEYS)?),
            7 => u.choose(OTHER_KEYS)?.to_string(),
            // An unknown key under a mica prefix, or any key at all.
            8 => format!("{}{}", u.choose(&MICA_PREFIXES)?, String::arbitrary(u)?),
            _ => String::arbitrary(u)?,
        };
        let value = if u.arbitrary()? { u.choose(VALUES)?.to_string() } else { String::arbitrary(u)? };
        Ok(Entry(key, value))
    }
}

// The first byte picks how the rest is read: arbitrary entries, or (odd)
// `key=value` lines, so real annotation sets can seed the corpus.
fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let entries = if mode % 2 == 0 {
        let Ok(e) = Vec::<Entry>::arbitrary_take_rest(Unstructured::new(rest)) else { return };
        e
    } else {
        String::from_utf8_lossy(rest)
            .lines()
            .map(|l| l.split_once('=').unwrap_or((l, "")))
            .map(|(k, v)| Entry(k.to_string(), v.to_string()))
            .collect()
    };
    check(&entries);
});

fn check(entries: &[Entry]) {
    let raw: HashMap<String, String> = entries.iter().map(|Entry(k, v)| (k.clone(), v.clone())).collect();
    let parsed = Annotations::parse(&raw);
    // HashMap order is random per map: the result must not depend on it.
    let reordered: HashMap<String, String> = entries.iter().rev().map(|Entry(k, v)| (k.clone(), v.clone())).collect();
    if reordered == raw {
        assert_eq!(Annotations::parse(&reordered), parsed);
    }
    let a = match parsed {
        Ok(a) => a,
        Err(e) => {
            let msg = e.to_string();
            assert!(raw.keys().any(|k| msg.contains(k.as_str())), "error names no annotation: {msg}");
            return;
        }
    };
    for (key, value) in &a.mica {
        let full = &a.mica_keys[key];
        assert_eq!(raw[full].trim(), value, "{full}");
        assert!(MICA_PREFIXES.iter().any(|p| full.starts_with(p)), "{full}");
    }
    assert_eq!(a.mica.len(), a.mica_keys.len());
    assert!(!a.mica.contains_key(MICA_SELECTOR_KEY));
    if let Some(sel) = &a.mica_selector {
        assert!(sel.iter().all(|s| !s.is_empty() && s.trim() == s && !s.contains(',')));
    }

    match MicaSettings::parse(&a) {
        Ok(s) => {
            if let Some(h) = &s.firmware_hash {
                assert!(h.len() == 64 && h.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)), "{h}");
            }
            assert!(s.min_memory_mib.map_or(true, |n| n > 0));
            assert!(s.max_vcpu_num.map_or(true, |n| n > 0));
            assert!(s.auto_close.map_or(true, |d| !d.is_zero()));
            for u in &s.unknown {
                assert!(raw.contains_key(u), "unknown key {u} is not an annotation that was given");
            }
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(
                a.mica_keys.values().any(|k| msg.contains(k.as_str())),
                "settings error names no annotation that was given: {msg}"
            );
        }
    }
}
