//! micad's status line: `printf("%-30s%-20s%-20s%s", display_name, cpu_str, state,
//! services)`. The columns overflow when a value is wider than its column, so the
//! parser anchors on the state word instead of trusting fixed offsets.

use std::fmt;

use super::protocol::ProtocolError;

const NAME_COL: usize = 30;
const CPU_COL: usize = 20;
const STATE_COL: usize = 20;
/// Names up to this many bytes are shown whole.
const DISPLAY_NAME_MAX: usize = 31;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientState {
    Offline,
    Configured,
    Ready,
    Running,
    Suspended,
    Error,
    Stopped,
}

impl ClientState {
    pub const ALL: [ClientState; 7] = [
        ClientState::Offline,
        ClientState::Configured,
        ClientState::Ready,
        ClientState::Running,
        ClientState::Suspended,
        ClientState::Error,
        ClientState::Stopped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ClientState::Offline => "Offline",
            ClientState::Configured => "Configured",
            ClientState::Ready => "Ready",
            ClientState::Running => "Running",
            ClientState::Suspended => "Suspended",
            ClientState::Error => "Error",
            ClientState::Stopped => "Stopped",
        }
    }
}

impl fmt::Display for ClientState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// micad's name column: the name if at most 31 bytes, else its first 12 bytes,
/// `...` and its last byte (a 64-hex container id becomes `abcdef012345...9`).
pub fn display_name(name: &str) -> String {
    let b = name.as_bytes();
    if b.len() <= DISPLAY_NAME_MAX {
        return name.to_string();
    }
    let mut out = b[..12].to_vec();
    out.extend_from_slice(b"...");
    out.push(b[b.len() - 1]);
    String::from_utf8_lossy(&out).into_owned()
}

/// One parsed status line. `display_name` is informational: match clients by
/// their socket name, never by this column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusLine {
    pub display_name: String,
    /// The CPU list as created or last `set`; may be empty.
    pub cpu: String,
    pub state: ClientState,
    pub services: Vec<String>,
}

/// The name, cpu and state columns as micad's printf writes them: each padded
/// to its width in bytes (the simulator prints its status lines with this too).
pub fn columns(display_name: &str, cpu: &str, state: ClientState) -> String {
    let mut out = String::new();
    for (value, width) in [(display_name, NAME_COL), (cpu, CPU_COL), (state.as_str(), STATE_COL)] {
        out.push_str(value);
        out.extend(std::iter::repeat(' ').take(width.saturating_sub(value.len())));
    }
    out
}

impl StatusLine {
    /// The line exactly as micad prints it (no newline). printf's `%-30s` pads
    /// to 30 bytes, while Rust's `{:<30}` pads to 30 characters: a non-ASCII
    /// name or cpu list would move the state column and no longer parse back.
    pub fn format(&self) -> String {
        columns(&self.display_name, &self.cpu, self.state) + &self.services.join(" ")
    }

    /// The console device named by the `rpmsg-tty(<path>)` service, once it exists.
    pub fn tty(&self) -> Option<&str> {
        self.services.iter().find_map(|s| s.strip_prefix("rpmsg-tty(")?.strip_suffix(')'))
    }

    pub fn parse(line: &str) -> Result<StatusLine, ProtocolError> {
        let bad = |why| ProtocolError::Status { line: line.to_string(), why };
        let line = line.trim_end_matches(['\r', '\n']);
        let (at, state) = find_state(line).ok_or_else(|| bad("no state word after the name and cpu columns"))?;
        let before = &line[..at];
        // The name column is 30 wide, 31 when a 31-byte name overflows it; the cpu
        // column is 20 wide, so the state starts 20 bytes after the name column ends
        // unless the cpu list itself overflowed.
        // A 31-byte name ends on a character boundary; where byte 31 is inside
        // a character, the 31st byte starts a 21-byte cpu list instead.
        let name_end = if at == NAME_COL + CPU_COL + 1
            && before.as_bytes()[NAME_COL - 1] != b' '
            && before.is_char_boundary(NAME_COL + 1)
        {
            NAME_COL + 1
        } else {
            NAME_COL
        };
        let name_end = name_end.min(before.len());
        if !before.is_char_boundary(name_end) {
            return Err(bad("name column ends inside a character"));
        }
        let rest = &line[at + state.as_str().len()..];
        Ok(StatusLine {
            display_name: before[..name_end].trim_end().to_string(),
            cpu: before[name_end..].trim().to_string(),
            state,
            services: rest.split_whitespace().map(str::to_string).collect(),
        })
    }
}

/// The state column starts at byte 50 or later (both earlier columns are padded)
/// and is followed by padding or the end of the line.
fn find_state(line: &str) -> Option<(usize, ClientState)> {
    let min = NAME_COL + CPU_COL;
    (min..line.len()).filter(|&i| line.is_char_boundary(i)).find_map(|i| {
        let tail = &line[i..];
        ClientState::ALL.into_iter().find_map(|s| {
            let after = tail.strip_prefix(s.as_str())?;
            (after.is_empty() || after.starts_with(' ')).then_some((i, s))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(name: &str, cpu: &str, state: ClientState, services: &[&str]) -> StatusLine {
        StatusLine {
            display_name: display_name(name),
            cpu: cpu.into(),
            state,
            services: services.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn display_name_rule() {
        assert_eq!(display_name("zephyr"), "zephyr");
        let n31 = "a".repeat(30) + "b";
        assert_eq!(display_name(&n31), n31);
        let n32 = "0123456789ab".to_string() + &"x".repeat(19) + "Z";
        assert_eq!(display_name(&n32), "0123456789ab...Z");
        let id = "abcdef0123456789".repeat(4);
        assert_eq!(display_name(&id), "abcdef012345...9");
    }

    #[test]
    fn format_is_printf_padding() {
        let s = line("rtos", "3", ClientState::Running, &["rpmsg-tty(/dev/ttyRPMSG_rtos_0)", "rpmsg-rpc"]);
        let expect = format!("{:<30}{:<20}{:<20}{}", "rtos", "3", "Running", "rpmsg-tty(/dev/ttyRPMSG_rtos_0) rpmsg-rpc");
        assert_eq!(s.format(), expect);
        assert_eq!(&s.format().as_bytes()[30..31], b"3");
        assert_eq!(&s.format()[50..57], "Running");
    }

    #[test]
    fn parses_raw_lines() {
        let raw = "rtos                          1-3                 Running             rpmsg-tty(/dev/ttyRPMSG_rtos_0) rpmsg-rpc";
        let s = StatusLine::parse(raw).unwrap();
        assert_eq!(s.display_name, "rtos");
        assert_eq!(s.cpu, "1-3");
        assert_eq!(s.state, ClientState::Running);
        assert_eq!(s.tty(), Some("/dev/ttyRPMSG_rtos_0"));
        assert_eq!(s.services.len(), 2);
    }

    #[test]
    fn blank_cpu_and_no_services() {
        let raw = format!("{:<30}{:<20}{:<20}", "x", "", "Offline");
        let s = StatusLine::parse(&raw).unwrap();
        assert_eq!((s.display_name.as_str(), s.cpu.as_str(), s.state), ("x", "", ClientState::Offline));
        assert!(s.services.is_empty());
        assert_eq!(s.tty(), None);
        // micad's line without trailing padding (printf of an empty services list still pads the state).
        let s = StatusLine::parse(raw.trim_end()).unwrap();
        assert_eq!(s.state, ClientState::Offline);
    }

    #[test]
    fn name_that_looks_like_a_state_is_not_the_state() {
        let raw = line("Running", "0", ClientState::Stopped, &[]).format();
        let s = StatusLine::parse(&raw).unwrap();
        assert_eq!((s.display_name.as_str(), s.state), ("Running", ClientState::Stopped));
    }

    #[test]
    fn overflowing_31_byte_name() {
        let n31 = "n".repeat(30) + "7";
        let raw = line(&n31, "3", ClientState::Ready, &[]).format();
        assert_eq!(&raw[..32], format!("{n31}3"));
        let s = StatusLine::parse(&raw).unwrap();
        assert_eq!((s.display_name.as_str(), s.cpu.as_str(), s.state), (n31.as_str(), "3", ClientState::Ready));
    }

    #[test]
    fn round_trip_every_state() {
        for st in ClientState::ALL {
            let l = line(&"f".repeat(64), "2", st, &["rpmsg-rpc"]);
            assert_eq!(StatusLine::parse(&l.format()).unwrap(), l);
        }
    }

    /// Found by fuzz/ (micad_reply): `{:<30}` padded U+FFFD names (3 bytes each,
    /// from a lossy read) to 30 characters, so the printed line put an
    /// `Offline` from the cpu column past byte 50 and parsed as that state.
    #[test]
    fn format_pads_bytes_as_printf_does() {
        // The fuzzer's input as the client reads it (lossy UTF-8).
        let raw = "x     \u{fffd}\u{fffd}\u{fffd}\u{fffd}        nnnnnn\u{fffd}\u{fffd}\u{fffd}\u{fffd}  \u{10}Offline       Ready                                          Booting";
        let s = StatusLine::parse(raw).unwrap();
        assert_eq!((s.display_name.len(), s.cpu.as_str(), s.state), (30, "nn\u{fffd}\u{fffd}\u{fffd}\u{fffd}  \u{10}Offline", ClientState::Ready));
        assert_eq!(s.format().find("Ready"), Some(30 + s.cpu.len()));
        assert_eq!(StatusLine::parse(&s.format()).unwrap(), s);
        let l = line("zéphyr", "1-3", ClientState::Running, &[]);
        assert_eq!(&l.format()[50..57], "Running");
    }

    #[test]
    fn name_column_never_ends_inside_a_character() {
        // A 30-byte name and a 21-byte cpu list starting with a 2-byte character:
        // printed, the state starts at byte 51, but byte 31 is inside the 'é'.
        let l = line(&"n".repeat(30), &("é".to_string() + &"1".repeat(19)), ClientState::Ready, &[]);
        assert_eq!(l.cpu.len(), 21);
        assert_eq!(StatusLine::parse(&l.format()).unwrap(), l);
    }

    #[test]
    fn garbage_is_an_error_that_quotes_the_line() {
        let e = StatusLine::parse("whatever").unwrap_err().to_string();
        assert!(e.contains("whatever"), "{e}");
        let e = StatusLine::parse(&format!("{:<50}Booting", "x")).unwrap_err();
        assert!(matches!(e, ProtocolError::Status { .. }));
    }
}
