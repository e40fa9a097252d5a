//! `wsgi.input` (PEP 3333 "Input and Error Streams"): `read`, `readline`,
//! `readlines` and iteration over the request body, pulled from the master
//! chunk by chunk (READ → BODY frames), so the body is never held whole
//! unless the app asks for all of it.
//!
//! As in uWSGI (`plugins/python/wsgi_handlers.c`), `read(n)` returns exactly
//! `min(n, remaining)` bytes, waiting as needed, and nothing past the body's
//! end is ever read.

use std::cell::RefCell;
use std::rc::Rc;

use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};

use super::wsgi::Exchange;
use crate::ipc::{self, Kind};

/// The body reader's state, owned by the request's [`Exchange`].
#[derive(Debug, Default)]
pub struct Body {
    /// Bytes the app may still get from the master; `None` until EOF.
    left: Option<u64>,
    /// Fetched and not yet consumed.
    buf: Vec<u8>,
    pos: usize,
    eof: bool,
}

impl Body {
    /// A body of `len` bytes, or one that runs to EOF for
    /// [`ipc::BODY_UNTIL_EOF`].
    pub fn new(len: u64) -> Body {
        Body {
            left: (len != ipc::BODY_UNTIL_EOF).then_some(len),
            eof: len == 0,
            ..Body::default()
        }
    }

    fn available(&self) -> &[u8] {
        self.buf.get(self.pos..).unwrap_or_default()
    }
}

/// Asks the master for more body bytes and appends them to the buffer.
/// Returns false at the end of the body.
fn fetch(py: Python<'_>, ex: &Rc<RefCell<Exchange>>) -> PyResult<bool> {
    let mut ex = ex.borrow_mut();
    let ex = &mut *ex;
    if ex.body.eof {
        return Ok(false);
    }
    let want = match ex.body.left {
        Some(left) => left.min(ipc::CHUNK as u64) as u32,
        None => ipc::CHUNK as u32,
    };
    let chan = ex.chan.clone();
    let chan = &mut *chan.borrow_mut();
    chan.push(Kind::Read, &want.to_le_bytes());
    let io_err =
        |e: std::io::Error| PyOSError::new_err(format!("error during read on wsgi.input: {e}"));
    ex.note(chan.flush(py)).map_err(io_err)?;
    let data = match ex.note(chan.read_reply(py)).map_err(io_err)? {
        Some((Kind::Body, data)) => data,
        _ => {
            ex.broken = true;
            return Err(PyOSError::new_err(
                "error during read on wsgi.input: channel closed",
            ));
        }
    };
    if data.is_empty() {
        ex.body.eof = true;
        if ex.body.left.is_some_and(|l| l > 0) {
            return Err(PyOSError::new_err(
                "error during read on wsgi.input: client closed connection",
            ));
        }
        return Ok(false);
    }
    if let Some(left) = ex.body.left.as_mut() {
        *left = left.saturating_sub(data.len() as u64);
        if *left == 0 {
            ex.body.eof = true;
        }
    }
    let body = &mut ex.body;
    if body.pos == body.buf.len() {
        body.buf.clear();
        body.pos = 0;
    }
    body.buf.extend_from_slice(&data);
    Ok(true)
}

/// `wsgi.input`.
#[pyclass(unsendable, module = "rwsgi")]
#[derive(Debug)]
pub struct Input {
    ex: Rc<RefCell<Exchange>>,
}

impl Input {
    /// An input stream over the request's body.
    pub fn new(ex: Rc<RefCell<Exchange>>) -> Input {
        Input { ex }
    }

    /// Takes up to `n` buffered bytes.
    fn take(&self, n: usize) -> Vec<u8> {
        let mut ex = self.ex.borrow_mut();
        let body = &mut ex.body;
        let avail = body.available();
        let n = n.min(avail.len());
        let out = avail.get(..n).unwrap_or_default().to_vec();
        body.pos += n;
        out
    }

    fn buffered(&self) -> usize {
        self.ex.borrow().body.available().len()
    }

    fn read_line(&self, py: Python<'_>, limit: Option<usize>) -> PyResult<Vec<u8>> {
        loop {
            let (found, len) = {
                let ex = self.ex.borrow();
                let avail = ex.body.available();
                let found = avail.iter().position(|&b| b == b'\n');
                (found, avail.len())
            };
            if let Some(i) = found {
                let n = limit.map_or(i + 1, |l| l.min(i + 1));
                return Ok(self.take(n));
            }
            if limit.is_some_and(|l| len >= l) || !fetch(py, &self.ex)? {
                return Ok(self.take(limit.unwrap_or(usize::MAX)));
            }
        }
    }
}

#[pymethods]
impl Input {
    /// Reads `size` bytes (all that is left when `size` is absent or
    /// negative).
    #[pyo3(signature = (size = None))]
    fn read<'py>(&self, py: Python<'py>, size: Option<isize>) -> PyResult<Bound<'py, PyBytes>> {
        let want = match size {
            Some(n) if n >= 0 => Some(n as usize),
            _ => None,
        };
        while want.is_none_or(|w| self.buffered() < w) {
            if !fetch(py, &self.ex)? {
                break;
            }
        }
        Ok(PyBytes::new(py, &self.take(want.unwrap_or(usize::MAX))))
    }

    /// Reads one line (at most `size` bytes when given).
    #[pyo3(signature = (size = None))]
    fn readline<'py>(&self, py: Python<'py>, size: Option<isize>) -> PyResult<Bound<'py, PyBytes>> {
        let limit = size.filter(|&n| n >= 0).map(|n| n as usize);
        Ok(PyBytes::new(py, &self.read_line(py, limit)?))
    }

    /// Reads all lines (stopping once `hint` bytes were read, when given).
    #[pyo3(signature = (hint = None))]
    fn readlines<'py>(&self, py: Python<'py>, hint: Option<isize>) -> PyResult<Bound<'py, PyList>> {
        let list = PyList::empty(py);
        let mut total = 0usize;
        loop {
            let line = self.read_line(py, None)?;
            if line.is_empty() {
                break;
            }
            total += line.len();
            list.append(PyBytes::new(py, &line))?;
            if hint.is_some_and(|h| h > 0 && total >= h as usize) {
                break;
            }
        }
        Ok(list)
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let line = self.read_line(py, None)?;
        Ok((!line.is_empty()).then(|| PyBytes::new(py, &line)))
    }

    /// A no-op, as in uWSGI.
    fn close(&self) {}
}
