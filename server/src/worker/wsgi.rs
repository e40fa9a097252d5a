//! The PEP 3333 call: the environ dict built from the request's vars,
//! `start_response` (with `exc_info` and the `write()` callable), iteration
//! of the result, and a `close()` that is always called.
//!
//! Where PEP 3333 leaves room, uWSGI's behaviour is kept
//! (`plugins/python/wsgi_subhandler.c`, `wsgi_headers.c`;
//! `reference/uwsgi-spec.md` §7): vars become environ keys in packet order
//! (the last duplicate wins) decoded as latin-1; a second `start_response`
//! before anything was sent replaces the first; `write()` and the iterator
//! skip non-bytes; a `bytes` result is sent whole.
//!
//! Deliberate difference: an exception before any body byte was sent gives a
//! `500 Internal Server Error` (uWSGI sends nothing, which nginx turns into a
//! 502, or sends the buffered status with an empty body). After the body has
//! started, the response is aborted so the client sees a failure.

use std::cell::RefCell;
use std::rc::Rc;

use pyo3::exceptions::{PyOSError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};

use super::channel::Channel;
use super::input::{Body, Input};
use crate::ipc::{self, Kind};

/// Per-request state shared by `wsgi.input`, `start_response` and `write()`.
#[derive(Debug)]
pub struct Exchange {
    /// The request channel.
    pub chan: Rc<RefCell<Channel>>,
    /// The body reader.
    pub body: Body,
    /// Status and headers given to `start_response`, not yet sent.
    head: Option<Vec<u8>>,
    /// Whether the head went out.
    head_sent: bool,
    /// Whether any body byte went out.
    body_started: bool,
    /// The Content-Length the app declared, if any.
    declared_len: Option<u64>,
    /// Body bytes sent so far.
    sent: u64,
    /// Whether the channel to the master failed: the worker must exit.
    pub broken: bool,
}

impl Exchange {
    /// Sends the head if it was not sent yet.
    fn send_head(&mut self) -> PyResult<()> {
        if self.head_sent {
            return Ok(());
        }
        let head = self
            .head
            .take()
            .ok_or_else(|| PyOSError::new_err("write() before start_response()"))?;
        self.chan.borrow_mut().push(Kind::Head, &head);
        self.head_sent = true;
        Ok(())
    }

    /// Sends body bytes (and the head before them).
    fn send_chunk(&mut self, py: Python<'_>, data: &[u8], flush: bool) -> PyResult<()> {
        self.send_head()?;
        if data.is_empty() {
            return Ok(());
        }
        self.body_started = true;
        self.sent += data.len() as u64;
        // Once the declared length is out, nothing else can follow but END:
        // hold the last chunk back so head, body and END leave in one write.
        let flush = flush && self.declared_len.is_none_or(|l| self.sent < l);
        let chan = self.chan.clone();
        let mut chan = chan.borrow_mut();
        for piece in data.chunks(ipc::MAX_FRAME) {
            chan.push(Kind::Chunk, piece);
            if chan.pending() >= ipc::CHUNK {
                self.note(chan.flush(py)).map_err(write_error)?;
            }
        }
        if flush {
            self.note(chan.flush(py)).map_err(write_error)?;
        }
        Ok(())
    }

    /// Marks the channel broken when `res` failed.
    pub fn note<T>(&mut self, res: std::io::Result<T>) -> std::io::Result<T> {
        self.broken |= res.is_err();
        res
    }
}

fn write_error(e: std::io::Error) -> PyErr {
    PyOSError::new_err(format!("write error: {e}"))
}

fn head_error(e: rwsgi_proto::EncodeError) -> PyErr {
    PyTypeError::new_err(format!("response headers cannot be sent: {e}"))
}

/// Encodes a status and headers as a HEAD payload: a vars block, `STATUS`
/// first, then the headers in order.
fn encode_head(status: &[u8], headers: &[(&[u8], &[u8])]) -> PyResult<Vec<u8>> {
    let mut out = Vec::new();
    let mut w = rwsgi_proto::VarsWriter::new(&mut out);
    w.push(b"STATUS", status).map_err(head_error)?;
    for (k, v) in headers {
        w.push(k, v).map_err(head_error)?;
    }
    w.finish().map_err(head_error)?;
    Ok(out)
}

/// A native string as latin-1 bytes (PEP 3333 "String Types"), calling
/// `with` on them.
fn with_latin1<R>(
    obj: &Bound<'_, PyAny>,
    what: &str,
    with: impl FnOnce(&[u8]) -> PyResult<R>,
) -> PyResult<R> {
    let s = obj
        .cast::<PyString>()
        .map_err(|_| PyTypeError::new_err(format!("{what} must be a string")))?;
    // An ASCII string (nearly every status and header) is its own latin-1:
    // CPython hands out its UTF-8 form without copying.
    if let Ok(text) = s.to_str() {
        if text.is_ascii() {
            return with(text.as_bytes());
        }
    }
    let encoded = s.call_method1(pyo3::intern!(s.py(), "encode"), ("latin-1",))?;
    with(encoded.cast::<PyBytes>()?.as_bytes())
}

/// `start_response`.
#[pyclass(unsendable, module = "rwsgi")]
#[derive(Debug)]
pub struct StartResponse {
    ex: Rc<RefCell<Exchange>>,
}

#[pymethods]
impl StartResponse {
    #[pyo3(signature = (status, headers, exc_info = None))]
    fn __call__(
        &self,
        py: Python<'_>,
        status: &Bound<'_, PyAny>,
        headers: &Bound<'_, PyAny>,
        exc_info: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<Write>> {
        let exc_info = exc_info.filter(|e| !e.is_none());
        if self.ex.borrow().head_sent {
            // PEP 3333: with headers already sent, re-raise the app's error.
            if let Some(info) = exc_info {
                let value = info.get_item(1)?;
                return Err(PyErr::from_value(value));
            }
            return Err(PyOSError::new_err("headers already sent"));
        }
        let status = with_latin1(status, "status", |s| Ok(add_reason(s).into_owned()))?;
        let list = headers
            .cast::<PyList>()
            .map_err(|_| PyTypeError::new_err("headers must be a list"))?;
        // Written straight into the HEAD payload, without a copy per name
        // and value.
        let mut head = Vec::with_capacity(256);
        let mut w = rwsgi_proto::VarsWriter::new(&mut head);
        w.push(b"STATUS", &status).map_err(head_error)?;
        // The first Content-Length says how long the body is.
        let (mut declared_len, mut seen_len) = (None, false);
        for item in list.iter() {
            let tuple = item
                .cast::<PyTuple>()
                .map_err(|_| PyTypeError::new_err("each header must be a (name, value) tuple"))?;
            if tuple.len() != 2 {
                return Err(PyTypeError::new_err(
                    "each header must be a (name, value) tuple",
                ));
            }
            with_latin1(&tuple.get_item(0)?, "header name", |k| {
                with_latin1(&tuple.get_item(1)?, "header value", |v| {
                    if !seen_len && k.eq_ignore_ascii_case(b"content-length") {
                        seen_len = true;
                        declared_len = std::str::from_utf8(v)
                            .ok()
                            .and_then(|v| v.trim().parse::<u64>().ok());
                    }
                    w.push(k, v).map_err(head_error)
                })
            })?;
        }
        w.finish().map_err(head_error)?;
        let mut ex = self.ex.borrow_mut();
        ex.head = Some(head);
        ex.declared_len = declared_len;
        drop(ex);
        Py::new(
            py,
            Write {
                ex: self.ex.clone(),
            },
        )
    }
}

/// A status of three digits gets its standard reason, as in uWSGI
/// (`core/writer.c` `uwsgi_response_prepare_headers`).
fn add_reason(status: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    if status.len() > 4 {
        return status.into();
    }
    let code = std::str::from_utf8(status.get(..3).unwrap_or_default())
        .ok()
        .and_then(|s| s.parse::<u16>().ok());
    match code {
        Some(c) => format!("{c} {}", crate::http_status::reason(c))
            .into_bytes()
            .into(),
        None => status.into(),
    }
}

/// The `write()` callable `start_response` returns.
#[pyclass(unsendable, module = "rwsgi")]
#[derive(Debug)]
pub struct Write {
    ex: Rc<RefCell<Exchange>>,
}

#[pymethods]
impl Write {
    fn __call__(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        // uWSGI ignores anything but bytes here.
        let Ok(bytes) = data.cast::<PyBytes>() else {
            tracing::warn!(
                event = "write_not_bytes",
                "write() called with a non-bytes object; ignored"
            );
            return Ok(());
        };
        self.ex.borrow_mut().send_chunk(py, bytes.as_bytes(), true)
    }
}

/// What the worker knows that goes into every environ.
#[derive(Debug, Clone, Copy)]
pub struct Static {
    /// `wsgi.multithread`.
    pub multithread: bool,
    /// `wsgi.multiprocess`.
    pub multiprocess: bool,
    /// Whether `wsgi.file_wrapper` is offered (`wsgi-disable-file-wrapper`).
    pub file_wrapper: bool,
}

/// Interned environ keys and constant values, made once per worker.
pub struct Interned {
    keys: std::collections::HashMap<Vec<u8>, Py<PyString>>,
    /// The interned keys of the last request, by position: requests from
    /// one nginx carry the same keys in the same order, so most keys are
    /// found here by one comparison instead of a hash and a look-up.
    order: Vec<(Box<[u8]>, Py<PyString>)>,
    version: Py<PyTuple>,
    errors: Py<PyAny>,
    file_wrapper: Py<PyAny>,
    multithread: bool,
    multiprocess: bool,
    offer_file_wrapper: bool,
    /// The `uwsgi` module's namespace, where a single-threaded worker puts
    /// the environ of the request in flight (`uwsgi.env`, as uWSGI does
    /// when `threads` < 2).
    uwsgi_namespace: Option<Py<PyDict>>,
}

impl std::fmt::Debug for Interned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Interned")
            .field("keys", &self.keys.len())
            .finish()
    }
}

/// The most keys kept interned; past that, keys are made per request (a
/// client sending many distinct headers must not grow the worker forever).
const MAX_INTERNED: usize = 512;

/// The longest key kept interned: a longer one (no usual header name is)
/// is made for each request, so that a client cannot make a thread keep
/// [`MAX_INTERNED`] keys of 64 KiB.
const MAX_INTERNED_LEN: usize = 96;

/// The most positions [`Interned::key_at`] remembers.
const MAX_ORDERED: usize = 128;

/// The environ entries that do not come from the request's vars.
const ENVIRON_EXTRA: usize = 10;

/// The environ keys every request through nginx's `uwsgi_params` (and
/// rwsgi's own HTTP listener) carries, interned up front.
const COMMON_KEYS: &[&[u8]] = &[
    b"QUERY_STRING",
    b"REQUEST_METHOD",
    b"CONTENT_TYPE",
    b"CONTENT_LENGTH",
    b"REQUEST_URI",
    b"PATH_INFO",
    b"DOCUMENT_ROOT",
    b"SERVER_PROTOCOL",
    b"REQUEST_SCHEME",
    b"HTTPS",
    b"REMOTE_ADDR",
    b"REMOTE_PORT",
    b"SERVER_PORT",
    b"SERVER_NAME",
    b"SCRIPT_NAME",
    b"HTTP_HOST",
    b"HTTP_USER_AGENT",
    b"HTTP_ACCEPT",
    b"HTTP_ACCEPT_ENCODING",
    b"HTTP_ACCEPT_LANGUAGE",
    b"HTTP_CONNECTION",
    b"HTTP_COOKIE",
    b"HTTP_X_FORWARDED_FOR",
    b"HTTP_X_FORWARDED_PROTO",
];

impl Interned {
    /// Made once, in the prototype before it forks (`prototype::main`), so
    /// that every worker shares it instead of building its own copy: looks
    /// up `sys.stderr`, creates the `rwsgi` support module and the Python
    /// types of `wsgi.input`, `start_response` and `write()`, and interns
    /// the common environ keys. Each of those, made in a worker, would be
    /// new objects and touched shared pages in every worker.
    pub fn new(py: Python<'_>, st: &Static) -> PyResult<Interned> {
        let sys = py.import("sys")?;
        let module = super::support::module(py)?;
        py.get_type::<Input>();
        py.get_type::<StartResponse>();
        py.get_type::<Write>();
        let uwsgi_namespace = match (st.multithread, py.import("uwsgi")) {
            (false, Ok(m)) => Some(m.dict().unbind()),
            _ => None,
        };
        let mut interned = Interned {
            keys: Default::default(),
            order: Vec::new(),
            version: PyTuple::new(py, [1, 0])?.unbind(),
            errors: sys.getattr("stderr")?.unbind(),
            file_wrapper: module.getattr("FileWrapper")?.unbind(),
            multithread: st.multithread,
            multiprocess: st.multiprocess,
            offer_file_wrapper: st.file_wrapper,
            uwsgi_namespace,
        };
        for k in COMMON_KEYS {
            interned.key(py, k)?;
        }
        Ok(interned)
    }

    /// Another handle on the same objects, for another thread.
    pub fn clone_ref(&self, py: Python<'_>) -> Interned {
        Interned {
            keys: self
                .keys
                .iter()
                .map(|(k, v)| (k.clone(), v.clone_ref(py)))
                .collect(),
            order: Vec::new(),
            version: self.version.clone_ref(py),
            errors: self.errors.clone_ref(py),
            file_wrapper: self.file_wrapper.clone_ref(py),
            multithread: self.multithread,
            multiprocess: self.multiprocess,
            offer_file_wrapper: self.offer_file_wrapper,
            uwsgi_namespace: self.uwsgi_namespace.as_ref().map(|d| d.clone_ref(py)),
        }
    }

    /// The key `k`, the `at`-th of its request.
    fn key_at<'py>(
        &mut self,
        py: Python<'py>,
        at: usize,
        k: &[u8],
    ) -> PyResult<Bound<'py, PyString>> {
        if let Some((known, s)) = self.order.get(at) {
            if **known == *k {
                return Ok(s.bind(py).clone());
            }
        }
        let (s, kept) = self.key(py, k)?;
        if kept {
            let entry = (Box::from(k), s.clone().unbind());
            if let Some(slot) = self.order.get_mut(at) {
                *slot = entry;
            } else if at == self.order.len() && at < MAX_ORDERED {
                self.order.push(entry);
            }
        }
        Ok(s)
    }

    /// The key `k`, and whether it is kept interned.
    fn key<'py>(&mut self, py: Python<'py>, k: &[u8]) -> PyResult<(Bound<'py, PyString>, bool)> {
        if let Some(s) = self.keys.get(k) {
            return Ok((s.bind(py).clone(), true));
        }
        if self.keys.len() >= MAX_INTERNED || k.len() > MAX_INTERNED_LEN {
            return Ok((decode_latin1(py, k)?, false));
        }
        // An ASCII key reads the same in latin-1 and UTF-8. Interned, it is
        // the very object an app's `environ["PATH_INFO"]` literal is, so
        // the dict lookup matches on identity.
        let s = match std::str::from_utf8(k) {
            Ok(ascii) if k.is_ascii() => PyString::intern(py, ascii),
            _ => decode_latin1(py, k)?,
        };
        self.keys.insert(k.to_vec(), s.clone().unbind());
        Ok((s, true))
    }
}

/// A new dict with room for `n` items, so that filling it does not grow
/// its table three or four times.
fn presized_dict(py: Python<'_>, n: usize) -> PyResult<Bound<'_, PyDict>> {
    unsafe extern "C" {
        // Exported by CPython 3.8 to 3.14 (`Include/cpython/dictobject.h`);
        // what the interpreter's own BUILD_MAP uses. pyo3 leaves the
        // private API out.
        fn _PyDict_NewPresized(minused: pyo3::ffi::Py_ssize_t) -> *mut pyo3::ffi::PyObject;
    }
    let n = pyo3::ffi::Py_ssize_t::try_from(n).unwrap_or(0);
    // SAFETY: the GIL is held (we have `py`); the result is a new reference
    // to a dict, or NULL with an exception set, which `from_owned_ptr_or_err`
    // turns into an error.
    let dict = unsafe { Bound::from_owned_ptr_or_err(py, _PyDict_NewPresized(n))? };
    Ok(dict.cast_into::<PyDict>()?)
}

/// Decodes latin-1 bytes to a `str`.
fn decode_latin1<'py>(py: Python<'py>, b: &[u8]) -> PyResult<Bound<'py, PyString>> {
    let len = pyo3::ffi::Py_ssize_t::try_from(b.len())
        .map_err(|_| PyTypeError::new_err("value too long"))?;
    // SAFETY: the pointer and length describe `b`, which outlives the call;
    // the GIL is held (we have `py`); the result is a new reference or NULL
    // with an exception set, which `from_owned_ptr_or_err` handles.
    let obj = unsafe {
        let ptr = pyo3::ffi::PyUnicode_DecodeLatin1(b.as_ptr().cast(), len, std::ptr::null());
        Bound::from_owned_ptr_or_err(py, ptr)?
    };
    Ok(obj.cast_into::<PyString>()?)
}

/// Which scheme the app sees (uWSGI `wsgi_subhandler.c` + `core/protocol.c`):
/// `UWSGI_SCHEME` or `X-Forwarded-Proto` verbatim, else `https` when `HTTPS`
/// or `X-Forwarded-Ssl` is `on…` or `1…`, else `http`. Fed the vars one by
/// one ([`Scheme::see`]) while the environ is built, so they are walked once.
#[derive(Debug, Default)]
pub struct Scheme<'a> {
    explicit: Option<&'a [u8]>,
    https: bool,
}

impl<'a> Scheme<'a> {
    /// Takes one variable into account.
    pub fn see(&mut self, k: &[u8], v: &'a [u8]) {
        match k {
            b"UWSGI_SCHEME" | b"HTTP_X_FORWARDED_PROTO" => self.explicit = Some(v),
            b"HTTPS" | b"HTTP_X_FORWARDED_SSL" => {
                self.https = v.first() == Some(&b'1')
                    || v.get(..2).is_some_and(|p| p.eq_ignore_ascii_case(b"on"));
            }
            _ => {}
        }
    }

    /// The scheme.
    pub fn get(&self) -> &'a [u8] {
        match self.explicit {
            Some(s) => s,
            None if self.https => b"https",
            None => b"http",
        }
    }
}

/// Builds the environ dict for one request.
fn environ<'py>(
    py: Python<'py>,
    interned: &mut Interned,
    head: &ipc::RequestHead<'_>,
    vars: &rwsgi_proto::Vars<'_>,
    input: Py<Input>,
) -> PyResult<Bound<'py, PyDict>> {
    use pyo3::intern;
    let env = presized_dict(py, vars.len() + ENVIRON_EXTRA)?;
    let mut script_name: &[u8] = b"";
    let mut has_script_name = false;
    let mut path_info: Option<&[u8]> = None;
    let mut scheme = Scheme::default();
    for (at, (k, v)) in vars.iter().enumerate() {
        scheme.see(k, v);
        match k {
            b"SCRIPT_NAME" => {
                script_name = v;
                has_script_name = true;
            }
            b"PATH_INFO" => path_info = Some(v),
            _ => {}
        }
        env.set_item(interned.key_at(py, at, k)?, decode_latin1(py, v)?)?;
    }
    // modifier1 30: strip SCRIPT_NAME from the front of PATH_INFO.
    if head.modifier1 == rwsgi_proto::Modifier1::WSGI_STRIP_SCRIPT_NAME.0 {
        if let Some(p) = path_info {
            let stripped = p.get(script_name.len()..).unwrap_or_default();
            env.set_item(intern!(py, "PATH_INFO"), decode_latin1(py, stripped)?)?;
        }
    }
    // PEP 3333 lists both as present (possibly empty); nginx sends neither
    // SCRIPT_NAME nor, for some configs, PATH_INFO.
    let empty = intern!(py, "");
    if !has_script_name {
        env.set_item(intern!(py, "SCRIPT_NAME"), empty)?;
    }
    if path_info.is_none() {
        env.set_item(intern!(py, "PATH_INFO"), empty)?;
    }
    // The constant keys (and the usual schemes) are made once per process.
    let url_scheme = match scheme.get() {
        b"http" => intern!(py, "http").clone(),
        b"https" => intern!(py, "https").clone(),
        other => decode_latin1(py, other)?,
    };
    env.set_item(intern!(py, "wsgi.version"), interned.version.bind(py))?;
    env.set_item(intern!(py, "wsgi.url_scheme"), url_scheme)?;
    env.set_item(intern!(py, "wsgi.input"), input)?;
    env.set_item(intern!(py, "wsgi.errors"), interned.errors.bind(py))?;
    env.set_item(intern!(py, "wsgi.multithread"), interned.multithread)?;
    env.set_item(intern!(py, "wsgi.multiprocess"), interned.multiprocess)?;
    env.set_item(intern!(py, "wsgi.run_once"), false)?;
    if interned.offer_file_wrapper {
        env.set_item(
            intern!(py, "wsgi.file_wrapper"),
            interned.file_wrapper.bind(py),
        )?;
    }
    Ok(env)
}

/// How a request ended, for the END frame.
#[derive(Debug)]
pub struct Outcome {
    /// The app raised.
    pub exception: bool,
    /// What the app set for the log line (`uwsgi.set_logvar`, `log_this_request`).
    pub log: super::uwsgi_module::RequestLog,
}

/// Runs one request through the app and sends the response. Errors here are
/// channel errors: the worker cannot go on.
pub fn handle(
    py: Python<'_>,
    apps: &super::apps::Apps,
    interned: &mut Interned,
    chan: &Rc<RefCell<Channel>>,
    payload: &[u8],
) -> Result<Outcome, std::io::Error> {
    let invalid = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
    let head = ipc::parse_request(payload).map_err(|e| invalid(e.to_string()))?;
    let vars = ipc::own_vars(head.vars).map_err(|e| invalid(e.to_string()))?;
    handle_parsed(py, apps, interned, chan, &head, &vars)
}

/// [`handle`] for a request whose vars are already parsed (a connection
/// the worker accepted itself, `direct.rs`).
pub fn handle_parsed(
    py: Python<'_>,
    apps: &super::apps::Apps,
    interned: &mut Interned,
    chan: &Rc<RefCell<Channel>>,
    head: &ipc::RequestHead<'_>,
    vars: &rwsgi_proto::Vars<'_>,
) -> Result<Outcome, std::io::Error> {
    let invalid = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
    super::uwsgi_module::begin_request(chan);
    let ex = Rc::new(RefCell::new(Exchange {
        chan: chan.clone(),
        body: Body::new(head.body_len),
        head: None,
        head_sent: false,
        body_started: false,
        declared_len: None,
        sent: 0,
        broken: false,
    }));
    let exception = match apps.pick(vars) {
        Some(picked) => match call_app(py, &picked, interned, head, vars, &ex) {
            Ok(()) => false,
            Err(err) => {
                if ex.borrow().broken {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::BrokenPipe,
                        "channel closed",
                    ));
                }
                err.print(py);
                true
            }
        },
        None => {
            tracing::error!(
                event = "no_app",
                "--- no python application found, check your startup logs for errors ---"
            );
            true
        }
    };
    let mut ex = ex.borrow_mut();
    if exception && !ex.body_started {
        let body = b"Internal Server Error";
        let head = encode_head(
            b"500 Internal Server Error",
            &[
                (b"Content-Type", b"text/plain"),
                (b"Content-Length", body.len().to_string().as_bytes()),
            ],
        )
        .map_err(|e| invalid(e.to_string()))?;
        let mut c = chan.borrow_mut();
        c.push(Kind::Head, &head);
        c.push(Kind::Chunk, body);
    } else if exception {
        chan.borrow_mut().push(Kind::Abort, &[]);
    } else if !ex.head_sent {
        if ex.head.is_none() {
            // The app returned without calling start_response.
            tracing::error!(
                event = "no_start_response",
                "the app returned without calling start_response"
            );
            ex.head = Some(
                encode_head(b"500 Internal Server Error", &[(b"Content-Length", b"0")])
                    .map_err(|e| invalid(e.to_string()))?,
            );
        }
        ex.send_head().map_err(|e| invalid(e.to_string()))?;
    }
    Ok(Outcome {
        exception,
        log: super::uwsgi_module::end_request(),
    })
}

fn call_app(
    py: Python<'_>,
    picked: &super::apps::Picked<'_>,
    interned: &mut Interned,
    head: &ipc::RequestHead<'_>,
    vars: &rwsgi_proto::Vars<'_>,
    ex: &Rc<RefCell<Exchange>>,
) -> PyResult<()> {
    let input = Py::new(py, Input::new(ex.clone()))?;
    let env = environ(py, interned, head, vars, input)?;
    if let Some(n) = picked.script_name_len {
        // manage-script-name: the mountpoint moves from PATH_INFO to
        // SCRIPT_NAME.
        let path = vars.get(b"PATH_INFO").unwrap_or_default();
        let (script, rest) = path.split_at(n.min(path.len()));
        env.set_item("SCRIPT_NAME", decode_latin1(py, script)?)?;
        env.set_item("PATH_INFO", decode_latin1(py, rest)?)?;
    }
    let start_response = Py::new(py, StartResponse { ex: ex.clone() })?;
    let namespace = interned.uwsgi_namespace.as_ref().map(|d| d.bind(py));
    if let Some(ns) = namespace {
        ns.set_item(pyo3::intern!(py, "env"), &env)?;
    }
    let run = || -> PyResult<()> {
        let result = picked.app.bind(py).call1((env, start_response))?;
        let iterated = send_result(py, &result, ex);
        // PEP 3333: close() is called whatever happened during iteration.
        let close = pyo3::intern!(py, "close");
        let closed = if result.hasattr(close)? {
            result.call_method0(close).map(|_| ())
        } else {
            Ok(())
        };
        iterated.and(closed)
    };
    let outcome = run();
    if let Some(ns) = namespace {
        // Gone with the request, as in uWSGI.
        let _ = ns.del_item(pyo3::intern!(py, "env"));
    }
    outcome
}

fn send_result(
    py: Python<'_>,
    result: &Bound<'_, PyAny>,
    ex: &Rc<RefCell<Exchange>>,
) -> PyResult<()> {
    // A bytes result is sent whole (uWSGI does not iterate it).
    if let Ok(b) = result.cast::<PyBytes>() {
        return ex.borrow_mut().send_chunk(py, b.as_bytes(), false);
    }
    // A list or tuple is known up front: no need to flush between items.
    let buffered = result.is_instance_of::<PyList>() || result.is_instance_of::<PyTuple>();
    for item in result.try_iter()? {
        let item = item?;
        match item.cast::<PyBytes>() {
            Ok(b) => ex.borrow_mut().send_chunk(py, b.as_bytes(), !buffered)?,
            Err(_) => tracing::error!(
                event = "unhandled_object",
                "[ERROR] Unhandled object from iterator: {}",
                item.get_type()
                    .name()
                    .map(|n| n.to_string())
                    .unwrap_or_default()
            ),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Scheme;

    fn scheme<'a>(vars: &[(&'a [u8], &'a [u8])]) -> &'a [u8] {
        let mut s = Scheme::default();
        for (k, v) in vars {
            s.see(k, v);
        }
        s.get()
    }

    #[test]
    fn the_scheme_follows_uwsgi() {
        assert_eq!(scheme(&[(b"PATH_INFO", b"/")]), b"http");
        assert_eq!(scheme(&[(b"HTTPS", b"on")]), b"https");
        assert_eq!(scheme(&[(b"HTTPS", b"ON")]), b"https");
        assert_eq!(scheme(&[(b"HTTPS", b"off")]), b"http");
        assert_eq!(scheme(&[(b"HTTP_X_FORWARDED_SSL", b"1")]), b"https");
        // Given verbatim, and over the HTTPS flag; the last one wins.
        assert_eq!(
            scheme(&[(b"HTTPS", b"on"), (b"HTTP_X_FORWARDED_PROTO", b"ws")]),
            b"ws"
        );
        assert_eq!(
            scheme(&[
                (b"UWSGI_SCHEME", b"https"),
                (b"HTTP_X_FORWARDED_PROTO", b"http")
            ]),
            b"http"
        );
    }
}
