//! micrun's config arrives from a file or from containerd's runtime options
//! (`config_body`), and delegate profiles from a configured directory: any
//! text must give a config, a profile or an error naming where it came from.
#![no_main]

use libfuzzer_sys::fuzz_target;
use micrun::backend::delegate::profile::Profile;
use micrun::config::{is_delegate_name, Config};

fuzz_target!(|data: &[u8]| {
    // The first byte picks the file name the profile is stored under, so the
    // name check passes for the built-in profiles often enough to reach the rest.
    let (pick, text) = data.split_first().map_or((0, data), |(b, rest)| (*b, rest));
    let Ok(text) = std::str::from_utf8(text) else { return };

    match Config::parse(text, "fuzz input") {
        Ok(c) => {
            assert!(matches!(c.log_level.as_str(), "trace" | "debug" | "info" | "warn" | "error"));
            assert!(c.state_root.is_absolute());
            assert!(c.delegate.order.iter().chain(&c.delegate.allowed).all(|n| is_delegate_name(n)));
            if let Some(d) = &c.delegate.default {
                assert!(c.delegate.allowed.contains(d) || c.delegate.order.contains(d));
            }
        }
        Err(e) => assert!(e.to_string().starts_with("invalid micrun config fuzz input: "), "{e}"),
    }

    let name = ["crun", "runc", "youki", "runsc"][pick as usize % 4];
    match Profile::parse(name, text, "fuzz.toml") {
        Ok(p) => {
            assert_eq!(p.name, name);
            assert!(p.binary.is_absolute() || p.binary.components().count() <= 1, "{:?}", p.binary);
        }
        Err(e) => assert!(e.to_string().starts_with("delegate profile fuzz.toml: "), "{e}"),
    }
});
