//! micad's wire protocol, byte for byte (docs/micad-protocol.md, and the tests in this file): the
//! 1772-byte create message, control requests, replies and the status line.
//! Shared by the client and by `micrun sim`, so both ends agree by construction;
//! the simulator's tests check the bytes independently of this module.

use std::fmt;

pub use super::status::{display_name, ClientState, StatusLine};

/// Size of micad's `struct create_msg` (host byte order, natural alignment).
pub const CREATE_MSG_LEN: usize = 1772;
/// micad reads a control request with one `recv` of this many bytes.
pub const REQUEST_BUF_LEN: usize = 32;
/// Longest request that fits micad's buffer with room for its NUL.
pub const MAX_REQUEST_LEN: usize = REQUEST_BUF_LEN - 1;
pub const SUCCESS: &[u8] = b"MICA-SUCCESS";
pub const FAILED: &[u8] = b"MICA-FAILED";
pub const CREATE_SOCKET: &str = "mica-create.socket";

/// One text field of the create message: where it is, how big, and whether micad
/// forces its last byte to NUL (then only `size - 1` bytes are usable).
#[derive(Debug, Clone, Copy)]
pub struct Field {
    pub offset: usize,
    pub size: usize,
    pub server_forces_nul: bool,
}

pub const NAME: Field = Field { offset: 0, size: 66, server_forces_nul: true };
pub const PATH: Field = Field { offset: 66, size: 256, server_forces_nul: false };
pub const PED: Field = Field { offset: 322, size: 16, server_forces_nul: false };
pub const PED_CFG: Field = Field { offset: 338, size: 256, server_forces_nul: false };
pub const DEBUG_OFFSET: usize = 594;
pub const CPU_STR: Field = Field { offset: 595, size: 128, server_forces_nul: false };
pub const PADDING_OFFSET: usize = 723;
pub const VCPU_NUM_OFFSET: usize = 724;
pub const MAX_VCPU_NUM_OFFSET: usize = 728;
pub const CPU_WEIGHT_OFFSET: usize = 732;
pub const CPU_CAPACITY_OFFSET: usize = 736;
pub const MEMORY_OFFSET: usize = 740;
pub const MAX_MEMORY_OFFSET: usize = 744;
pub const IOMEM: Field = Field { offset: 748, size: 512, server_forces_nul: false };
pub const NETWORK: Field = Field { offset: 1260, size: 512, server_forces_nul: true };

/// Longest value a field carries. Fields micad does not NUL-force are read as C
/// strings, so we always leave a NUL inside them too: the usable length is
/// `size - 1` for every field.
pub const fn usable_len(f: Field) -> usize {
    f.size - 1
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("{field} is {len} bytes; micad takes at most {max}")]
    TooLong { field: &'static str, len: usize, max: usize },
    #[error("{field} contains a NUL byte, which would cut it short in micad")]
    Nul { field: &'static str },
    #[error("create message is {0} bytes; micad's struct is {CREATE_MSG_LEN}")]
    CreateLen(usize),
    #[error("invalid request: {0}")]
    Request(String),
    #[error("micad closed the connection without MICA-SUCCESS or MICA-FAILED (got {0:?})")]
    NoTerminator(String),
    #[error("unparsable status line {line:?}: {why}")]
    Status { line: String, why: &'static str },
}

/// Where a client runs. On the wire anything that is not `jailhouse`, `xen` or
/// `hetero` (including empty) means bare metal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pedestal {
    BareMetal,
    Xen,
    Jailhouse,
    Hetero,
}

impl Pedestal {
    pub fn from_wire(s: &str) -> Pedestal {
        match s {
            "xen" => Pedestal::Xen,
            "jailhouse" => Pedestal::Jailhouse,
            "hetero" => Pedestal::Hetero,
            _ => Pedestal::BareMetal,
        }
    }

    pub fn as_wire(self) -> &'static str {
        match self {
            Pedestal::BareMetal => "baremetal",
            Pedestal::Xen => "xen",
            Pedestal::Jailhouse => "jailhouse",
            Pedestal::Hetero => "hetero",
        }
    }
}

impl fmt::Display for Pedestal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_wire())
    }
}

/// The create message. Integers are -1 when there is no value (as MICA's CLI sends).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateMsg {
    pub name: String,
    pub firmware_path: String,
    pub pedestal: Pedestal,
    pub pedestal_config: String,
    pub debug: bool,
    pub cpu: String,
    pub vcpu_num: i32,
    pub max_vcpu_num: i32,
    pub cpu_weight: i32,
    pub cpu_capacity: i32,
    pub memory_mib: i32,
    pub max_memory_mib: i32,
    pub iomem: String,
    pub network: String,
}

impl CreateMsg {
    /// A message with only name, firmware and CPU set and every integer "unset".
    pub fn new(name: &str, firmware_path: &str, pedestal: Pedestal, cpu: &str) -> CreateMsg {
        CreateMsg {
            name: name.into(),
            firmware_path: firmware_path.into(),
            pedestal,
            pedestal_config: String::new(),
            debug: false,
            cpu: cpu.into(),
            vcpu_num: -1,
            max_vcpu_num: -1,
            cpu_weight: -1,
            cpu_capacity: -1,
            memory_mib: -1,
            max_memory_mib: -1,
            iomem: String::new(),
            network: String::new(),
        }
    }

    /// The exact bytes micad reads; refuses values micad would truncate or cut.
    pub fn encode(&self) -> Result<[u8; CREATE_MSG_LEN], ProtocolError> {
        let mut buf = [0u8; CREATE_MSG_LEN];
        put_str(&mut buf, NAME, "name", &self.name)?;
        put_str(&mut buf, PATH, "firmware path", &self.firmware_path)?;
        put_str(&mut buf, PED, "pedestal", self.pedestal.as_wire())?;
        put_str(&mut buf, PED_CFG, "pedestal config", &self.pedestal_config)?;
        buf[DEBUG_OFFSET] = self.debug as u8;
        put_str(&mut buf, CPU_STR, "cpu list", &self.cpu)?;
        for (off, v) in self.ints() {
            buf[off..off + 4].copy_from_slice(&v.to_ne_bytes());
        }
        put_str(&mut buf, IOMEM, "iomem", &self.iomem)?;
        put_str(&mut buf, NETWORK, "network", &self.network)?;
        Ok(buf)
    }

    /// Reads a message as micad does: fields end at their first NUL, server-forced
    /// NULs cut the name and network to `size - 1`, and bytes after a NUL are ignored.
    /// A field without any NUL (only the unforced ones can be) ends at its boundary.
    pub fn decode(buf: &[u8]) -> Result<CreateMsg, ProtocolError> {
        if buf.len() != CREATE_MSG_LEN {
            return Err(ProtocolError::CreateLen(buf.len()));
        }
        let int = |off: usize| i32::from_ne_bytes(buf[off..off + 4].try_into().expect("4 bytes"));
        Ok(CreateMsg {
            name: get_str(buf, NAME),
            firmware_path: get_str(buf, PATH),
            pedestal: Pedestal::from_wire(&get_str(buf, PED)),
            pedestal_config: get_str(buf, PED_CFG),
            debug: buf[DEBUG_OFFSET] != 0,
            cpu: get_str(buf, CPU_STR),
            vcpu_num: int(VCPU_NUM_OFFSET),
            max_vcpu_num: int(MAX_VCPU_NUM_OFFSET),
            cpu_weight: int(CPU_WEIGHT_OFFSET),
            cpu_capacity: int(CPU_CAPACITY_OFFSET),
            memory_mib: int(MEMORY_OFFSET),
            max_memory_mib: int(MAX_MEMORY_OFFSET),
            iomem: get_str(buf, IOMEM),
            network: get_str(buf, NETWORK),
        })
    }

    fn ints(&self) -> [(usize, i32); 6] {
        [
            (VCPU_NUM_OFFSET, self.vcpu_num),
            (MAX_VCPU_NUM_OFFSET, self.max_vcpu_num),
            (CPU_WEIGHT_OFFSET, self.cpu_weight),
            (CPU_CAPACITY_OFFSET, self.cpu_capacity),
            (MEMORY_OFFSET, self.memory_mib),
            (MAX_MEMORY_OFFSET, self.max_memory_mib),
        ]
    }
}

fn put_str(buf: &mut [u8], f: Field, field: &'static str, value: &str) -> Result<(), ProtocolError> {
    let bytes = value.as_bytes();
    if bytes.contains(&0) {
        return Err(ProtocolError::Nul { field });
    }
    if bytes.len() > usable_len(f) {
        return Err(ProtocolError::TooLong { field, len: bytes.len(), max: usable_len(f) });
    }
    buf[f.offset..f.offset + bytes.len()].copy_from_slice(bytes);
    Ok(())
}

fn get_str(buf: &[u8], f: Field) -> String {
    let end = if f.server_forces_nul { f.size - 1 } else { f.size };
    let field = &buf[f.offset..f.offset + end];
    let len = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(&field[..len]).into_owned()
}

/// The keys micad's `set` accepts, spelled as micad compares them (after lowercasing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetKey {
    CpuCapacity,
    CpuWeight,
    Cpu,
    Vcpu,
    Memory,
    MaxMemory,
}

impl SetKey {
    pub const ALL: [SetKey; 6] =
        [SetKey::CpuCapacity, SetKey::CpuWeight, SetKey::Cpu, SetKey::Vcpu, SetKey::Memory, SetKey::MaxMemory];

    pub fn as_str(self) -> &'static str {
        match self {
            SetKey::CpuCapacity => "cpucapacity",
            SetKey::CpuWeight => "cpuweight",
            SetKey::Cpu => "cpu",
            SetKey::Vcpu => "vcpu",
            SetKey::Memory => "memory",
            SetKey::MaxMemory => "maxmemory",
        }
    }

    /// micad lowercases the key before comparing, so `MEMORY` works; `maxmem` does not.
    pub fn parse(key: &str) -> Option<SetKey> {
        let lower = key.to_ascii_lowercase();
        SetKey::ALL.into_iter().find(|k| k.as_str() == lower)
    }
}

impl fmt::Display for SetKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A control request for `<name>.socket`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Start,
    Stop,
    Rm,
    Status,
    Gdb,
    Set { key: SetKey, value: String },
}

impl Request {
    /// The exact ASCII micad compares; refuses what micad would misread.
    pub fn encode(&self) -> Result<String, ProtocolError> {
        let text = match self {
            Request::Start => "start".to_string(),
            Request::Stop => "stop".into(),
            Request::Rm => "rm".into(),
            Request::Status => "status".into(),
            Request::Gdb => "gdb".into(),
            Request::Set { key, value } => {
                if value.is_empty() || value.bytes().any(|b| b.is_ascii_whitespace() || b == 0) {
                    return Err(ProtocolError::Request(format!(
                        "set {key}: value {value:?} must be one token without spaces"
                    )));
                }
                format!("set {key} {value}")
            }
        };
        if text.len() > MAX_REQUEST_LEN {
            return Err(ProtocolError::Request(format!(
                "{text:?} is {} bytes; micad reads at most {MAX_REQUEST_LEN}",
                text.len()
            )));
        }
        Ok(text)
    }
}

/// A complete reply: the trimmed text before the terminator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Success(String),
    Failed(String),
}

/// Finds the first terminator in what was received so far. `None` means keep reading.
pub fn parse_reply(received: &[u8]) -> Option<Reply> {
    let s = find(received, SUCCESS);
    let f = find(received, FAILED);
    let (at, ok) = match (s, f) {
        (Some(s), Some(f)) => (s.min(f), s < f),
        (Some(s), None) => (s, true),
        (None, Some(f)) => (f, false),
        (None, None) => return None,
    };
    let text = String::from_utf8_lossy(&received[..at]).trim().to_string();
    Some(if ok { Reply::Success(text) } else { Reply::Failed(text) })
}

/// The reply once the server closed: EOF without a terminator is a protocol error.
pub fn parse_final_reply(received: &[u8]) -> Result<Reply, ProtocolError> {
    parse_reply(received).ok_or_else(|| ProtocolError::NoTerminator(String::from_utf8_lossy(received).into_owned()))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// micad's tty link name for a client: bytes outside `[A-Za-z0-9_-]` become `_`.
pub fn tty_name(client: &str, idx: u32) -> String {
    let clean: String = client
        .bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' { b as char } else { '_' })
        .collect();
    format!("ttyRPMSG_{clean}_{idx}")
}

#[cfg(test)]
#[path = "protocol_tests.rs"]
mod tests;
