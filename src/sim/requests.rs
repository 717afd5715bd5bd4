//! What the simulated micad answers, request by request, following micad's
//! mica/micad/socket_listener.c (`create_mica_client`, `check_create_msg`,
//! `client_ctrl_handler`) and what it calls in library/. Texts are micad's; where
//! micad answers MICA-FAILED alone, so does this, and the reason goes to the
//! simulator's log (micad's goes to syslog).

use std::path::Path;

use super::rtos::{exit_file, RtosClient};
use super::{Registry, Shared};
use crate::backend::mica::protocol::{CreateMsg, Pedestal, SetKey, CREATE_MSG_LEN};

/// (offset, size) of the create message's strings. micad forces the last byte of
/// each to NUL (name, path, ped, ped_cfg, cpu_str, network) or copies it with
/// strlcpy into a buffer of the same size (iomem): either way at most size - 1
/// bytes reach it.
const STRINGS: [(usize, usize); 7] = [(0, 66), (66, 256), (322, 16), (338, 256), (595, 128), (748, 512), (1260, 512)];

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
    // micad's message starts zeroed (`struct create_msg msg = {0}`) and one recv
    // fills what arrived: a short message leaves the rest zero.
    let mut buf = vec![0u8; CREATE_MSG_LEN];
    let n = bytes.len().min(CREATE_MSG_LEN);
    buf[..n].copy_from_slice(&bytes[..n]);
    for (off, size) in STRINGS {
        buf[off + size - 1] = 0;
    }
    let msg = CreateMsg::decode(&buf).map_err(|e| Answer::failed_silently(&e.to_string()))?;
    let name = msg.name.as_str();
    // check_create_msg: the firmware file first, then the name against every
    // listener, mica-create's own included.
    if !Path::new(&msg.firmware_path).exists() {
        return Err(Answer::failed(format!("No such file: {}", msg.firmware_path)));
    }
    if name == "mica-create" || reg.clients.contains_key(name) {
        return Err(Answer::failed(format!("{name} is already created")));
    }
    if msg.pedestal != shared.opts.pedestal {
        // Simulator text: the machine has one pedestal, and a client for another
        // one cannot work on it (real micad fails later and less clearly).
        return Err(Answer::failed(format!(
            "pedestal {} requested, but this simulated machine runs {}",
            msg.pedestal, shared.opts.pedestal
        )));
    }
    pedestal_init(&msg).map_err(|why| Answer::failed_silently(&why))?;
    if name.contains('/') {
        // micad binds <dir>/<name>.socket, which fails for a name with a slash.
        return Err(Answer::failed_silently(&format!("client name {name:?} cannot name a socket")));
    }
    Ok(RtosClient::new(msg))
}

/// What each pedestal's `rproc_init` (library/remoteproc/*_rproc.c) refuses, as
/// far as a simulated machine can tell.
fn pedestal_init(msg: &CreateMsg) -> Result<(), String> {
    match msg.pedestal {
        // create_client (remoteproc_core.c) knows only the riscv hetero client.
        Pedestal::Hetero if msg.cpu != "riscv" => Err(format!("hetero pedestal needs cpu_str \"riscv\", got {:?}", msg.cpu)),
        // jailhouse_rproc.c rproc_init reads the cell file named by ped_cfg.
        Pedestal::Jailhouse if std::fs::File::open(&msg.pedestal_config).is_err() => {
            Err(format!("jailhouse cell config {:?} cannot be opened", msg.pedestal_config))
        }
        // xen_rproc.c rproc_init -> generate_xen_cfg: the domain config needs a
        // vcpu count, a memory size and the kernel named by ped_cfg.
        Pedestal::Xen if msg.vcpu_num < 0 || msg.memory_mib < 0 || msg.pedestal_config.is_empty() => Err(format!(
            "xen: generate_xen_cfg needs vcpu_num >= 0, memory >= 0 and ped_cfg (got {}, {}, {:?})",
            msg.vcpu_num, msg.memory_mib, msg.pedestal_config
        )),
        // baremetal_rproc.c takes strtoul(cpu_str) and checks it against the CPUs
        // configured, which is not enforced here (README, "The micad simulator").
        _ => Ok(()),
    }
}

/// What the caller must do after answering a control request.
#[derive(Debug, PartialEq, Eq)]
pub enum After {
    Nothing,
    /// `rm`: unlink the socket (after the reply, as micad does) and stop listening.
    Unlink,
}

/// micad's gdb port (socket_listener.c MICA_GDB_SERVER_PORT).
const GDB_PORT: u16 = 5678;
/// micad builds the gdb command in a 256-byte buffer.
const GDB_CMD_MAX: usize = 255;

/// Handles one control request for `name`; `raw` is what one recv returned.
pub fn control(shared: &Shared, reg: &mut Registry, name: &str, raw: &[u8]) -> (Answer, After) {
    // micad compares C strings: anything after a NUL is not part of the request.
    let raw = raw.split(|&b| b == 0).next().unwrap_or_default();
    let msg = String::from_utf8_lossy(raw).into_owned();
    let Some(client) = reg.clients.get_mut(name) else {
        return (Answer::failed_silently(&format!("{name} has a socket but no client")), After::Nothing);
    };
    let live = &shared.live;
    // client_ctrl_handler's order: start, stop, rm (exact), set (any request
    // beginning with those three letters), status, gdb (exact), anything else.
    let answer = match msg.as_str() {
        // remoteproc_config refuses any state but Offline.
        "start" if client.is_running() => Answer::failed_silently(&format!("{name} is not offline")),
        "start" => match client.start(&shared.opts.socket_dir, &shared.opts.tty_dir, live) {
            Ok(()) => Answer::ok(""),
            Err(e) => Answer::failed_silently(&format!("start {name}: {}: {e}", client.msg.firmware_path)),
        },
        // mica_stop returns nothing: stop always succeeds, running or not.
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
        _ if msg.starts_with("set") => set(client, shared.opts.pedestal, &msg),
        "status" => {
            // show_client_status: a running RTOS that powered its core off is
            // stopped (mica_stop) and reported Offline.
            if client.halted() {
                client.stop(live);
            }
            Answer::ok(client.status_line())
        }
        "gdb" if client.msg.debug => {
            let mut cmd = format!(
                "gdb {} -ex 'set remotetimeout unlimited' -ex 'target extended-remote :{GDB_PORT}' -ex 'set remote run-packet off'",
                client.msg.firmware_path
            );
            truncate_bytes(&mut cmd, GDB_CMD_MAX);
            Answer::ok(cmd)
        }
        "gdb" => Answer::failed("The elf file does not support debugging\n"),
        _ => Answer::failed(format!("Invalid command: {msg}")),
    };
    (answer, After::Nothing)
}

fn truncate_bytes(s: &mut String, max: usize) {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
}

/// `set <key> <value>`: tokens split on spaces as strtok does; then mica_set,
/// which only the Xen pedestal implements (xen_rproc.c set_resource).
fn set(client: &mut RtosClient, pedestal: Pedestal, msg: &str) -> Answer {
    let tokens: Vec<&str> = msg.split(' ').filter(|t| !t.is_empty()).collect();
    let [_, key, value] = tokens[..] else {
        return Answer::failed("Invalid set command. Usage: set <key> <value>");
    };
    if pedestal != Pedestal::Xen {
        return Answer::failed_silently(&format!("set is implemented only by the Xen pedestal, not {pedestal}"));
    }
    // `maxvcpu` is a key micad knows but refuses (xl cannot change it): the same
    // silent failure as an unknown key.
    let Some(key) = SetKey::parse(key) else {
        return Answer::failed_silently(&format!("set: key {key:?} cannot be set"));
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
        // micad runs xl, which refuses the value; the simulator checks its form.
        return Answer::failed_silently(&format!("set {key}: bad value {value:?}"));
    }
    tracing::info!(client = %m.name, "set {key} {value}");
    Answer::ok("")
}
