//! Raw-byte tests of the codec: offsets are written out as numbers here on purpose,
//! so a wrong constant in protocol.rs cannot make its own test pass.

use super::*;

fn sample() -> CreateMsg {
    CreateMsg {
        name: "zephyr-1".into(),
        firmware_path: "/var/lib/fw/zephyr.elf".into(),
        pedestal: Pedestal::Xen,
        pedestal_config: "/boot/xen.bin".into(),
        debug: true,
        cpu: "1-3".into(),
        vcpu_num: 3,
        max_vcpu_num: 4,
        cpu_weight: 256,
        cpu_capacity: 150,
        memory_mib: 64,
        max_memory_mib: 128,
        iomem: "0x1000,1".into(),
        network: "bridge=xenbr0".into(),
    }
}

fn cstr(buf: &[u8], off: usize) -> &[u8] {
    let end = buf[off..].iter().position(|&b| b == 0).unwrap();
    &buf[off..off + end]
}

#[test]
fn encode_puts_every_field_at_its_offset() {
    let b = sample().encode().unwrap();
    assert_eq!(b.len(), 1772);
    assert_eq!(cstr(&b, 0), b"zephyr-1");
    assert_eq!(cstr(&b, 66), b"/var/lib/fw/zephyr.elf");
    assert_eq!(cstr(&b, 322), b"xen");
    assert_eq!(cstr(&b, 338), b"/boot/xen.bin");
    assert_eq!(b[594], 1);
    assert_eq!(cstr(&b, 595), b"1-3");
    assert_eq!(b[723], 0, "padding byte after cpu_str");
    let int = |o: usize| i32::from_ne_bytes(b[o..o + 4].try_into().unwrap());
    assert_eq!([int(724), int(728), int(732), int(736), int(740), int(744)], [3, 4, 256, 150, 64, 128]);
    assert_eq!(cstr(&b, 748), b"0x1000,1");
    assert_eq!(cstr(&b, 1260), b"bridge=xenbr0");
    // NUL padding: nothing but zeros after each string inside its field.
    assert!(b[8..66].iter().all(|&x| x == 0));
    assert!(b[1260 + 13..].iter().all(|&x| x == 0));
}

#[test]
fn integers_are_host_byte_order() {
    let mut m = sample();
    m.memory_mib = 0x0102_0304;
    let b = m.encode().unwrap();
    let expect = if cfg!(target_endian = "little") { [4, 3, 2, 1] } else { [1, 2, 3, 4] };
    assert_eq!(b[740..744], expect);
    assert_eq!(CreateMsg::new("a", "/f", Pedestal::BareMetal, "0").encode().unwrap()[724..728], [0xff; 4]);
}

#[test]
fn decode_round_trips() {
    let m = sample();
    assert_eq!(CreateMsg::decode(&m.encode().unwrap()).unwrap(), m);
}

#[test]
fn decode_ignores_garbage_after_nul() {
    let mut b = sample().encode().unwrap();
    b[9..66].fill(b'G');
    b[66 + 23..322].fill(0xAA);
    let m = CreateMsg::decode(&b).unwrap();
    assert_eq!(m.name, "zephyr-1");
    assert_eq!(m.firmware_path, "/var/lib/fw/zephyr.elf");
}

#[test]
fn decode_forces_name_byte_65_and_network_byte_1771() {
    let mut b = [0u8; 1772];
    b[0..66].fill(b'n');
    b[1260..1772].fill(b'w');
    let m = CreateMsg::decode(&b).unwrap();
    assert_eq!(m.name.len(), 65);
    assert_eq!(m.network.len(), 511);
}

#[test]
fn decode_unforced_field_without_nul_stops_at_its_end() {
    let mut b = [0u8; 1772];
    b[322..338].fill(b'p');
    b[338] = b'c';
    let m = CreateMsg::decode(&b).unwrap();
    assert_eq!(m.pedestal, Pedestal::BareMetal);
    assert_eq!(m.pedestal_config, "c");
}

#[test]
fn decode_rejects_wrong_length() {
    assert_eq!(CreateMsg::decode(&[0; 1771]).unwrap_err(), ProtocolError::CreateLen(1771));
}

#[test]
fn usable_lengths() {
    let mut m = sample();
    m.name = "n".repeat(65);
    assert!(m.encode().is_ok());
    m.name = "n".repeat(66);
    assert_eq!(m.encode().unwrap_err(), ProtocolError::TooLong { field: "name", len: 66, max: 65 });
    let mut m = sample();
    m.firmware_path = "/".repeat(256);
    assert!(matches!(m.encode(), Err(ProtocolError::TooLong { field: "firmware path", max: 255, .. })));
    let mut m = sample();
    m.iomem = "i".repeat(512);
    assert!(matches!(m.encode(), Err(ProtocolError::TooLong { field: "iomem", max: 511, .. })));
    let mut m = sample();
    m.cpu = "0\0".into();
    assert_eq!(m.encode().unwrap_err(), ProtocolError::Nul { field: "cpu list" });
}

#[test]
fn pedestal_wire_names() {
    for (w, p) in [("xen", Pedestal::Xen), ("jailhouse", Pedestal::Jailhouse), ("hetero", Pedestal::Hetero)] {
        assert_eq!(Pedestal::from_wire(w), p);
        assert_eq!(p.as_wire(), w);
    }
    for w in ["", "baremetal", "Xen", "kvm"] {
        assert_eq!(Pedestal::from_wire(w), Pedestal::BareMetal);
    }
}

#[test]
fn requests_are_exact_ascii() {
    assert_eq!(Request::Start.encode().unwrap(), "start");
    assert_eq!(Request::Stop.encode().unwrap(), "stop");
    assert_eq!(Request::Rm.encode().unwrap(), "rm");
    assert_eq!(Request::Status.encode().unwrap(), "status");
    assert_eq!(Request::Gdb.encode().unwrap(), "gdb");
    let set = Request::Set { key: SetKey::MaxMemory, value: "512".into() };
    assert_eq!(set.encode().unwrap(), "set maxmemory 512");
}

#[test]
fn requests_longer_than_31_bytes_are_refused() {
    let fits = Request::Set { key: SetKey::Cpu, value: "x".repeat(31 - 8) };
    assert_eq!(fits.encode().unwrap().len(), 31);
    let over = Request::Set { key: SetKey::Cpu, value: "x".repeat(32 - 8) };
    assert!(over.encode().unwrap_err().to_string().contains("at most 31"));
    let spaced = Request::Set { key: SetKey::Memory, value: "1 2".into() };
    assert!(spaced.encode().is_err());
    assert!(Request::Set { key: SetKey::Memory, value: String::new() }.encode().is_err());
}

#[test]
fn set_key_table() {
    let names: Vec<_> = SetKey::ALL.iter().map(|k| k.as_str()).collect();
    assert_eq!(names, ["cpucapacity", "cpuweight", "cpu", "vcpu", "memory", "maxmemory"]);
    assert_eq!(SetKey::parse("MEMORY"), Some(SetKey::Memory));
    assert_eq!(SetKey::parse("CpuCapacity"), Some(SetKey::CpuCapacity));
    // The Go micrun's spellings, which real micad rejects.
    assert_eq!(SetKey::parse("CPUCpacity"), None);
    assert_eq!(SetKey::parse("MaxMem"), None);
}

#[test]
fn replies() {
    assert_eq!(parse_reply(b"MICA-SUCCESS"), Some(Reply::Success(String::new())));
    assert_eq!(parse_reply(b"  line one\n MICA-SUCCESS"), Some(Reply::Success("line one".into())));
    assert_eq!(parse_reply(b"No such file: /x\nMICA-FAILED"), Some(Reply::Failed("No such file: /x".into())));
    // No separator between text and terminator.
    assert_eq!(parse_reply(b"busyMICA-FAILED"), Some(Reply::Failed("busy".into())));
    // A terminator split across reads is found once the rest arrives.
    assert_eq!(parse_reply(b"text MICA-SUC"), None);
    assert_eq!(parse_reply(b"text MICA-SUCCESS"), Some(Reply::Success("text".into())));
    assert!(matches!(parse_final_reply(b"half a reply"), Err(ProtocolError::NoTerminator(t)) if t == "half a reply"));
    assert!(parse_final_reply(b"").is_err());
}

#[test]
fn tty_names_are_sanitized() {
    assert_eq!(tty_name("rtos-1_a", 0), "ttyRPMSG_rtos-1_a_0");
    assert_eq!(tty_name("ns/id.x y", 2), "ttyRPMSG_ns_id_x_y_2");
}
