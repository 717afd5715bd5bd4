//! Protobuf messages read field by field, for the few the shim decodes without
//! generated bindings: `start`'s stdin, runtime options, CRI's pod config.

use containerd_shim::protos::protobuf::rt::WireType;
use containerd_shim::protos::protobuf::CodedInputStream;

/// One field's value as the wire carries it.
pub enum Value {
    Varint(u64),
    /// Length-delimited: a string, bytes, a message or a map entry.
    Bytes(Vec<u8>),
    /// A fixed-width value, skipped.
    Fixed,
}

/// The top-level fields of a message in order, with their numbers.
pub fn fields(bytes: &[u8]) -> Result<Vec<(u32, Value)>, String> {
    let mut input = CodedInputStream::from_bytes(bytes);
    let mut out = Vec::new();
    while let Some(tag) = input.read_raw_tag_or_eof().map_err(|e| e.to_string())? {
        let (field, wire) = (tag >> 3, tag & 7);
        if field == 0 {
            return Err("field number 0".into());
        }
        let value = match WireType::new(wire).ok_or_else(|| format!("bad wire type {wire}"))? {
            WireType::Varint => Value::Varint(input.read_raw_varint64().map_err(|e| e.to_string())?),
            WireType::LengthDelimited => Value::Bytes(input.read_bytes().map_err(|e| e.to_string())?),
            WireType::StartGroup | WireType::EndGroup => return Err("groups are not used by these messages".into()),
            wt => {
                input.skip_field(wt).map_err(|e| e.to_string())?;
                Value::Fixed
            }
        };
        out.push((field, value));
    }
    Ok(out)
}

impl Value {
    pub fn text(&self) -> Result<String, String> {
        String::from_utf8(self.message()?.to_vec()).map_err(|_| "a string field is not UTF-8".into())
    }

    pub fn message(&self) -> Result<&[u8], String> {
        match self {
            Value::Bytes(b) => Ok(b),
            _ => Err("a length-delimited field holds a number".into()),
        }
    }

    pub fn number(&self) -> Result<u64, String> {
        match self {
            Value::Varint(n) => Ok(*n),
            _ => Err("a number field holds something else".into()),
        }
    }
}
