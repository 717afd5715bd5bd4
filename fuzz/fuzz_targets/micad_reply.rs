//! micad's replies and status lines come from another process over a socket:
//! any bytes must give a reply, "keep reading", or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use micrun::backend::mica::protocol::{parse_final_reply, parse_reply, Reply, FAILED, SUCCESS};
use micrun::backend::mica::status::StatusLine;

fuzz_target!(|data: &[u8]| {
    check_reply(data);
    check_status(&String::from_utf8_lossy(data));
});

fn check_reply(data: &[u8]) {
    let whole = parse_reply(data);
    let has_terminator = contains(data, SUCCESS) || contains(data, FAILED);
    assert_eq!(whole.is_some(), has_terminator, "a reply exactly when a terminator arrived");
    if let Some(Reply::Success(t) | Reply::Failed(t)) = &whole {
        assert_eq!(t.trim(), t, "reply text is trimmed");
    }
    // The client parses after every read: once a prefix holds a reply, more
    // bytes must not change it, or the answer would depend on packet sizes.
    if let Some(&cut) = data.first() {
        let cut = cut as usize % (data.len() + 1);
        if let Some(early) = parse_reply(&data[..cut]) {
            assert_eq!(Some(early), whole, "a reply seen early changed with more bytes");
        }
    }
    match parse_final_reply(data) {
        Ok(r) => assert_eq!(Some(r), whole),
        Err(e) => {
            assert!(whole.is_none());
            assert!(e.to_string().contains("without MICA-SUCCESS or MICA-FAILED"), "{e}");
        }
    }
}

fn check_status(line: &str) {
    let Ok(s) = StatusLine::parse(line) else { return };
    let _ = s.tty();
    // What the parser read, printed as micad prints it, must read back the same,
    // except where printf's columns make two values look alike: a 30-byte name
    // and a 21-byte cpu list print as a 31-byte name and a 20-byte list (whose
    // leading blanks are then trimmed), so only the words in them must agree.
    let again = StatusLine::parse(&s.format())
        .unwrap_or_else(|e| panic!("format() of a parsed line does not parse: {e}; parsed {s:?}"));
    if s.display_name.len() == 30 && s.cpu.len() == 21 {
        let words = |l: &StatusLine| (l.display_name.clone() + &l.cpu).split_whitespace().collect::<String>();
        assert_eq!((again.state, &again.services), (s.state, &s.services));
        assert_eq!(words(&again), words(&s));
    } else {
        assert_eq!(again, s, "line {line:?}");
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}
