//! Just enough ELF (64-bit, little-endian) to find what a binary or shared
//! object needs: its interpreter (`PT_INTERP`), its `DT_NEEDED` libraries,
//! and its `DT_RUNPATH`/`DT_RPATH`. Every read is bounds-checked: a
//! malformed file gives `None`, never a panic.

use std::path::{Path, PathBuf};

/// What an ELF file asks the dynamic loader for.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Needs {
    /// The program interpreter (dynamic loader), for executables.
    pub interp: Option<String>,
    /// `DT_NEEDED` names.
    pub needed: Vec<String>,
    /// `DT_RUNPATH` and `DT_RPATH` directories (`$ORIGIN` not expanded).
    pub runpath: Vec<String>,
}

fn bytes_at<const N: usize>(b: &[u8], o: usize) -> Option<[u8; N]> {
    b.get(o..o.checked_add(N)?)?.try_into().ok()
}

fn u16_at(b: &[u8], o: usize) -> Option<u16> {
    Some(u16::from_le_bytes(bytes_at(b, o)?))
}

fn u32_at(b: &[u8], o: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes_at(b, o)?))
}

fn u64_at(b: &[u8], o: usize) -> Option<u64> {
    Some(u64::from_le_bytes(bytes_at(b, o)?))
}

fn cstr_at(b: &[u8], o: usize) -> Option<String> {
    let rest = b.get(o..)?;
    let end = rest.iter().position(|&c| c == 0)?;
    String::from_utf8(rest.get(..end)?.to_vec()).ok()
}

/// Parses the bytes of an ELF file; `None` if it is not a 64-bit
/// little-endian ELF file or is malformed.
pub fn parse(b: &[u8]) -> Option<Needs> {
    if b.get(..4)? != b"\x7fELF" || *b.get(4)? != 2 || *b.get(5)? != 1 {
        return None;
    }
    let phoff = usize::try_from(u64_at(b, 0x20)?).ok()?;
    let phentsize = usize::from(u16_at(b, 0x36)?);
    let phnum = usize::from(u16_at(b, 0x38)?);
    let mut loads = Vec::new();
    let mut dynamic = None;
    let mut needs = Needs::default();
    for i in 0..phnum {
        let ph = phoff.checked_add(i.checked_mul(phentsize)?)?;
        let p_type = u32_at(b, ph)?;
        let offset = u64_at(b, ph.checked_add(8)?)?;
        let vaddr = u64_at(b, ph.checked_add(16)?)?;
        let filesz = u64_at(b, ph.checked_add(32)?)?;
        match p_type {
            1 => loads.push((vaddr, offset, filesz)),
            2 => dynamic = Some((offset, filesz)),
            3 => needs.interp = cstr_at(b, usize::try_from(offset).ok()?),
            _ => {}
        }
    }
    let Some((dyn_off, dyn_size)) = dynamic else {
        return Some(needs);
    };
    let mut strtab_vaddr = None;
    let mut needed_offsets = Vec::new();
    let mut runpath_offsets = Vec::new();
    // A dynamic section has a few dozen entries; a larger count is garbage.
    let count = usize::try_from(dyn_size / 16).ok()?.min(4096);
    for i in 0..count {
        let e = usize::try_from(dyn_off)
            .ok()?
            .checked_add(i.checked_mul(16)?)?;
        let tag = u64_at(b, e)?;
        let val = u64_at(b, e.checked_add(8)?)?;
        match tag {
            0 => break,
            1 => needed_offsets.push(val),
            5 => strtab_vaddr = Some(val),
            15 | 29 => runpath_offsets.push(val),
            _ => {}
        }
    }
    let strtab_vaddr = strtab_vaddr?;
    let strtab = loads
        .iter()
        .find(|(v, _, size)| strtab_vaddr >= *v && strtab_vaddr - v < *size)
        .and_then(|(v, off, _)| (strtab_vaddr - v).checked_add(*off))?;
    let string = |o: u64| cstr_at(b, usize::try_from(strtab.checked_add(o)?).ok()?);
    needs.needed = needed_offsets.into_iter().filter_map(string).collect();
    needs.runpath = runpath_offsets
        .into_iter()
        .filter_map(string)
        .flat_map(|s| s.split(':').map(str::to_owned).collect::<Vec<_>>())
        .filter(|s| !s.is_empty())
        .collect();
    Some(needs)
}

/// Reads and parses a file; `None` if unreadable or not ELF.
pub fn read(path: &Path) -> Option<Needs> {
    parse(&std::fs::read(path).ok()?)
}

/// The directories the loader searches by default on Debian (x86-64 and
/// aarch64 multiarch), after the runpath.
const DEFAULT_DIRS: &[&str] = &[
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib/aarch64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/lib64",
    "/usr/lib64",
    "/lib",
    "/usr/lib",
];

/// Finds a `DT_NEEDED` name for the object at `origin`.
pub fn resolve(name: &str, runpath: &[String], origin: &Path) -> Option<PathBuf> {
    if name.contains('/') {
        let p = PathBuf::from(name);
        return p.exists().then_some(p);
    }
    let origin_dir = origin
        .parent()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    runpath
        .iter()
        .map(|d| {
            d.replace("$ORIGIN", &origin_dir)
                .replace("${ORIGIN}", &origin_dir)
        })
        .chain(DEFAULT_DIRS.iter().map(|d| (*d).to_owned()))
        .map(|d| Path::new(&d).join(name))
        .find(|p| p.exists())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_running_test_binary_needs_libc() {
        let exe = std::env::current_exe().unwrap();
        let needs = read(&exe).expect("an ELF file");
        assert!(
            needs
                .interp
                .as_deref()
                .is_some_and(|i| i.contains("ld-linux")),
            "{needs:?}"
        );
        assert!(
            needs.needed.iter().any(|n| n.starts_with("libc.so")),
            "{needs:?}"
        );
        let libc = resolve("libc.so.6", &needs.runpath, &exe).expect("libc found");
        assert!(read(&libc).is_some());
    }

    #[test]
    fn garbage_is_not_elf_and_does_not_panic() {
        assert_eq!(parse(b""), None);
        assert_eq!(parse(b"#!/bin/sh\n"), None);
        let mut fake = b"\x7fELF\x02\x01".to_vec();
        fake.resize(64, 0xff);
        assert_eq!(parse(&fake), None);
        let whole = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        for len in [0, 7, 63, 64, 200, 4096] {
            let _ = parse(&whole[..len.min(whole.len())]);
        }
        // Every byte of the header flipped to 0xff in turn.
        for i in 0..64 {
            let mut broken = whole[..8192.min(whole.len())].to_vec();
            broken[i] = 0xff;
            let _ = parse(&broken);
        }
    }
}
