use super::*;
use crate::spec::{CpuResources, MemoryResources};

fn res(cpus: Option<&str>, quota: Option<i64>, period: Option<u64>, shares: Option<u64>, limit: Option<i64>) -> Resources {
    Resources {
        cpu: Some(CpuResources { cpus: cpus.map(String::from), quota, period, shares }),
        memory: Some(MemoryResources { limit, reservation: None }),
    }
}

#[test]
fn nothing_given_is_all_unset_on_xen() {
    let p = plan(None, Pedestal::Xen, "0-3", None).unwrap();
    assert_eq!(p, Plan { cpu: String::new(), vcpu_num: 1, cpu_weight: -1, cpu_capacity: -1, memory_mib: -1, max_memory_mib: -1 });
}

#[test]
fn bare_metal_always_names_one_cpu() {
    assert_eq!(plan(None, Pedestal::BareMetal, "0-3\n", None).unwrap().cpu, "3");
    let r = res(Some("5,2-3"), None, None, None, None);
    let p = plan(Some(&r), Pedestal::BareMetal, "0-7", None).unwrap();
    assert_eq!((p.cpu.as_str(), p.vcpu_num), ("2", 3));
    assert!(plan(None, Pedestal::BareMetal, "", None).is_err());
}

#[test]
fn xen_keeps_the_list_and_counts_vcpus() {
    let r = res(Some("1-3"), Some(150_000), Some(100_000), Some(2048), Some(256 * MIB));
    let p = plan(Some(&r), Pedestal::Xen, "0-3", None).unwrap();
    assert_eq!(p, Plan { cpu: "1-3".into(), vcpu_num: 3, cpu_weight: 512, cpu_capacity: 150, memory_mib: 256, max_memory_mib: 256 });
}

#[test]
fn vcpus_from_capacity_when_no_cpuset() {
    let p = plan(Some(&res(None, Some(250_000), Some(100_000), None, None)), Pedestal::Xen, "", None).unwrap();
    assert_eq!((p.cpu_capacity, p.vcpu_num), (250, 3));
    let p = plan(Some(&res(None, Some(10_000), Some(100_000), None, None)), Pedestal::Xen, "", None).unwrap();
    assert_eq!((p.cpu_capacity, p.vcpu_num), (10, 1));
    // quota -1 means unlimited: no cap.
    let p = plan(Some(&res(None, Some(-1), Some(100_000), None, None)), Pedestal::Xen, "", None).unwrap();
    assert_eq!((p.cpu_capacity, p.vcpu_num), (-1, 1));
}

#[test]
fn min_memory_annotation_is_the_boot_size_without_a_reservation() {
    // Alone: boot size, no ceiling.
    let p = plan(None, Pedestal::Xen, "", Some(48)).unwrap();
    assert_eq!((p.memory_mib, p.max_memory_mib), (48, -1));
    // Below the limit: boot size under the ceiling.
    let mut r = res(None, None, None, None, Some(64 * MIB));
    let p = plan(Some(&r), Pedestal::Xen, "", Some(16)).unwrap();
    assert_eq!((p.memory_mib, p.max_memory_mib), (16, 64));
    // Above the limit: refused, naming the annotation.
    let e = plan(Some(&r), Pedestal::Xen, "", Some(128)).unwrap_err().to_string();
    assert!(e.contains("container.min_memory_mb=128") && e.contains("64 MiB"), "{e}");
    // An OCI reservation wins over the annotation.
    r.memory.as_mut().unwrap().reservation = Some(32 * MIB);
    let p = plan(Some(&r), Pedestal::Xen, "", Some(16)).unwrap();
    assert_eq!((p.memory_mib, p.max_memory_mib), (32, 64));
}

#[test]
fn weight_formula() {
    assert_eq!(weight_from_shares(1024), 256);
    assert_eq!(weight_from_shares(512), 128);
    assert_eq!(weight_from_shares(2), 1);
    assert_eq!(weight_from_shares(0), 1);
    assert_eq!(weight_from_shares(u64::MAX), 65535);
}

#[test]
fn memory_limit_and_reservation() {
    let mut r = res(None, None, None, None, Some(64 * MIB + 5));
    assert_eq!(plan(Some(&r), Pedestal::Xen, "", None).unwrap().memory_mib, 64);
    r.memory.as_mut().unwrap().reservation = Some(32 * MIB);
    let p = plan(Some(&r), Pedestal::Xen, "", None).unwrap();
    assert_eq!((p.memory_mib, p.max_memory_mib), (32, 64));
    let tiny = res(None, None, None, None, Some(1000));
    assert!(plan(Some(&tiny), Pedestal::Xen, "", None).unwrap_err().to_string().contains("below 1 MiB"));
    let huge = res(None, None, None, None, Some(i64::MAX));
    assert!(plan(Some(&huge), Pedestal::Xen, "", None).is_err());
}

#[test]
fn malformed_cpus_are_refused() {
    for bad in ["a", "3-1", "1,,2", "-1"] {
        let e = plan(Some(&res(Some(bad), None, None, None, None)), Pedestal::Xen, "", None).unwrap_err();
        assert!(e.to_string().contains("cpus"), "{bad}: {e}");
    }
}

#[test]
fn update_uses_micads_keys() {
    let r = res(None, None, None, None, Some(128 * MIB));
    assert_eq!(set_requests(&r).unwrap(), vec![(SetKey::Memory, "128".to_string())]);
    let r = res(Some("2-3"), Some(50_000), Some(100_000), Some(1024), None);
    assert_eq!(
        set_requests(&r).unwrap(),
        vec![
            (SetKey::Cpu, "2-3".into()),
            (SetKey::Vcpu, "2".into()),
            (SetKey::CpuCapacity, "50".into()),
            (SetKey::CpuWeight, "256".into())
        ]
    );
    assert!(set_requests(&Resources::default()).unwrap_err().to_string().contains("names no resource"));
}

#[test]
fn cpu_lists() {
    assert_eq!(parse_cpu_list("0-2,5,1"), Some(vec![0, 1, 2, 5]));
    assert_eq!(parse_cpu_list(""), None);
}
