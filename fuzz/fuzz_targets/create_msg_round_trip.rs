//! The create message: what we encode must decode to the same message or be
//! refused with an error naming the field; decoding any 1772 bytes (the
//! simulator reads what a client sent) must not panic.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use micrun::backend::mica::protocol::{CreateMsg, Pedestal, ProtocolError, CREATE_MSG_LEN};

#[derive(Debug, Arbitrary)]
struct Fields {
    name: String,
    firmware_path: String,
    pedestal: u8,
    pedestal_config: String,
    debug: bool,
    cpu: String,
    ints: [i32; 6],
    iomem: String,
    network: String,
}

fn pedestal(b: u8) -> Pedestal {
    [Pedestal::BareMetal, Pedestal::Xen, Pedestal::Jailhouse, Pedestal::Hetero][b as usize % 4]
}

// The first byte picks the mode, so the corpus can hold real wire messages
// (mode 0) next to structured inputs.
fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    match mode % 3 {
        0 => decode_bytes(rest.to_vec()),
        1 => {
            let Ok(f) = Fields::arbitrary_take_rest(Unstructured::new(rest)) else { return };
            let [vcpu_num, max_vcpu_num, cpu_weight, cpu_capacity, memory_mib, max_memory_mib] = f.ints;
            round_trip(CreateMsg {
                name: f.name,
                firmware_path: f.firmware_path,
                pedestal: pedestal(f.pedestal),
                pedestal_config: f.pedestal_config,
                debug: f.debug,
                cpu: f.cpu,
                vcpu_num,
                max_vcpu_num,
                cpu_weight,
                cpu_capacity,
                memory_mib,
                max_memory_mib,
                iomem: f.iomem,
                network: f.network,
            })
        }
        _ => {
            // The constructor the backend uses.
            let Ok((name, path, p, cpu)) = <(String, String, u8, String)>::arbitrary_take_rest(Unstructured::new(rest)) else {
                return;
            };
            round_trip(CreateMsg::new(&name, &path, pedestal(p), &cpu))
        }
    }
});

fn decode_bytes(mut b: Vec<u8>) {
    if CreateMsg::decode(&b).is_ok() {
        assert_eq!(b.len(), CREATE_MSG_LEN);
    }
    b.resize(CREATE_MSG_LEN, 0);
    let m = CreateMsg::decode(&b).expect("any 1772 bytes decode");
    // A decoded message that fits again must survive another trip.
    if let Ok(again) = m.encode() {
        assert_eq!(CreateMsg::decode(&again).unwrap(), m);
    }
}

fn round_trip(m: CreateMsg) {
    let fields: [(&str, &str, usize); 7] = [
        ("name", &m.name, 65),
        ("firmware path", &m.firmware_path, 255),
        ("pedestal", m.pedestal.as_wire(), 15),
        ("pedestal config", &m.pedestal_config, 255),
        ("cpu list", &m.cpu, 127),
        ("iomem", &m.iomem, 511),
        ("network", &m.network, 511),
    ];
    match m.encode() {
        Ok(bytes) => {
            for (field, v, max) in fields {
                assert!(v.len() <= max && !v.contains('\0'), "{field} {v:?} was accepted");
            }
            assert_eq!(CreateMsg::decode(&bytes).unwrap(), m);
        }
        Err(e) => {
            // The first bad field in wire order, named with what is wrong with it.
            let (field, v, max) = fields
                .into_iter()
                .find(|(_, v, max)| v.contains('\0') || v.len() > *max)
                .unwrap_or_else(|| panic!("refused a message whose fields all fit: {e}"));
            let expect = if v.contains('\0') {
                ProtocolError::Nul { field }
            } else {
                ProtocolError::TooLong { field, len: v.len(), max }
            };
            assert_eq!(e, expect);
            assert!(e.to_string().contains(field));
        }
    }
}
