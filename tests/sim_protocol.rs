//! `micrun sim` checked with raw bytes over unix sockets, independently of our own
//! codec: every offset and text below is written out from micad's source (the
//! openEuler mcs repository; line numbers as of its 2026 master, commit 40f5e2f).
//! Each test names the function and lines it follows.

use std::io::{Read, Write};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Sim {
    dir: tempfile::TempDir,
    child: Child,
}

impl Sim {
    fn start(pedestal: &str) -> Sim {
        let dir = tempfile::tempdir().unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_micrun"))
            .arg("sim")
            .args(["--socket-dir".as_ref(), dir.path().join("mica").as_os_str()])
            .args(["--tty-dir".as_ref(), dir.path().join("dev").as_os_str()])
            .args(["--pedestal", pedestal])
            .args(["--pid-file".as_ref(), dir.path().join("micad.pid").as_os_str()])
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let sim = Sim { dir, child };
        wait_for(|| sim.dir.path().join("micad.pid").exists(), "simulator start-up");
        sim
    }

    fn sock(&self, name: &str) -> PathBuf {
        self.dir.path().join("mica").join(format!("{name}.socket"))
    }

    fn create(&self, msg: &[u8]) -> String {
        exchange(&self.sock("mica-create"), msg)
    }

    fn ask(&self, name: &str, req: &str) -> String {
        exchange(&self.sock(name), req.as_bytes())
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let _ = self.child.wait();
    }
}

fn wait_for(mut cond: impl FnMut() -> bool, what: &str) {
    let t0 = Instant::now();
    while !cond() {
        assert!(t0.elapsed() < Duration::from_secs(10), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// One request per connection; the whole reply up to the server's close.
fn exchange(socket: &Path, request: &[u8]) -> String {
    let mut s = UnixStream::connect(socket).unwrap_or_else(|e| panic!("{}: {e}", socket.display()));
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    String::from_utf8(out).unwrap()
}

/// A create message built by hand: name at 0, path at 66, ped at 322, cpu_str at
/// 595, ints from 724 (host order), all other bytes zero.
fn create_msg(name: &[u8], path: &str, ped: &str, cpu: &str) -> Vec<u8> {
    let mut m = vec![0u8; 1772];
    m[..name.len()].copy_from_slice(name);
    m[66..66 + path.len()].copy_from_slice(path.as_bytes());
    m[322..322 + ped.len()].copy_from_slice(ped.as_bytes());
    m[595..595 + cpu.len()].copy_from_slice(cpu.as_bytes());
    for off in (724..748).step_by(4) {
        m[off..off + 4].copy_from_slice(&(-1i32).to_ne_bytes());
    }
    if ped == "xen" {
        // what xen_rproc.c generate_xen_cfg cannot do without: ped_cfg, vcpu_num, memory
        m[338..338 + XEN_CFG.len()].copy_from_slice(XEN_CFG.as_bytes());
        m[724..728].copy_from_slice(&1i32.to_ne_bytes());
        m[740..744].copy_from_slice(&64i32.to_ne_bytes());
    }
    m
}

const XEN_CFG: &str = "/boot/zephyr.bin";

fn is_socket(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_socket())
}

/// create_msg with ped_cfg (offset 338) and debug (594) set too.
fn create_msg_cfg(name: &[u8], path: &str, ped: &str, cpu: &str, ped_cfg: &str, debug: bool) -> Vec<u8> {
    let mut m = create_msg(name, path, ped, cpu);
    m[338..338 + ped_cfg.len()].copy_from_slice(ped_cfg.as_bytes());
    m[594] = debug as u8;
    m
}

fn line(name: &str, cpu: &str, state: &str) -> String {
    format!("{name:<30}{cpu:<20}{state:<20}")
}

#[test]
fn start_up_wipes_the_socket_dir_and_writes_the_pid() {
    let sim = Sim::start("xen");
    let pid: u32 = std::fs::read_to_string(sim.dir.path().join("micad.pid")).unwrap().trim().parse().unwrap();
    assert_eq!(pid, sim.child.id());
    assert!(is_socket(&sim.sock("mica-create")));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(sim.sock("mica-create")).unwrap().permissions().mode() & 0o777, 0o600);
}

/// socket_listener.c create_mica_client (434-505); the state after create is
/// OpenAMP remoteproc_init's Offline, which no *_rproc.c init changes.
#[test]
fn fields_at_exact_offsets_with_garbage_after_nuls() {
    let sim = Sim::start("xen");
    let mut m = create_msg(b"fw1", "/bin/true", "xen", "1");
    m[4..66].fill(b'G'); // after the name's NUL at 3
    m[66 + 10..322].fill(0xEE); // after the path's NUL
    m[595 + 2..723].fill(b'9'); // after cpu_str's NUL
    m[748..1260].fill(b'i'); // iomem without a NUL: ignored by us, not read on
    assert_eq!(sim.create(&m), "MICA-SUCCESS");
    assert!(is_socket(&sim.sock("fw1")));
    assert_eq!(sim.ask("fw1", "status"), line("fw1", "1", "Offline") + "MICA-SUCCESS");
}

/// create_mica_client 455: name[MAX_NAME_LEN - 1] = '\0'; show_status and
/// truncate_name_for_display (239-266).
#[test]
fn name_byte_65_is_forced_to_nul() {
    let sim = Sim::start("xen");
    let name = [b'n'; 66];
    assert_eq!(sim.create(&create_msg(&name, "/bin/true", "xen", "0")), "MICA-SUCCESS");
    let n65 = "n".repeat(65);
    assert!(is_socket(&sim.sock(&n65)));
    assert!(!sim.sock(&"n".repeat(66)).exists());
    assert_eq!(sim.ask(&n65, "status"), line("nnnnnnnnnnnn...n", "0", "Offline") + "MICA-SUCCESS");
}

/// check_create_msg (209-233): access(path) first, then the name against every
/// listener, mica-create's own included; send_log then MICA-FAILED (499-500).
/// The ELF is read at start (mica.c mica_start -> load_client_image), not at create.
#[test]
fn duplicate_and_missing_firmware_and_non_elf() {
    let sim = Sim::start("xen");
    assert_eq!(sim.create(&create_msg(b"dup", "/bin/true", "xen", "0")), "MICA-SUCCESS");
    assert_eq!(sim.create(&create_msg(b"dup", "/bin/true", "xen", "0")), "dup is already createdMICA-FAILED");
    assert_eq!(
        sim.create(&create_msg(b"gone", "/nonexistent/zephyr.elf", "xen", "0")),
        "No such file: /nonexistent/zephyr.elf".to_string() + "MICA-FAILED"
    );
    assert_eq!(
        sim.create(&create_msg(b"dup", "/nonexistent/zephyr.elf", "xen", "0")),
        "No such file: /nonexistent/zephyr.elf".to_string() + "MICA-FAILED",
        "the file is checked before the name"
    );
    assert_eq!(sim.create(&create_msg(b"mica-create", "/bin/true", "xen", "0")), "mica-create is already createdMICA-FAILED");
    let text = sim.dir.path().join("notes.txt");
    std::fs::write(&text, "not firmware").unwrap();
    assert_eq!(sim.create(&create_msg(b"txt", text.to_str().unwrap(), "xen", "0")), "MICA-SUCCESS");
    assert_eq!(sim.ask("txt", "start"), "MICA-FAILED");
    assert_eq!(sim.ask("txt", "status"), line("txt", "0", "Offline") + "MICA-SUCCESS");
    assert!(!sim.sock("gone").exists());
}

/// create_mica_client 437 and 449: the message starts zeroed and one recv of at
/// most its size fills what arrived, so a short message reads as zeros after its
/// end; an empty one has an empty path (check_create_msg 215-219).
#[test]
fn short_create_message_reads_as_zeros() {
    let sim = Sim::start("xen");
    assert_eq!(sim.create(&create_msg(b"short", "/bin/true", "xen", "0")[..600]), "MICA-SUCCESS");
    assert_eq!(sim.ask("short", "status"), line("short", "0", "Offline") + "MICA-SUCCESS");
    // A peer that sends nothing and shuts its side: recv returns 0 bytes.
    let mut s = UnixStream::connect(sim.sock("mica-create")).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert_eq!(out, "No such file: MICA-FAILED");
}

/// client_ctrl_handler (289-399): a 32-byte recv, exact compares, "Invalid
/// command: %s" (380-383); `set` is any request starting with those 3 letters
/// (355), its strtok check (358-366); start_gdb_client (268-287) sends the text
/// with its newline, or the gdb command line with port 5678.
#[test]
fn invalid_commands_and_the_32_byte_read() {
    let sim = Sim::start("xen");
    sim.create(&create_msg(b"c", "/bin/true", "xen", "0"));
    assert_eq!(sim.ask("c", "hello"), "Invalid command: helloMICA-FAILED");
    assert_eq!(sim.ask("c", "status\n"), "Invalid command: status\nMICA-FAILED");
    assert_eq!(sim.ask("c", "START"), "Invalid command: STARTMICA-FAILED");
    // micad reads 32 bytes and closes with the rest unread, which resets the
    // connection: the reply may be lost, which is why requests stay <= 31 bytes.
    let mut s = UnixStream::connect(sim.sock("c")).unwrap();
    s.write_all("x".repeat(40).as_bytes()).unwrap();
    let mut out = Vec::new();
    match s.read_to_end(&mut out) {
        Ok(_) => assert_eq!(String::from_utf8(out).unwrap(), format!("Invalid command: {}MICA-FAILED", "x".repeat(32))),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset),
    }
    assert_eq!(sim.ask("c", &"x".repeat(32)), format!("Invalid command: {}MICA-FAILED", "x".repeat(32)));
    assert_eq!(sim.ask("c", "gdb"), "The elf file does not support debugging\nMICA-FAILED");
    let usage = "Invalid set command. Usage: set <key> <value>MICA-FAILED";
    assert_eq!(sim.ask("c", "setfoo"), usage);
    assert_eq!(sim.ask("c", "settings a b"), "MICA-FAILED", "a `set` whose key xen_rproc.c does not know");
    sim.create(&create_msg_cfg(b"dbg", "/bin/true", "xen", "0", "", true));
    assert_eq!(
        sim.ask("dbg", "gdb"),
        "gdb /bin/true -ex 'set remotetimeout unlimited' -ex 'target extended-remote :5678' -ex 'set remote run-packet off'MICA-SUCCESS"
    );
}

#[test]
fn status_line_truncates_a_container_id() {
    let sim = Sim::start("baremetal");
    let id = "0123456789abcdef".repeat(4);
    assert_eq!(sim.create(&create_msg(id.as_bytes(), "/bin/true", "", "")), "MICA-SUCCESS");
    assert_eq!(sim.ask(&id, "status"), line("0123456789ab...f", "", "Offline") + "MICA-SUCCESS");
}

/// xen_rproc.c set_resource (437-500): key lowercased, 7 keys, maxvcpu refused.
#[test]
fn set_on_xen() {
    let sim = Sim::start("xen");
    sim.create(&create_msg(b"x", "/bin/true", "xen", "0"));
    for req in ["set memory 64", "set MaxMemory 128", "set cpucapacity 50", "set cpuweight 256", "set vcpu 1"] {
        assert_eq!(sim.ask("x", req), "MICA-SUCCESS", "{req}");
    }
    assert_eq!(sim.ask("x", "set cpu 1"), "MICA-SUCCESS");
    assert!(sim.ask("x", "status").starts_with(&line("x", "1", "Offline")));
    assert_eq!(sim.ask("x", "set maxvcpu 2"), "MICA-FAILED");
    // The Go micrun's spellings, and a bad value: failure without text.
    assert_eq!(sim.ask("x", "set CPUCpacity 5"), "MICA-FAILED");
    assert_eq!(sim.ask("x", "set MaxMem 5"), "MICA-FAILED");
    assert_eq!(sim.ask("x", "set memory lots"), "MICA-FAILED");
    let usage = "Invalid set command. Usage: set <key> <value>MICA-FAILED";
    assert_eq!(sim.ask("x", "set memory"), usage);
    assert_eq!(sim.ask("x", "set memory 1 2"), usage);
}

/// mica.c mica_set (88-102): no ped_ops on bare metal, -EINVAL, no text.
#[test]
fn set_fails_on_bare_metal() {
    let sim = Sim::start("baremetal");
    sim.create(&create_msg(b"b", "/bin/true", "baremetal", "0"));
    assert_eq!(sim.ask("b", "set memory 64"), "MICA-FAILED");
    assert_eq!(sim.ask("b", "set memory"), "Invalid set command. Usage: set <key> <value>MICA-FAILED");
}

/// baremetal_rproc.c rproc_init (141-148) reads strtoul(cpu_str, NULL, 0), so
/// `1-2` is CPU 1 and the list is shown as sent; remoteproc_core.c create_client
/// (128-137) knows only the riscv hetero client; jailhouse_rproc.c rproc_init
/// (283-287) opens the cell file named by ped_cfg.
#[test]
fn pedestal_mismatch_and_pedestal_init_rules() {
    let sim = Sim::start("baremetal");
    let r = sim.create(&create_msg(b"x", "/bin/true", "xen", "0"));
    assert!(r.ends_with("MICA-FAILED") && r.contains("pedestal xen"), "{r}");
    assert_eq!(sim.create(&create_msg(b"y", "/bin/true", "", "1-2")), "MICA-SUCCESS");
    assert_eq!(sim.ask("y", "status"), line("y", "1-2", "Offline") + "MICA-SUCCESS");
    let hetero = Sim::start("hetero");
    assert_eq!(hetero.create(&create_msg(b"h", "/bin/true", "hetero", "0")), "MICA-FAILED");
    assert_eq!(hetero.create(&create_msg(b"h", "/bin/true", "hetero", "riscv")), "MICA-SUCCESS");
    let jh = Sim::start("jailhouse");
    assert_eq!(jh.create(&create_msg_cfg(b"j", "/bin/true", "jailhouse", "1", "/nonexistent/cell", false)), "MICA-FAILED");
    let cell = jh.dir.path().join("rtos.cell");
    std::fs::write(&cell, "cell").unwrap();
    assert_eq!(jh.create(&create_msg_cfg(b"j", "/bin/true", "jailhouse", "1", cell.to_str().unwrap(), false)), "MICA-SUCCESS");
}

/// client_ctrl_handler 347-354 and 386-390: reply, close, then free_listener_by_name unlinks.
#[test]
fn rm_replies_then_unlinks_the_socket() {
    let sim = Sim::start("xen");
    sim.create(&create_msg(b"gone-soon", "/bin/true", "xen", "0"));
    assert_eq!(sim.ask("gone-soon", "rm"), "MICA-SUCCESS");
    wait_for(|| !sim.sock("gone-soon").exists(), "socket unlinked after rm");
    // The name is free again.
    assert_eq!(sim.create(&create_msg(b"gone-soon", "/bin/true", "xen", "0")), "MICA-SUCCESS");
}

/// remoteproc_core.c show_client_status (225-233): a running client whose core is
/// off is stopped and shown Offline, with no services (mica.c mica_stop 55-70
/// unregisters them); `stop` of an Offline client still succeeds (mica_stop
/// returns nothing: socket_listener.c 344-346).
#[test]
fn halted_firmware_goes_offline_at_the_next_status() {
    let sim = Sim::start("baremetal");
    sim.create(&create_msg(b"t", "/bin/true", "", "0"));
    assert_eq!(sim.ask("t", "start"), "MICA-SUCCESS");
    let exit = sim.dir.path().join("mica/t.exit");
    wait_for(|| exit.exists(), "t.exit");
    assert_eq!(std::fs::read_to_string(&exit).unwrap().trim(), "0");
    assert_eq!(sim.ask("t", "status"), line("t", "0", "Offline") + "MICA-SUCCESS");
    assert_eq!(sim.ask("t", "stop"), "MICA-SUCCESS", "stopping an offline client");
    assert!(!sim.dir.path().join("dev/ttyRPMSG_t_0").exists());
}

/// rpmsg_pty.c get_rpmsg_tty_dev (546-562) prints `rpmsg-tty(<dev>) `, and
/// rpmsg_service.c print_device_of_service (24-42) `<name> ` for rpc and umt, in
/// the order socket_listener.c 327-343 registers them.
#[test]
fn host_firmware_console_through_the_tty_link() {
    let sim = Sim::start("baremetal");
    sim.create(&create_msg(b"cat.1", "/bin/cat", "", "0"));
    assert_eq!(sim.ask("cat.1", "start"), "MICA-SUCCESS");
    let link = sim.dir.path().join("dev/ttyRPMSG_cat_1_0");
    wait_for(|| link.exists(), "tty link");
    let status = sim.ask("cat.1", "status");
    let expect = format!("rpmsg-tty({}) rpmsg-rpc rpmsg-umt MICA-SUCCESS", link.display());
    assert!(status.starts_with(&line("cat.1", "0", "Running")) && status.ends_with(&expect), "{status}");
    let mut tty = std::fs::OpenOptions::new().read(true).write(true).open(&link).unwrap();
    tty.write_all(b"ping\n").unwrap();
    let mut buf = [0u8; 5];
    tty.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"ping\n");
    assert_eq!(sim.ask("cat.1", "stop"), "MICA-SUCCESS");
    assert_eq!(sim.ask("cat.1", "status"), line("cat.1", "0", "Offline") + "MICA-SUCCESS");
    assert!(!link.exists());
    assert!(!sim.dir.path().join("mica/cat.1.exit").exists(), "a stopped firmware did not halt by itself");
}

#[test]
fn foreign_elf_gets_an_emulated_console() {
    let sim = Sim::start("baremetal");
    let fw = sim.dir.path().join("zephyr.elf");
    let mut head = vec![0u8; 64];
    head[..4].copy_from_slice(b"\x7fELF");
    head[4] = 1; // 32-bit
    head[5] = 1; // little-endian
    head[16] = 2; // ET_EXEC
    head[18] = 40; // EM_ARM
    std::fs::write(&fw, head).unwrap();
    assert_eq!(sim.create(&create_msg(b"z", fw.to_str().unwrap(), "", "0")), "MICA-SUCCESS");
    assert_eq!(sim.ask("z", "start"), "MICA-SUCCESS");
    let link = sim.dir.path().join("dev/ttyRPMSG_z_0");
    wait_for(|| link.exists(), "tty link");
    let mut tty = std::fs::OpenOptions::new().read(true).write(true).open(&link).unwrap();
    let mut banner = Vec::new();
    let mut byte = [0u8];
    while !banner.ends_with(b"\r\n") {
        tty.read_exact(&mut byte).unwrap();
        banner.push(byte[0]);
    }
    assert!(String::from_utf8_lossy(&banner).contains("emulated console for z"));
    tty.write_all(b"hi").unwrap();
    let mut echo = [0u8; 2];
    tty.read_exact(&mut echo).unwrap();
    assert_eq!(&echo, b"hi");
}

#[test]
fn one_request_at_a_time() {
    let sim = Sim::start("xen");
    sim.create(&create_msg(b"a", "/bin/true", "xen", "0"));
    // A connection that has not sent its request yet holds the daemon, as in micad.
    let mut stalled = UnixStream::connect(sim.sock("a")).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let t0 = Instant::now();
    let other = std::thread::spawn({
        let p = sim.sock("mica-create");
        move || exchange(&p, &create_msg(b"b", "/bin/true", "xen", "0"))
    });
    std::thread::sleep(Duration::from_millis(300));
    stalled.write_all(b"status").unwrap();
    let mut out = String::new();
    stalled.read_to_string(&mut out).unwrap();
    assert!(out.ends_with("MICA-SUCCESS"));
    assert_eq!(other.join().unwrap(), "MICA-SUCCESS");
    assert!(t0.elapsed() >= Duration::from_millis(300), "the create waited for the status request");
}

/// xen_rproc.c generate_xen_cfg (154-165, via rproc_init at create): a domain
/// config needs vcpu_num >= 0, memory >= 0 and ped_cfg; without one the create
/// fails with no text, and no client is left.
#[test]
fn xen_create_without_memory_vcpus_or_ped_cfg_fails_silently() {
    let sim = Sim::start("xen");
    let cases: [(&[u8], fn(&mut Vec<u8>)); 3] = [
        (b"nomem", |m| m[740..744].copy_from_slice(&(-1i32).to_ne_bytes())),
        (b"novcpu", |m| m[724..728].copy_from_slice(&(-1i32).to_ne_bytes())),
        (b"nocfg", |m| m[338..594].fill(0)),
    ];
    for (name, spoil) in cases {
        let mut m = create_msg(name, "/bin/true", "xen", "0");
        spoil(&mut m);
        assert_eq!(sim.create(&m), "MICA-FAILED", "{}", String::from_utf8_lossy(name));
        assert!(!sim.sock(std::str::from_utf8(name).unwrap()).exists());
    }
    assert_eq!(sim.create(&create_msg(b"ok", "/bin/true", "xen", "0")), "MICA-SUCCESS");
}

/// Every control request in each state a client passes through (bare metal),
/// with micad's reply bytes: socket_listener.c client_ctrl_handler (305-395:
/// start runs mica_start and registers tty, rpc and umt; stop runs mica_stop
/// and always succeeds; rm runs mica_remove; set goes to mica_set, which has
/// no pedestal ops on bare metal; gdb without debug says so at 273-274;
/// anything else is "Invalid command: <msg>" at 381); mica.c mica_start
/// (26-52), mica_stop (54-70), mica_remove (72-87, stops a running client
/// first); a second start fails without text, as remoteproc's load refuses a
/// client that is not Offline.
#[test]
fn every_request_in_every_state() {
    let sim = Sim::start("baremetal");
    let ok = "MICA-SUCCESS";
    let no_gdb = "The elf file does not support debugging\nMICA-FAILED";
    let offline = line("m", "0", "Offline") + ok;
    let link = sim.dir.path().join("dev/ttyRPMSG_m_0");
    // The tty is listed once the RTOS announced it, a moment after start.
    let running = || {
        wait_for(|| link.exists() && sim.ask("m", "status").contains("rpmsg-tty("), "tty announced");
        format!("{}rpmsg-tty({}) rpmsg-rpc rpmsg-umt {ok}", line("m", "0", "Running"), link.display())
    };
    assert_eq!(sim.create(&create_msg(b"m", "/bin/cat", "", "0")), ok);
    // Offline, just created.
    assert_eq!(sim.ask("m", "status"), offline);
    assert_eq!(sim.ask("m", "set memory 64"), "MICA-FAILED");
    assert_eq!(sim.ask("m", "gdb"), no_gdb);
    assert_eq!(sim.ask("m", "pause"), "Invalid command: pauseMICA-FAILED");
    assert_eq!(sim.ask("m", "stop"), ok, "stop of an Offline client");
    assert_eq!(sim.ask("m", "status"), offline);
    // Running.
    assert_eq!(sim.ask("m", "start"), ok);
    let up = running();
    assert_eq!(sim.ask("m", "status"), up);
    assert_eq!(sim.ask("m", "start"), "MICA-FAILED", "start of a Running client");
    assert_eq!(sim.ask("m", "status"), up, "a refused start leaves it Running");
    assert_eq!(sim.ask("m", "set memory 64"), "MICA-FAILED");
    assert_eq!(sim.ask("m", "gdb"), no_gdb);
    assert_eq!(sim.ask("m", "resume"), "Invalid command: resumeMICA-FAILED");
    // Offline again after stop: services gone, link gone, and it starts again.
    assert_eq!(sim.ask("m", "stop"), ok);
    assert_eq!(sim.ask("m", "status"), offline);
    assert!(!link.exists(), "tty link left after stop");
    assert_eq!(sim.ask("m", "start"), ok, "start after stop");
    let up = running();
    assert_eq!(sim.ask("m", "status"), up);
    // rm of a Running client stops it first, replies, then unlinks the socket.
    assert_eq!(sim.ask("m", "rm"), ok);
    wait_for(|| !sim.sock("m").exists(), "socket unlinked after rm");
    assert!(!link.exists(), "tty link left after rm");
}
