//! The container's containerd labels, for the opt-in `labels_as_annotations`.
//!
//! A shim sees only the bundle's OCI spec; containerd labels stay in
//! containerd's metadata. nerdctl 1.x copied `--label` into annotations,
//! nerdctl 2.x does not, so `-l org.openeuler.micran.container.os=zephyr`
//! quietly runs the image as a Linux container. With the option on, the shim
//! asks containerd for the container record (Containers.Get on containerd's
//! gRPC socket, the `-address` it was started with) and treats labels under
//! our two prefixes as annotations the spec does not already carry.
//!
//! One unary gRPC call does not justify an HTTP/2 stack in a shim that is kept
//! small (see README, Benchmarks): this speaks just enough HTTP/2 with prior
//! knowledge for one request on stream 1 (RFC 9113), with header fields sent
//! as HPACK literals (RFC 7541 6.2.2), and reads the reply's DATA frames. The
//! reply's headers are not decoded (HPACK with Huffman coding): a call that
//! brings no message is reported as failed, with the gRPC status unread.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

// The label prefixes read as annotations: the same two the router knows.
use crate::annotations::MICA_PREFIXES as PREFIXES;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const GET_PATH: &str = "/containerd.services.containers.v1.Containers/Get";
const DATA: u8 = 0;
const HEADERS: u8 = 1;
const RST_STREAM: u8 = 3;
const SETTINGS: u8 = 4;
const PING: u8 = 6;
const GOAWAY: u8 = 7;
const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
/// Our receive window: a container record carries its whole OCI spec.
const WINDOW: u32 = 1 << 24;
const REPLY_LIMIT: usize = 16 << 20;
const TIMEOUT: Duration = Duration::from_secs(2);


/// Labels of container `id` in `namespace` under our prefixes.
pub fn ours(address: &str, namespace: &str, id: &str) -> Result<HashMap<String, String>, String> {
    let socket = address.strip_prefix("unix://").unwrap_or(address);
    let reply = call(socket, namespace, GET_PATH, &get_request(id))
        .map_err(|e| format!("read the labels of container {id} from containerd at {socket}: {e}"))?;
    let labels = container_labels(&reply).map_err(|e| format!("containerd's reply for container {id}: {e}"))?;
    Ok(labels.into_iter().filter(|(k, _)| PREFIXES.iter().any(|p| k.starts_with(p))).collect())
}

/// One unary gRPC call over HTTP/2 with prior knowledge; the reply message.
fn call(socket: &str, namespace: &str, path: &str, message: &[u8]) -> Result<Vec<u8>, String> {
    let mut s = UnixStream::connect(socket).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(TIMEOUT)).and_then(|_| s.set_write_timeout(Some(TIMEOUT))).map_err(|e| e.to_string())?;
    let mut out = PREFACE.to_vec();
    // SETTINGS: ENABLE_PUSH=0, INITIAL_WINDOW_SIZE=WINDOW
    let mut settings = Vec::new();
    for (id, v) in [(2u16, 0u32), (4, WINDOW)] {
        settings.extend_from_slice(&id.to_be_bytes());
        settings.extend_from_slice(&v.to_be_bytes());
    }
    frame(&mut out, SETTINGS, 0, 0, &settings);
    frame(&mut out, 8, 0, 0, &(WINDOW - 65_535).to_be_bytes()); // WINDOW_UPDATE, connection
    let mut block = Vec::new();
    for (k, v) in [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", path),
        (":authority", "localhost"),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
        ("containerd-namespace", namespace),
    ] {
        block.push(0); // literal without indexing, new name
        hpack_string(&mut block, k);
        hpack_string(&mut block, v);
    }
    frame(&mut out, HEADERS, END_HEADERS, 1, &block);
    let mut body = vec![0u8];
    body.extend_from_slice(&(message.len() as u32).to_be_bytes());
    body.extend_from_slice(message);
    frame(&mut out, DATA, END_STREAM, 1, &body);
    s.write_all(&out).map_err(|e| format!("send: {e}"))?;

    let mut reply = Vec::new();
    loop {
        let mut head = [0u8; 9];
        s.read_exact(&mut head).map_err(|e| format!("read: {e}"))?;
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let (kind, flags) = (head[3], head[4]);
        let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        if len > REPLY_LIMIT {
            return Err(format!("a frame of {len} bytes"));
        }
        let mut payload = vec![0u8; len];
        s.read_exact(&mut payload).map_err(|e| format!("read: {e}"))?;
        match kind {
            SETTINGS | PING if flags & ACK == 0 => {
                // acknowledged with the same type; a PING echoes its payload
                let echo = if kind == PING { payload.as_slice() } else { &[] };
                let mut ack = Vec::new();
                frame(&mut ack, kind, ACK, 0, echo);
                s.write_all(&ack).map_err(|e| format!("send: {e}"))?;
            }
            GOAWAY => return Err("containerd closed the connection (GOAWAY)".into()),
            RST_STREAM if stream == 1 => return Err("containerd reset the request".into()),
            DATA if stream == 1 => {
                let data = if flags & PADDED != 0 {
                    let pad = *payload.first().ok_or("padded DATA frame without its pad length")? as usize;
                    payload.get(1..payload.len().saturating_sub(pad)).ok_or("bad DATA padding")?.to_vec()
                } else {
                    payload
                };
                reply.extend_from_slice(&data);
                if reply.len() > REPLY_LIMIT {
                    return Err("reply too large".into());
                }
            }
            _ => {}
        }
        if stream == 1 && (kind == DATA || kind == HEADERS) && flags & END_STREAM != 0 {
            break;
        }
    }
    // the gRPC length-prefixed message: flag 0 (uncompressed), length, bytes
    if reply.len() < 5 {
        return Err("no message in the reply (the gRPC status was an error: is the container there?)".into());
    }
    if reply[0] != 0 {
        return Err("a compressed gRPC message".into());
    }
    let n = u32::from_be_bytes([reply[1], reply[2], reply[3], reply[4]]) as usize;
    reply.get(5..5 + n).map(<[u8]>::to_vec).ok_or_else(|| "a truncated gRPC message".into())
}

fn frame(out: &mut Vec<u8>, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
}

/// An HPACK string literal, not Huffman-coded: a 7-bit-prefix length, the bytes.
fn hpack_string(out: &mut Vec<u8>, s: &str) {
    let mut n = s.len();
    if n < 127 {
        out.push(n as u8);
    } else {
        out.push(127);
        n -= 127;
        while n >= 128 {
            out.push((n % 128 + 128) as u8);
            n /= 128;
        }
        out.push(n as u8);
    }
    out.extend_from_slice(s.as_bytes());
}

/// GetContainerRequest { string id = 1; }
fn get_request(id: &str) -> Vec<u8> {
    let mut m = vec![1 << 3 | 2];
    varint(&mut m, id.len() as u64);
    m.extend_from_slice(id.as_bytes());
    m
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// GetContainerResponse { Container container = 1; } with
/// Container { string id = 1; map<string, string> labels = 2; ... }.
fn container_labels(reply: &[u8]) -> Result<HashMap<String, String>, String> {
    let container = fields(reply)?.into_iter().find(|(n, _)| *n == 1).map(|(_, b)| b).ok_or("no container in it")?;
    let mut labels = HashMap::new();
    for (n, entry) in fields(container)? {
        if n != 2 {
            continue;
        }
        let (mut k, mut v) = (String::new(), String::new());
        for (f, b) in fields(entry)? {
            let s = String::from_utf8(b.to_vec()).map_err(|_| "a label that is not UTF-8")?;
            match f {
                1 => k = s,
                2 => v = s,
                _ => {}
            }
        }
        labels.insert(k, v);
    }
    Ok(labels)
}

/// The length-delimited fields of a protobuf message (others are skipped).
fn fields(mut b: &[u8]) -> Result<Vec<(u64, &[u8])>, String> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let key = read_varint(&mut b)?;
        match key & 7 {
            0 => {
                read_varint(&mut b)?;
            }
            1 => b = b.get(8..).ok_or("truncated fixed64")?,
            5 => b = b.get(4..).ok_or("truncated fixed32")?,
            2 => {
                let n = read_varint(&mut b)? as usize;
                let (v, rest) = (b.get(..n).ok_or("truncated field")?, &b[n..]);
                out.push((key >> 3, v));
                b = rest;
            }
            w => return Err(format!("protobuf wire type {w} is not expected here")),
        }
    }
    Ok(out)
}

fn read_varint(b: &mut &[u8]) -> Result<u64, String> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = b.split_first().ok_or("truncated varint")?;
        *b = rest;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err("varint too long".into())
}

#[cfg(test)]
#[path = "labels_tests.rs"]
mod tests;
