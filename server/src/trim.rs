//! Gives back what a process mapped for its start-up and will not use
//! again: the prototype before it answers the master (so before any fork),
//! the master once the prototype is ready.
//!
//! Importing an app runs a lot of code once: the compiler and unmarshaller
//! of libpython, the loader, extension modules' init functions. Their pages
//! stay mapped in the prototype (and the kernel maps up to 16 neighbouring
//! pages of the page cache around each one touched), so they count in its
//! memory although it only waits for spawn commands from then on. Workers
//! do not inherit them (a fork copies no page tables of file mappings): a
//! worker maps what it runs. The master likewise keeps only the code of its
//! event loop mapped, and maps it again as it runs.
//!
//! Measured on the Flask example's container (one idle worker after one
//! request): 10.6 MiB of mappings released by the prototype, total PSS of
//! the three processes from 32.1 to 28.7 MiB. It needs `/proc` (as every
//! container runtime mounts it); without it nothing is released.
//!
//! Two things are released, both safe by construction:
//! - `malloc_trim(0)`: free pages of the C heap go back to the kernel.
//! - `madvise(MADV_DONTNEED)` on the file mappings that are read-only and
//!   hold no anonymous (copied-on-write) page, per `/proc/self/smaps`: their
//!   content is the file's, so dropping the mapping of a page only means
//!   the next access (if any) maps it again from the page cache. Writable
//!   mappings and any mapping with a private copy (relocated data) are never
//!   touched.

use std::io::{BufRead, BufReader};

/// Releases what it can and logs how much (per process: the master and
/// the prototype each log a line).
pub fn release_and_log() {
    let released = release();
    tracing::info!(
        event = "startup_pages_released",
        pid = std::process::id(),
        bytes = released,
        "released {} KiB of start-up mappings",
        released / 1024
    );
}

/// Releases what it can; returns the bytes of file mappings released.
/// Failures are ignored: this is only an optimisation.
pub fn release() -> u64 {
    // SAFETY: malloc_trim only returns free heap pages to the kernel.
    unsafe { libc::malloc_trim(0) };
    let Ok(f) = std::fs::File::open("/proc/self/smaps") else {
        return 0;
    };
    let mut released = 0;
    let mut candidate: Option<(usize, usize)> = None;
    let mut rss = 0u64;
    for line in BufReader::new(f).lines() {
        let Ok(line) = line else { return released };
        if let Some(range) = mapping(&line) {
            candidate = range;
            rss = 0;
            continue;
        }
        if let Some(kb) = field(&line, "Rss:") {
            rss = kb;
        } else if let Some(kb) = field(&line, "Anonymous:") {
            if let Some((start, end)) = candidate.take() {
                if kb == 0 && rss > 0 && drop_pages(start, end) {
                    released += rss * 1024;
                }
            }
        }
    }
    released
}

/// A mapping's header line: `Some(Some(range))` for a read-only file
/// mapping, `Some(None)` for any other mapping, `None` for a field line.
fn mapping(line: &str) -> Option<Option<(usize, usize)>> {
    let mut parts = line.split_ascii_whitespace();
    let (lo, hi) = parts.next()?.split_once('-')?;
    let start = usize::from_str_radix(lo, 16).ok()?;
    let end = usize::from_str_radix(hi, 16).ok()?;
    let perms = parts.next()?;
    // offset, device, inode, then the path (absent for anonymous memory).
    let path = parts.nth(3);
    let read_only = perms.len() == 4 && !perms.contains('w') && perms.ends_with('p');
    Some((read_only && path.is_some_and(|p| p.starts_with('/'))).then_some((start, end)))
}

/// The kB value of a `Name:   123 kB` field line.
fn field(line: &str, name: &str) -> Option<u64> {
    line.strip_prefix(name)?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()
}

fn drop_pages(start: usize, end: usize) -> bool {
    // SAFETY: [start, end) is one whole mapping of this process, read-only,
    // file-backed and without anonymous pages (checked by the caller, and
    // the process has one thread, so nothing changes in between): dropping
    // its page-table entries loses nothing, the file's pages come back on
    // the next access.
    unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED) == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping_lines() {
        let text = "7f2a2a530000-7f2a2a5a4000 r-xp 00010000 fe:00 10693037   /usr/lib/libm.so.6";
        assert_eq!(mapping(text), Some(Some((0x7f2a2a530000, 0x7f2a2a5a4000))));
        let data = "7f2a2a5ff000-7f2a2a600000 rw-p 000de000 fe:00 10693037   /usr/lib/libm.so.6";
        assert_eq!(mapping(data), Some(None));
        let anon = "7f2a2a600000-7f2a2a700000 r--p 00000000 00:00 0";
        assert_eq!(mapping(anon), Some(None));
        let vdso = "7ffc1000-7ffc3000 r-xp 00000000 00:00 0    [vdso]";
        assert_eq!(mapping(vdso), Some(None));
        assert_eq!(mapping("Rss:                  64 kB"), None);
        assert_eq!(field("Anonymous:             4 kB", "Anonymous:"), Some(4));
        assert_eq!(field("AnonHugePages:         0 kB", "Anonymous:"), None);
    }

    #[test]
    fn release_keeps_this_process_working() {
        // Drops this test process's own read-only file mappings, then keeps
        // running code and reading data from them.
        release();
        let v: Vec<String> = (0..100).map(|i| format!("{i}")).collect();
        assert_eq!(v.join(",").len(), 289);
    }
}
