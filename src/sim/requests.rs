//! What the simulated micad answers, request by request. Texts are micad's where
//! micad's source gives them; where micad answers MICA-FAILED alone, so does this,
//! and the reason goes to the simulator's log (micad's goes to syslog).

use std::path::Path;

use super::elf;
use super::rtos::{exit_file, RtosClient};
use super::{Registry, Shared};
use crate::backend::mica::protocol::{CreateMsg, Pedestal, SetKey, CREATE_MSG_LEN};

/// A reply before framing: text, then MICA-SUCCESS or MICA-FAILED.
#[derive(Debug, PartialEq, Eq)]
pub struct Answer {
    pub ok: bool,
    pub text: String,
}

impl Answer {
    pub fn ok(text: impl Into<String>) -> Answer {
        Answer { ok: true, text: text.into() }
    }
    pub fn failed(text: impl Into<String>) -> Answer {
        Answer { ok: false, text: text.into() }
    }
    /// MICA-FAILED with nothing before it; `why` goes to the log only.
    fn failed_silently(why: &str) -> Answer {
        tracing::warn!("MICA-FAILED: {why}");
        Answer::failed("")
    }
}

/// Handles one create message (the bytes of a single recv). On success the caller
/// binds `<name>.socket` and registers the returned client.
pub fn create(shared: &Shared, reg: &Registry, bytes: &[u8]) -> Result<RtosClient, Answer> {
    if bytes.len() != CREATE_MSG_LEN {
        return Err(Answer::failed_silently(&format!(
            "create message of {} bytes in one recv; micad's struct is {CREATE_MSG_LEN}",
            bytes.len()
        )));
    }
    let msg = CreateMsg::decode(bytes).map_err(|e| Answer::failed_silently(&e.to_string()))?;
    let name = msg.name.as_str();
    if name.is_empty() || name.contains('/') || name == "mica-create" {
        return Err(Answer::failed_silently(&format!("client name {name:?} cannot name a socket")));
    }
    if reg.clients.contains_key(name) {
        return Err(Answer::failed(format!("{name} is already created")));
    }
    if !Path::new(&msg.firmware_path).exists() {
        return Err(Answer::failed(format!("No such file: {}", msg.firmware_path)));
    }
    if msg.pedestal != shared.opts.pedestal {
        // Simulator text: the machine has one pedestal, and a client for another
        // one cannot work on it (real micad fails later and less clearly).
        return Err(Answer::failed(format!(
            "pedestal {} requested, but this simulated machine runs {}",
            msg.pedestal, shared.opts.pedestal
        )));
    }
    if msg.pedestal == Pedestal::BareMetal {
        let cpus = super::rtos::parse_cpu_list(if msg.cpu.is_empty() { "0" } else { &msg.cpu });
        if cpus.as_ref().map(Vec::len) != Some(1) {
            return Err(Answer::failed_silently(&format!("bare metal needs exactly one CPU id, got {:?}", msg.cpu)));
        }
    }
    let firmware = elf::inspect(Path::new(&msg.firmware_path)).map_err(Answer::failed)?;
    Ok(RtosClient::new(msg, firmware))
}

/// What the caller must do after answering a control request.
#[derive(Debug, PartialEq, Eq)]
pub enum After {
    Nothing,
    /// `rm`: unlink the socket (after the reply, as micad does) and stop listening.
    Unlink,
}

/// Handles one control request for `name`; `raw` is what one recv returned.
pub fn control(shared: &Shared, reg: &mut Registry, name: &str, raw: &[u8]) -> (Answer, After) {
    // micad compares C strings: anything after a NUL is not part of the request.
    let raw = raw.split(|&b| b == 0).next().unwrap_or_default();
    let msg = String::from_utf8_lossy(raw).into_owned();
    let Some(client) = reg.clients.get_mut(name) else {
        return (Answer::failed_silently(&format!("{name} has a socket but no client")), After::Nothing);
    };
    let live = &shared.live;
    let answer = match msg.as_str() {
        "start" if client.is_running() => Answer::failed_silently(&format!("{name} is already running")),
        "start" => match client.start(&shared.opts.socket_dir, &shared.opts.tty_dir, live) {
            Ok(()) => Answer::ok(""),
            Err(e) => Answer::failed_silently(&format!("start {name}: {}: {e}", client.msg.firmware_path)),
        },
        "stop" if !client.is_running() => Answer::failed_silently(&format!("{name} is not running")),
        "stop" => {
            client.stop(live);
            Answer::ok("")
        }
        "rm" => {
            client.stop(live);
            reg.clients.remove(name);
            let _ = std::fs::remove_file(exit_file(&shared.opts.socket_dir, name));
            return (Answer::ok(""), After::Unlink);
        }
        "status" => {
            // micad's side effect: a halted RTOS is stopped by the status request.
            if client.halted() {
                client.stop(live);
            }
            Answer::ok(client.status_line().format())
        }
        "gdb" if client.msg.debug => Answer::ok(format!("gdb {}", client.msg.firmware_path)),
        "gdb" => Answer::failed("The elf file does not support debugging"),
        _ if msg.split(' ').next() == Some("set") => set(client, shared.opts.pedestal, &msg),
        _ => Answer::failed(format!("Invalid command: {msg}")),
    };
    (answer, After::Nothing)
}

/// `set <key> <value>`: tokens split on spaces as strtok does.
fn set(client: &mut RtosClient, pedestal: Pedestal, msg: &str) -> Answer {
    let tokens: Vec<&str> = msg.split(' ').filter(|t| !t.is_empty()).collect();
    let [_, key, value] = tokens[..] else {
        return Answer::failed("Invalid set command. Usage: set <key> <value>");
    };
    if pedestal != Pedestal::Xen {
        return Answer::failed_silently(&format!("set is implemented only by the Xen pedestal, not {pedestal}"));
    }
    let Some(key) = SetKey::parse(key) else {
        return Answer::failed_silently(&format!("set: unknown key {key:?}"));
    };
    let m = &mut client.msg;
    let number = || value.parse::<i32>().ok();
    let applied = match key {
        SetKey::Cpu => super::rtos::parse_cpu_list(value).map(|_| m.cpu = value.to_string()),
        SetKey::CpuCapacity => number().map(|n| m.cpu_capacity = n),
        SetKey::CpuWeight => number().map(|n| m.cpu_weight = n),
        SetKey::Vcpu => number().map(|n| m.vcpu_num = n),
        SetKey::Memory => number().map(|n| m.memory_mib = n),
        SetKey::MaxMemory => number().map(|n| m.max_memory_mib = n),
    };
    if applied.is_none() {
        return Answer::failed_silently(&format!("set {key}: bad value {value:?}"));
    }
    tracing::info!(client = %m.name, "set {key} {value}");
    Answer::ok("")
}
