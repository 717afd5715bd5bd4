//! Just enough ELF to decide, like Zephyr's native_sim, whether a firmware file
//! can run on this host or only gets the emulated console.

use std::io::Read;
use std::path::Path;

const ET_EXEC: u16 = 2;
const ET_DYN: u16 = 3;

/// What the simulator will do with a firmware file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Firmware {
    /// An executable for this host: run as the RTOS.
    Host,
    /// A valid ELF for another machine (an ARM Zephyr image, say): emulated console.
    Foreign { machine: u16 },
}

/// e_machine of the build target.
pub const fn host_machine() -> u16 {
    if cfg!(target_arch = "x86_64") {
        62
    } else if cfg!(target_arch = "aarch64") {
        183
    } else if cfg!(target_arch = "x86") {
        3
    } else if cfg!(target_arch = "arm") {
        40
    } else if cfg!(target_arch = "riscv64") || cfg!(target_arch = "riscv32") {
        243
    } else if cfg!(target_arch = "loongarch64") {
        258
    } else {
        0
    }
}

/// Reads the ELF header; the error is the text the simulator sends back.
pub fn inspect(path: &Path) -> Result<Firmware, String> {
    let mut head = [0u8; 20];
    let read = std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut head));
    if read.is_err() || &head[..4] != b"\x7fELF" {
        return Err(format!("{} is not an ELF file", path.display()));
    }
    classify(&head).ok_or_else(|| format!("{} is not an ELF file", path.display()))
}

/// `head` is the first 20 bytes: ident, e_type and e_machine.
fn classify(head: &[u8; 20]) -> Option<Firmware> {
    let little = match head[5] {
        1 => true,
        2 => false,
        _ => return None,
    };
    let half = |o: usize| {
        let b = [head[o], head[o + 1]];
        if little { u16::from_le_bytes(b) } else { u16::from_be_bytes(b) }
    };
    let (e_type, machine) = (half(16), half(18));
    let host_class = if cfg!(target_pointer_width = "64") { 2 } else { 1 };
    let host_little = cfg!(target_endian = "little");
    let runnable = machine == host_machine()
        && head[4] == host_class
        && little == host_little
        && (e_type == ET_EXEC || e_type == ET_DYN);
    Some(if runnable { Firmware::Host } else { Firmware::Foreign { machine } })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(class: u8, data: u8, e_type: u16, machine: u16) -> [u8; 20] {
        let mut h = [0u8; 20];
        h[..4].copy_from_slice(b"\x7fELF");
        h[4] = class;
        h[5] = data;
        h[16..18].copy_from_slice(&e_type.to_le_bytes());
        h[18..20].copy_from_slice(&machine.to_le_bytes());
        h
    }

    #[test]
    fn host_executables_run() {
        assert_eq!(inspect(Path::new("/bin/true")).unwrap(), Firmware::Host);
        let class = if cfg!(target_pointer_width = "64") { 2 } else { 1 };
        assert_eq!(classify(&header(class, 1, ET_DYN, host_machine())), Some(Firmware::Host));
    }

    #[test]
    fn other_machines_and_objects_are_foreign() {
        // A 32-bit ARM Zephyr image.
        assert_eq!(classify(&header(1, 1, ET_EXEC, 40)), Some(Firmware::Foreign { machine: 40 }));
        // A relocatable object for this host is not runnable either.
        let class = if cfg!(target_pointer_width = "64") { 2 } else { 1 };
        assert_eq!(classify(&header(class, 1, 1, host_machine())), Some(Firmware::Foreign { machine: host_machine() }));
    }

    #[test]
    fn non_elf_is_refused_with_the_path() {
        let e = inspect(Path::new("/proc/self/status")).unwrap_err();
        assert!(e.contains("/proc/self/status is not an ELF file"), "{e}");
        assert!(classify(&header(2, 9, ET_EXEC, 62)).is_none());
    }
}
