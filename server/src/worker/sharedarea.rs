//! uWSGI's shared areas (`sharedarea = PAGES`, `sharedarea =
//! pages=N|size=BYTES`; `core/sharedarea.c`, the Python plugin's
//! `sharedarea_*` functions): blocks of memory every worker, spooler and
//! mule sees, for counters and small shared state.
//!
//! Each area is a shared mapping the prototype makes before it forks (a
//! reload starts them zeroed, as uWSGI's SIGHUP reload does): a header with
//! a robust process-shared mutex (`locks.rs`), then the bytes. Every
//! function takes the mutex for its own access, unless this thread already
//! holds it through `sharedarea_wlock`/`rlock` (uWSGI's are a rwlock; here
//! readers exclude each other too). Positions are checked against the
//! area's size; a bad id, position or length is uWSGI's `ValueError`
//! ("error calling uwsgi_sharedarea_…()"). Numbers are native-endian, as
//! uWSGI stores them.

use std::cell::RefCell;
use std::sync::OnceLock;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use super::locks;

/// The mutex's room before the bytes.
const HEADER: usize = 64;
/// uWSGI's page.
const PAGE: usize = 4096;
/// The largest area.
pub const MAX_BYTES: usize = 1 << 30;

/// One area.
#[derive(Debug)]
struct Area {
    base: *mut u8,
    len: usize,
}

// SAFETY: the mapping is never unmapped; the bytes are reached only under
// the area's process-shared mutex (or by the app's own memoryview).
unsafe impl Send for Area {}
// SAFETY: as above.
unsafe impl Sync for Area {}

impl Area {
    fn mutex(&self) -> *mut libc::pthread_mutex_t {
        self.base.cast()
    }

    /// Takes the area's mutex, the GIL released while waiting.
    fn lock(&'static self, py: Python<'_>, what: &str) -> PyResult<()> {
        // SAFETY: the mutex was made by `init` in a mapping that stays.
        py.detach(|| unsafe { locks::lock_mutex(self.mutex()) })
            .map(|_| ())
            .map_err(|_| error(what))
    }
}

static AREAS: OnceLock<Vec<Area>> = OnceLock::new();

thread_local! {
    /// The areas this thread holds the lock of (`sharedarea_wlock`).
    static HELD: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

/// The size in bytes that `sharedarea = v` asks for.
pub fn parse(v: &str) -> Result<usize, String> {
    let v = v.trim();
    let bytes = if let Some(kv) = v.contains('=').then_some(v) {
        let mut bytes = None;
        for item in kv.split(',').filter(|i| !i.trim().is_empty()) {
            let (k, val) = item
                .split_once('=')
                .ok_or_else(|| format!("\"{item}\" is not key=value"))?;
            let n = || crate::config::value::parse_number(val.trim());
            match k.trim() {
                "pages" => bytes = Some(n()?.saturating_mul(PAGE as u64)),
                "size" => bytes = Some(n()?),
                other @ ("file" | "fd") => {
                    return Err(format!(
                        "key \"{other}\" is not supported: rwsgi's shared areas are memory the workers share"
                    ));
                }
                other => return Err(format!("key \"{other}\" is not a sharedarea key")),
            }
        }
        bytes.ok_or("a shared area needs pages=N or size=BYTES")?
    } else {
        crate::config::value::parse_number(v)?.saturating_mul(PAGE as u64)
    };
    usize::try_from(bytes)
        .ok()
        .filter(|b| (1..=MAX_BYTES).contains(b))
        .ok_or_else(|| format!("a shared area is 1 byte to {} MiB", MAX_BYTES >> 20))
}

/// Makes the areas (the prototype, before the app's import).
pub fn init(sizes: &[usize]) -> std::io::Result<()> {
    let mut areas = Vec::with_capacity(sizes.len());
    for &len in sizes {
        let base = locks::shared_mapping(HEADER + len)?;
        // SAFETY: the mutex is at the start of the fresh, page-aligned
        // mapping, used by no other process yet.
        unsafe { locks::init_mutex(base.cast())? };
        areas.push(Area { base, len });
    }
    let _ = AREAS.set(areas);
    Ok(())
}

fn error(what: &str) -> PyErr {
    PyValueError::new_err(format!("error calling uwsgi_sharedarea_{what}()"))
}

fn area(id: i64, what: &str) -> PyResult<(usize, &'static Area)> {
    let i = usize::try_from(id).map_err(|_| error(what))?;
    let a = AREAS
        .get()
        .and_then(|a| a.get(i))
        .ok_or_else(|| error(what))?;
    Ok((i, a))
}

/// Runs `f` on bytes `pos..pos+len` of area `id`, holding its mutex
/// unless this thread already does (the GIL released while waiting).
fn with<R>(
    py: Python<'_>,
    id: i64,
    pos: i64,
    len: Option<usize>,
    what: &str,
    f: impl FnOnce(&mut [u8]) -> R,
) -> PyResult<R> {
    let (i, a) = area(id, what)?;
    let start = usize::try_from(pos)
        .ok()
        .filter(|p| *p < a.len)
        .ok_or_else(|| error(what))?;
    let len = len.unwrap_or(a.len - start);
    if len > a.len - start {
        return Err(error(what));
    }
    let held = HELD.with_borrow(|h| h.contains(&i));
    if !held {
        a.lock(py, what)?;
    }
    // SAFETY: `start + len <= a.len` bytes after the header, inside the
    // mapping; this thread holds the area's mutex.
    let bytes = unsafe { std::slice::from_raw_parts_mut(a.base.add(HEADER + start), len) };
    let r = f(bytes);
    if !held {
        // SAFETY: this thread holds the mutex, taken above.
        unsafe { locks::unlock_mutex(a.mutex()) }.map_err(|_| error(what))?;
    }
    Ok(r)
}

/// `sharedarea_read(id, pos, len=0)`: the bytes (to the end with 0).
#[pyfunction]
#[pyo3(signature = (id, pos, len = 0))]
fn sharedarea_read<'py>(
    py: Python<'py>,
    id: i64,
    pos: i64,
    len: i64,
) -> PyResult<Bound<'py, PyBytes>> {
    let len = match len {
        0 => None,
        n => Some(usize::try_from(n).map_err(|_| error("read"))?),
    };
    let data = with(py, id, pos, len, "read", |b| b.to_vec())?;
    Ok(PyBytes::new(py, &data))
}

/// `sharedarea_write(id, pos, data)`.
#[pyfunction]
fn sharedarea_write(py: Python<'_>, id: i64, pos: i64, data: &[u8]) -> PyResult<()> {
    with(py, id, pos, Some(data.len()), "write", |b| {
        b.copy_from_slice(data)
    })
}

/// Reads a native-endian number of `N` bytes.
fn read_n<const N: usize>(py: Python<'_>, id: i64, pos: i64, what: &str) -> PyResult<[u8; N]> {
    with(py, id, pos, Some(N), what, |b| {
        let mut out = [0u8; N];
        out.copy_from_slice(b);
        out
    })
}

fn write_n<const N: usize>(
    py: Python<'_>,
    id: i64,
    pos: i64,
    bytes: [u8; N],
    what: &str,
) -> PyResult<()> {
    with(py, id, pos, Some(N), what, |b| b.copy_from_slice(&bytes))
}

/// `sharedarea_read8(id, pos)` (and `readbyte`).
#[pyfunction]
fn sharedarea_read8(py: Python<'_>, id: i64, pos: i64) -> PyResult<u8> {
    Ok(read_n::<1>(py, id, pos, "read8")?[0])
}

/// `sharedarea_read16(id, pos)`.
#[pyfunction]
fn sharedarea_read16(py: Python<'_>, id: i64, pos: i64) -> PyResult<u16> {
    read_n(py, id, pos, "read16").map(u16::from_ne_bytes)
}

/// `sharedarea_read32(id, pos)`.
#[pyfunction]
fn sharedarea_read32(py: Python<'_>, id: i64, pos: i64) -> PyResult<u32> {
    read_n(py, id, pos, "read32").map(u32::from_ne_bytes)
}

/// `sharedarea_read64(id, pos)` (and `readlong`).
#[pyfunction]
fn sharedarea_read64(py: Python<'_>, id: i64, pos: i64) -> PyResult<i64> {
    read_n(py, id, pos, "read64").map(i64::from_ne_bytes)
}

/// `sharedarea_write8(id, pos, value)` (and `writebyte`).
#[pyfunction]
fn sharedarea_write8(py: Python<'_>, id: i64, pos: i64, value: u8) -> PyResult<()> {
    write_n(py, id, pos, [value], "write8")
}

/// `sharedarea_write16(id, pos, value)`.
#[pyfunction]
fn sharedarea_write16(py: Python<'_>, id: i64, pos: i64, value: u16) -> PyResult<()> {
    write_n(py, id, pos, value.to_ne_bytes(), "write16")
}

/// `sharedarea_write32(id, pos, value)`.
#[pyfunction]
fn sharedarea_write32(py: Python<'_>, id: i64, pos: i64, value: u32) -> PyResult<()> {
    write_n(py, id, pos, value.to_ne_bytes(), "write32")
}

/// `sharedarea_write64(id, pos, value)` (and `writelong`).
#[pyfunction]
fn sharedarea_write64(py: Python<'_>, id: i64, pos: i64, value: i64) -> PyResult<()> {
    write_n(py, id, pos, value.to_ne_bytes(), "write64")
}

/// Adds `delta` to the native-endian number at `pos`, wrapping.
fn add<const N: usize>(py: Python<'_>, id: i64, pos: i64, delta: i64, what: &str) -> PyResult<()> {
    with(py, id, pos, Some(N), what, |b| match N {
        4 => {
            let mut w = [0u8; 4];
            w.copy_from_slice(b);
            let v = i32::from_ne_bytes(w).wrapping_add(delta as i32);
            b.copy_from_slice(&v.to_ne_bytes());
        }
        _ => {
            let mut w = [0u8; 8];
            w.copy_from_slice(b);
            let v = i64::from_ne_bytes(w).wrapping_add(delta);
            b.copy_from_slice(&v.to_ne_bytes());
        }
    })
}

/// `sharedarea_inc32(id, pos, value=1)`.
#[pyfunction]
#[pyo3(signature = (id, pos, value = 1))]
fn sharedarea_inc32(py: Python<'_>, id: i64, pos: i64, value: i64) -> PyResult<()> {
    add::<4>(py, id, pos, value, "inc32")
}

/// `sharedarea_inc64(id, pos, value=1)` (and `inclong`).
#[pyfunction]
#[pyo3(signature = (id, pos, value = 1))]
fn sharedarea_inc64(py: Python<'_>, id: i64, pos: i64, value: i64) -> PyResult<()> {
    add::<8>(py, id, pos, value, "inc64")
}

/// `sharedarea_dec32(id, pos, value=1)`.
#[pyfunction]
#[pyo3(signature = (id, pos, value = 1))]
fn sharedarea_dec32(py: Python<'_>, id: i64, pos: i64, value: i64) -> PyResult<()> {
    add::<4>(py, id, pos, value.wrapping_neg(), "dec32")
}

/// `sharedarea_dec64(id, pos, value=1)`.
#[pyfunction]
#[pyo3(signature = (id, pos, value = 1))]
fn sharedarea_dec64(py: Python<'_>, id: i64, pos: i64, value: i64) -> PyResult<()> {
    add::<8>(py, id, pos, value.wrapping_neg(), "dec64")
}

/// `sharedarea_wlock(id)` and `sharedarea_rlock(id)`: holds the area's
/// lock until `sharedarea_unlock(id)`.
#[pyfunction]
fn sharedarea_wlock(py: Python<'_>, id: i64) -> PyResult<()> {
    let (i, a) = area(id, "wlock")?;
    if HELD.with_borrow(|h| h.contains(&i)) {
        return Err(error("wlock"));
    }
    a.lock(py, "wlock")?;
    HELD.with_borrow_mut(|h| h.push(i));
    Ok(())
}

/// `sharedarea_unlock(id)`.
#[pyfunction]
fn sharedarea_unlock(id: i64) -> PyResult<()> {
    let (i, a) = area(id, "unlock")?;
    if !HELD.with_borrow_mut(|h| {
        let at = h.iter().position(|&x| x == i);
        at.map(|at| h.remove(at)).is_some()
    }) {
        return Err(error("unlock"));
    }
    // SAFETY: this thread holds the mutex (`HELD` says so).
    unsafe { locks::unlock_mutex(a.mutex()) }.map_err(|_| error("unlock"))
}

/// `sharedarea_memoryview(id)`: the area's bytes, writable, without a
/// copy (accesses through it take no lock).
#[pyfunction]
fn sharedarea_memoryview(py: Python<'_>, id: i64) -> PyResult<Py<PyAny>> {
    let (_, a) = area(id, "memoryview")?;
    let len = isize::try_from(a.len).map_err(|_| error("memoryview"))?;
    // SAFETY: the area's bytes stay mapped for the process's life; the
    // memoryview may read and write them (shared memory, as in uWSGI).
    let view = unsafe {
        pyo3::ffi::PyMemoryView_FromMemory(a.base.add(HEADER).cast(), len, pyo3::ffi::PyBUF_WRITE)
    };
    // SAFETY: a new reference, or NULL with an exception set.
    unsafe { Bound::from_owned_ptr_or_err(py, view) }.map(Bound::unbind)
}

/// Adds the functions to the `uwsgi` module, with uWSGI's other names.
pub fn add_to(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(sharedarea_read, m)?)?;
    m.add_function(wrap_pyfunction!(sharedarea_write, m)?)?;
    m.add_function(wrap_pyfunction!(sharedarea_read8, m)?)?;
    m.add_function(wrap_pyfunction!(sharedarea_read16, m)?)?;
    m.add_function(wrap_pyfunction!(sharedarea_read32, m)?)?;
    m.add_function(wrap_pyfunction!(sharedarea_read64, m)?)?;
    m.add_function(wrap_pyfunction!(sharedarea_write8, m)?)?;
    m.add_function(wrap_pyfunction!(sharedarea_write16, m)?)?;
    m.add_function(wrap_pyfunction!(sharedarea_write32, m)?)?;
    m.add_function(wrap_pyfunction!(sharedarea_write64, m)?)?;
    m.add_function(wrap_pyfunction!(sharedarea_inc32, m)?)?;
    m.add_function(wrap_pyfunction!(sharedarea_inc64, m)?)?;
    m.add_function(wrap_pyfunction!(sharedarea_dec32, m)?)?;
    m.add_function(wrap_pyfunction!(sharedarea_dec64, m)?)?;
    m.add_function(wrap_pyfunction!(sharedarea_wlock, m)?)?;
    m.add_function(wrap_pyfunction!(sharedarea_unlock, m)?)?;
    m.add_function(wrap_pyfunction!(sharedarea_memoryview, m)?)?;
    for (alias, name) in [
        ("sharedarea_readbyte", "sharedarea_read8"),
        ("sharedarea_writebyte", "sharedarea_write8"),
        ("sharedarea_readlong", "sharedarea_read64"),
        ("sharedarea_writelong", "sharedarea_write64"),
        ("sharedarea_inclong", "sharedarea_inc64"),
        ("sharedarea_rlock", "sharedarea_wlock"),
    ] {
        m.add(alias, m.getattr(name)?)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_as_uwsgi_writes_them() {
        assert_eq!(parse("2"), Ok(2 * PAGE));
        assert_eq!(parse("pages=3"), Ok(3 * PAGE));
        assert_eq!(parse("size=100"), Ok(100));
        assert!(parse("0").is_err());
        assert!(parse("file=/tmp/x").unwrap_err().contains("file"));
        assert!(parse("pages=999999999").is_err());
    }
}
