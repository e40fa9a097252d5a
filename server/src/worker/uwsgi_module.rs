//! The `uwsgi` Python module, which apps and libraries written for uWSGI
//! import (`plugins/python/uwsgi_pymodule.c`, `python_plugin.c`
//! `init_uwsgi_embedded_module`; reference §7.5), and rwsgi's own
//! `uwsgidecorators`.
//!
//! Made by the prototype before it imports the app, as uWSGI makes it
//! before loading apps, and put in `sys.modules`; workers inherit it.
//!
//! What it offers is what fits rwsgi's processes:
//! - values: `opt` (the options as given: bytes values, `True` for bare
//!   flags, a list for repeated ones; plus `enable-threads` and
//!   `py-call-uwsgi-fork-hooks`, which are always on here), `env` (set by
//!   `wsgi.rs` around each request when a worker has one thread), `numproc`, `cores`, `buffer_size`,
//!   `hostname`, `started_on`, `has_threads`, `version`, `version_info`;
//! - `worker_id()` (0 in the prototype, as in uWSGI's master),
//!   `request_id()`, `masterpid()`, `mem()`,
//!   `micros()`; `workers()` and `total_requests()` from the master's
//!   once-a-second snapshot (`snapshot.rs`);
//! - `reload()` (SIGHUP to the master: a graceful reload) and `stop()`
//!   (SIGQUIT: rwsgi's graceful shutdown);
//! - `set_logvar`/`get_logvar` for `log-format`'s `%(name)`, `log_this_request()`,
//!   `log()`;
//! - `lock`/`unlock`/`is_locked` (`locks.rs`);
//! - `set_user_harakiri(seconds)`: a deadline for the request in flight,
//!   sent to the master in a HARAKIRI frame;
//! - `post_fork_hook` and `atexit`, called when uWSGI calls them: after
//!   fork in each worker, and when a worker stops.
//!
//! - the cache API (`cache_get`, `cache_set`, `cache_update`, `cache_del`,
//!   `cache_exists`, `cache_clear`, `cache_keys`, `cache_num`, `cache_inc`,
//!   `cache_dec`, `cache_mul`, `cache_div`) on the `cache2` caches
//!   (`cache.rs`); an unknown cache name is a `ValueError`.
//!
//! - uWSGI signals (`register_signal`, `signal`, `add_timer`, `add_cron`,
//!   …; `signals.rs`) and the `uwsgidecorators` built on them (`signal`,
//!   `timer`, `rbtimer`, `cron`, `filemon`);
//! - the spooler (`spool`, `spooler_jobs`, …; `spool_api.rs`) and the
//!   `spool`, `spoolforever` and `spoolraw` decorators;
//! - mules (`mule_msg`, `mule_get_msg`, `mule_id`, farms; `mule_api.rs`)
//!   and the `mulefunc`, `mule`, `muleloop`, `mulemsg` and `farm`
//!   decorators.
//!
//! Anything else (RPC, websockets, sharedarea…) raises
//! an `AttributeError` that says rwsgi does not have it, so an app finds
//! out at once rather than with a `None`.
//!
//! Log variables live in a per-thread slot: a worker thread serves one
//! request at a time, and `wsgi::handle` opens and closes the slot around
//! each request; the END frame carries them to the master, which writes the
//! log line.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use pyo3::exceptions::{PyOSError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyModule, PyString, PyTuple};

use super::channel::Channel;
use super::locks;
use crate::config::Config;
use crate::ipc::Kind;

/// The uWSGI API level this module follows: the pinned uWSGI release.
const API_VERSION: (u32, u32, u32) = (2, 0, 30);
/// The most log variables one request may set.
pub const MAX_LOGVARS: usize = 64;
/// The longest name or value of a log variable.
pub const MAX_LOGVAR_LEN: usize = 4096;

const UWSGI_SOURCE: &std::ffi::CStr = c"
import os as _os
import signal as _signal

SPOOL_OK = -2
SPOOL_RETRY = -1
SPOOL_IGNORE = 0
applications = None

def masterpid():
    return _masterpid

def accepting(accepting=True):
    \"\"\"A worker takes requests as soon as it is ready: nothing to do.\"\"\"
    return None

def _signal_master(sig):
    try:
        _os.kill(_masterpid, sig)
    except OSError:
        return None
    return True

def reload():
    \"\"\"Reloads gracefully: a new generation of workers replaces this one.\"\"\"
    return _signal_master(_signal.SIGHUP)

def stop():
    \"\"\"Shuts the server down gracefully.\"\"\"
    return _signal_master(_signal.SIGQUIT)

_rpc_functions = {}

def _rpc_name(name):
    if isinstance(name, bytes):
        name = name.decode('latin-1')
    if not isinstance(name, str) or not 0 < len(name) < 256:
        raise ValueError('an RPC function name is 1 to 255 characters')
    return name

def _rpc_bytes(value):
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode('utf-8')
    raise TypeError('RPC arguments are bytes or str, not %s' % type(value).__name__)

def register_rpc(name, func, argc=0):
    \"\"\"Registers `func` as the RPC function `name`: registered at import,
    every worker, mule and spooler has it.\"\"\"
    if not callable(func):
        raise TypeError('the RPC function must be callable')
    _rpc_functions[_rpc_name(name)] = func
    return True

def rpc_list():
    return tuple(n.encode('latin-1') for n in _rpc_functions)

def call(name, *args):
    \"\"\"Calls the RPC function `name` in this process: its result as bytes
    (a str is encoded), or None when there is no such function or it
    returned something else.\"\"\"
    func = _rpc_functions.get(_rpc_name(name))
    if func is None:
        return None
    if len(args) > 255:
        raise ValueError('an RPC call takes at most 255 arguments')
    result = func(*[_rpc_bytes(a) for a in args])
    if isinstance(result, (bytes, bytearray)):
        return bytes(result)
    if isinstance(result, str):
        return result.encode('utf-8')
    return None

def rpc(node, name, *args):
    \"\"\"uWSGI's RPC: only on this node (`node` None or empty).\"\"\"
    if node:
        raise ValueError(
            'uwsgi.rpc() to another node (%r) is not supported by rwsgi: call '
            'the other service over HTTP' % (node,))
    return call(name, *args)

def __getattr__(name):
    if name.startswith('__'):
        raise AttributeError(name)
    raise AttributeError(
        'uwsgi.%s is not available: rwsgi provides opt, numproc, worker_id(), '
        'workers(), masterpid(), reload(), set_logvar(), lock(), cache_*(), '
        'set_user_harakiri(), register_signal(), signal(), add_timer(), '
        'add_cron(), spool(), mule_msg(), register_rpc(), call() and '
        \"sharedarea_*(), post_fork_hook, not uWSGI's websockets\" % name)
";

const DECORATORS_SOURCE: &std::ffi::CStr = c"
import functools as _functools
import threading as _threading
import uwsgi

import pickle as _pickle

__all__ = ['postfork', 'lock', 'thread', 'harakiri', 'rpc', 'signal', 'timer',
           'rbtimer', 'cron', 'filemon', 'get_free_signal', 'spool',
           'spoolforever', 'spoolraw', 'mulefunc', 'mule', 'muleloop',
           'mulemsg', 'farm']

_chain = []

def _run_chain():
    for hook in list(_chain):
        hook._fire()

class postfork:
    \"\"\"Runs the function in every worker after fork; @postfork(N) only in
    worker N.\"\"\"

    def __init__(self, f):
        if callable(f):
            self.wid, self.f = 0, f
        else:
            self.wid, self.f = int(f), None
        _chain.append(self)
        uwsgi.post_fork_hook = _run_chain

    def __call__(self, *args, **kwargs):
        if self.f is None:
            self.f = args[0]
            return self
        return self.f(*args, **kwargs)

    def _fire(self):
        if self.f is not None and self.wid in (0, uwsgi.worker_id()):
            self.f()

def lock(f):
    \"\"\"Runs the function holding uWSGI's lock 0, across all workers.\"\"\"
    @_functools.wraps(f)
    def locked(*args, **kwargs):
        uwsgi.lock()
        try:
            return f(*args, **kwargs)
        finally:
            uwsgi.unlock()
    return locked

class harakiri:
    \"\"\"The request is killed if the function runs longer than `seconds`.\"\"\"

    def __init__(self, seconds):
        self.seconds = seconds

    def __call__(self, f):
        @_functools.wraps(f)
        def limited(*args, **kwargs):
            uwsgi.set_user_harakiri(self.seconds)
            try:
                return f(*args, **kwargs)
            finally:
                uwsgi.set_user_harakiri(0)
        return limited

def thread(f):
    \"\"\"Each call runs the function in a new daemon thread.\"\"\"
    @_functools.wraps(f)
    def started(*args, **kwargs):
        t = _threading.Thread(target=f, args=args, kwargs=kwargs, daemon=True)
        t.start()
        return t
    return started

def get_free_signal():
    \"\"\"The lowest signal number this process has not registered.\"\"\"
    for num in range(256):
        if not uwsgi.signal_registered(num):
            return num
    raise Exception('No free uwsgi signal available')

def _signum(kwargs):
    num = kwargs.get('signum')
    return get_free_signal() if num is None else num

class rpc:
    \"\"\"Registers the function as the RPC function `name`.\"\"\"

    def __init__(self, name):
        self.name = name

    def __call__(self, f):
        uwsgi.register_rpc(self.name, f)
        return f

class signal:
    \"\"\"Registers the function as the handler of signal `num`.\"\"\"

    def __init__(self, num, **kwargs):
        self.num = num
        self.target = kwargs.get('target', '')

    def __call__(self, f):
        uwsgi.register_signal(self.num, self.target, f)
        return f

class _raised_by:
    \"\"\"Registers the function as a signal's handler (`target` as given),
    and what raises the signal (`_add`).\"\"\"

    def __init__(self, kwargs):
        self.num = _signum(kwargs)
        self.target = kwargs.get('target', '')

    def __call__(self, f):
        uwsgi.register_signal(self.num, self.target, f)
        self._add()
        return f

class timer(_raised_by):
    \"\"\"Runs the function every `secs` seconds.\"\"\"

    def __init__(self, secs, **kwargs):
        super().__init__(kwargs)
        self.secs = secs

    def _add(self):
        uwsgi.add_timer(self.num, self.secs)

class rbtimer(timer):
    \"\"\"Runs the function every `secs` seconds (an rb-timer).\"\"\"

    def _add(self):
        uwsgi.add_rb_timer(self.num, self.secs)

class cron(_raised_by):
    \"\"\"Runs the function on a cron schedule (-1: any, -N: every N).\"\"\"

    def __init__(self, minute, hour, day, month, dayweek, **kwargs):
        super().__init__(kwargs)
        self.when = (minute, hour, day, month, dayweek)

    def _add(self):
        uwsgi.add_cron(self.num, *self.when)

class filemon(_raised_by):
    \"\"\"Runs the function when the file or directory changes.\"\"\"

    def __init__(self, fsobj, **kwargs):
        super().__init__(kwargs)
        self.fsobj = fsobj

    def _add(self):
        uwsgi.add_file_monitor(self.num, self.fsobj)

spooler_functions = {}

def _text(v):
    if isinstance(v, bytes):
        try:
            return v.decode('utf-8')
        except UnicodeDecodeError:
            return v
    return v

def _manage_spool_request(task):
    \"\"\"uwsgi.spooler for the @spool decorators: runs the function the task
    names. Keys and values come back as str where they are UTF-8; the
    pickled arguments and the body stay bytes.\"\"\"
    vals = {}
    for k, v in task.items():
        k = _text(k)
        vals[k] = v if k in ('args', 'kwargs', 'body') else _text(v)
    f = spooler_functions[vals['ud_spool_func']]
    if 'args' in vals:
        args = _pickle.loads(vals.pop('args'))
        kwargs = _pickle.loads(vals.pop('kwargs'))
        ret = f(*args, **kwargs)
    else:
        ret = f(vals)
    if 'ud_spool_ret' not in vals:
        return ret
    return int(vals['ud_spool_ret'])

class _spoolraw:
    \"\"\"f.spool(...) (or calling the decorated function) spools a task that
    runs f in a spooler process; f's return value is the task's (SPOOL_OK,
    SPOOL_RETRY, SPOOL_IGNORE).\"\"\"

    _ret = None

    def __init__(self, f, pass_arguments):
        if 'spooler' not in uwsgi.opt and 'spooler-external' not in uwsgi.opt:
            raise Exception('you have to enable the uWSGI spooler to use @%s decorator'
                            % self.__class__.__name__.lstrip('_'))
        self.f = f
        spooler_functions[f.__name__] = f
        f.spool = self.__call__
        self.pass_arguments = pass_arguments
        self.base_dict = {'ud_spool_func': f.__name__}
        if getattr(uwsgi, 'spooler', None) is None:
            uwsgi.spooler = _manage_spool_request

    def __call__(self, *args, **kwargs):
        arguments = dict(self.base_dict)
        if self._ret is not None:
            arguments['ud_spool_ret'] = str(self._ret)
        if not self.pass_arguments:
            if args:
                arguments.update(args[0])
            arguments.update(kwargs)
        else:
            for key in ('spooler', 'priority', 'at', 'body'):
                if key in kwargs:
                    arguments[key] = kwargs.pop(key)
            arguments['args'] = _pickle.dumps(args)
            arguments['kwargs'] = _pickle.dumps(kwargs)
        return uwsgi.spool(arguments)

    def spool(self, *args, **kwargs):
        return self.__call__(*args, **kwargs)

class _spool(_spoolraw):
    _ret = uwsgi.SPOOL_OK

class _spoolforever(_spoolraw):
    _ret = uwsgi.SPOOL_RETRY

def _decorate(f, pass_arguments, cls):
    if f is None:
        return lambda g: cls(g, pass_arguments)
    return cls(f, pass_arguments)

def spoolraw(f=None, pass_arguments=False):
    return _decorate(f, pass_arguments, _spoolraw)

def spool(f=None, pass_arguments=False):
    \"\"\"The task is done once the function returns (SPOOL_OK).\"\"\"
    return _decorate(f, pass_arguments, _spool)

def spoolforever(f=None, pass_arguments=False):
    \"\"\"The task runs again at every scan (SPOOL_RETRY).\"\"\"
    return _decorate(f, pass_arguments, _spoolforever)

mule_functions = {}

def mule_msg_dispatcher(message):
    \"\"\"uwsgi.mule_msg_hook for @mulefunc: runs the function a message names.\"\"\"
    msg = _pickle.loads(message)
    if msg['service'] == 'uwsgi_mulefunc':
        return mule_functions[msg['func']](*msg['args'], **msg['kwargs'])

class mulefunc:
    \"\"\"Calling the function runs it in a mule: any mule, @mulefunc(N) mule N,
    @mulefunc('farm') a mule of that farm.\"\"\"

    def __init__(self, f):
        if callable(f):
            self.fname, self.mule = f.__name__, 0
            mule_functions[f.__name__] = f
        else:
            self.fname, self.mule = None, f
        if getattr(uwsgi, 'mule_msg_hook', None) is None:
            uwsgi.mule_msg_hook = mule_msg_dispatcher

    def real_call(self, *args, **kwargs):
        uwsgi.mule_msg(_pickle.dumps({
            'service': 'uwsgi_mulefunc',
            'func': self.fname,
            'args': args,
            'kwargs': kwargs,
        }), self.mule)

    def __call__(self, *args, **kwargs):
        if not self.fname:
            self.fname = args[0].__name__
            mule_functions[self.fname] = args[0]
            return self.real_call
        return self.real_call(*args, **kwargs)

def _guarded(f):
    \"\"\"Runs f; an exception ends the mule, as in uWSGI (it is respawned).\"\"\"
    try:
        f()
    except BaseException:
        import sys
        sys.excepthook(*sys.exc_info())
        sys.exit(1)

class _in_mule:
    \"\"\"A post-fork entry that runs only in one mule.\"\"\"

    def __init__(self, num, body):
        self.num, self.body = num, body
        _chain.append(self)
        uwsgi.post_fork_hook = _run_chain

    def _fire(self):
        if uwsgi.mule_id() == self.num:
            self.body()

class mule:
    \"\"\"@mule(N): the function runs once in mule N, after fork.\"\"\"

    def __init__(self, num):
        self.num = num

    def __call__(self, f):
        _in_mule(self.num, lambda: _guarded(f))
        return f

class muleloop(mule):
    \"\"\"@muleloop(N): the function runs again and again in mule N.\"\"\"

    def __call__(self, f):
        def body():
            while True:
                _guarded(f)
        _in_mule(self.num, body)
        return f

class mulemsg(mule):
    \"\"\"@mulemsg(N): the function gets each message for mule N.\"\"\"

    def __call__(self, f):
        def body():
            while True:
                message = uwsgi.mule_get_msg()
                if message:
                    f(message)
        _in_mule(self.num, body)
        return f

class _farm_loop:
    def __init__(self, f, name):
        self.f, self.name = f, name

    def _fire(self):
        if uwsgi.mule_id() == 0 or not uwsgi.in_farm(self.name):
            return
        while True:
            message = uwsgi.farm_get_msg()
            if message:
                self.f(message)

class farm:
    \"\"\"@farm(name): the mules of the farm hand each of its messages to the
    function.\"\"\"

    def __init__(self, name=None, **kwargs):
        self.name = name

    def __call__(self, f):
        _chain.append(_farm_loop(f, self.name))
        uwsgi.post_fork_hook = _run_chain
        return f

def __getattr__(name):
    if name.startswith('__'):
        raise AttributeError(name)
    raise AttributeError(
        'uwsgidecorators.%s is not available: it needs a part of uWSGI '
        '(erlang, sharedarea) that rwsgi does not have; rwsgi provides '
        'postfork, lock, thread, harakiri, rpc, signal, timer, rbtimer, cron, '
        'filemon, spool, spoolforever, spoolraw, mulefunc, mule, muleloop, '
        'mulemsg and farm' % name)
";

/// This process's worker id (0 until a worker sets it after fork).
static WORKER_ID: AtomicU32 = AtomicU32::new(0);
/// The master's pid (the prototype's parent), recorded by [`install`].
static MASTER_PID: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

/// The master's worker table (`snapshot.rs`), mapped by the prototype.
static SNAPSHOT: std::sync::OnceLock<crate::snapshot::Reader> = std::sync::OnceLock::new();

/// Gives the module the master's worker table (the prototype, at start).
pub fn set_snapshot(r: crate::snapshot::Reader) {
    let _ = SNAPSHOT.set(r);
}

/// Opens the log file again if the master asked for it (`logfile::follow`):
/// workers before each request, helpers before each task or message.
pub fn follow_log() {
    if let Some(r) = SNAPSHOT.get() {
        crate::logfile::follow(r.log_generation());
    }
}

/// The master's pid, as `uwsgi.masterpid()` gives it.
pub fn master_pid() -> i32 {
    MASTER_PID.load(Ordering::Relaxed)
}

/// What the app said about the request a thread is serving.
#[derive(Debug, Default)]
struct Slot {
    /// Requests this thread finished before the current one.
    finished: u64,
    log_this: bool,
    logvars: Vec<(Vec<u8>, Vec<u8>)>,
    /// The channel of the request in flight.
    chan: Option<Rc<RefCell<Channel>>>,
}

thread_local! {
    static SLOT: RefCell<Slot> = RefCell::new(Slot::default());
}

/// What a request leaves for its log line.
#[derive(Debug, Default)]
pub struct RequestLog {
    /// `uwsgi.log_this_request()` was called.
    pub log_this: bool,
    /// The log variables as a vars block (empty when none were set).
    pub logvars: Vec<u8>,
}

/// Opens this thread's slot for a new request on `chan`.
pub fn begin_request(chan: &Rc<RefCell<Channel>>) {
    SLOT.with_borrow_mut(|s| {
        s.log_this = false;
        s.logvars.clear();
        s.chan = Some(chan.clone());
    });
}

/// Closes this thread's slot: what the app set for the log line.
pub fn end_request() -> RequestLog {
    SLOT.with_borrow_mut(|s| {
        s.finished += 1;
        s.chan = None;
        let mut logvars = Vec::new();
        if !s.logvars.is_empty() {
            let pairs: Vec<(&[u8], &[u8])> =
                s.logvars.iter().map(|(k, v)| (&k[..], &v[..])).collect();
            // Bounded by MAX_LOGVARS and MAX_LOGVAR_LEN, so it encodes.
            if rwsgi_proto::encode_vars(&pairs, &mut logvars).is_err() {
                logvars.clear();
            }
            s.logvars.clear();
        }
        RequestLog {
            log_this: std::mem::take(&mut s.log_this),
            logvars,
        }
    })
}

/// Creates `uwsgi` and `uwsgidecorators` in `sys.modules`, and maps the
/// user locks. Called by the prototype before it imports the app.
pub fn install(py: Python<'_>, config: &Config) -> PyResult<()> {
    if let Err(e) = locks::init(config.locks) {
        tracing::error!(event = "locks_failed", cause = %e, "cannot map the user locks");
    }
    let m = PyModule::from_code(py, UWSGI_SOURCE, c"<uwsgi>", c"uwsgi")?;
    m.add_function(wrap_pyfunction!(worker_id, &m)?)?;
    m.add_function(wrap_pyfunction!(setprocname, &m)?)?;
    m.add_function(wrap_pyfunction!(request_id, &m)?)?;
    m.add_function(wrap_pyfunction!(set_logvar, &m)?)?;
    m.add_function(wrap_pyfunction!(get_logvar, &m)?)?;
    m.add_function(wrap_pyfunction!(log_this_request, &m)?)?;
    m.add_function(wrap_pyfunction!(micros, &m)?)?;
    m.add_function(wrap_pyfunction!(workers, &m)?)?;
    m.add_function(wrap_pyfunction!(total_requests, &m)?)?;
    m.add_function(wrap_pyfunction!(log, &m)?)?;
    m.add_function(wrap_pyfunction!(mem, &m)?)?;
    m.add_function(wrap_pyfunction!(lock, &m)?)?;
    m.add_function(wrap_pyfunction!(unlock, &m)?)?;
    m.add_function(wrap_pyfunction!(is_locked, &m)?)?;
    m.add_function(wrap_pyfunction!(set_user_harakiri, &m)?)?;
    m.add_function(wrap_pyfunction!(cache_get, &m)?)?;
    m.add_function(wrap_pyfunction!(cache_exists, &m)?)?;
    m.add_function(wrap_pyfunction!(cache_set, &m)?)?;
    m.add_function(wrap_pyfunction!(cache_update, &m)?)?;
    m.add_function(wrap_pyfunction!(cache_del, &m)?)?;
    m.add_function(wrap_pyfunction!(cache_clear, &m)?)?;
    m.add_function(wrap_pyfunction!(cache_keys, &m)?)?;
    m.add_function(wrap_pyfunction!(cache_num, &m)?)?;
    m.add_function(wrap_pyfunction!(cache_inc, &m)?)?;
    m.add_function(wrap_pyfunction!(cache_dec, &m)?)?;
    m.add_function(wrap_pyfunction!(cache_mul, &m)?)?;
    m.add_function(wrap_pyfunction!(cache_div, &m)?)?;
    super::signals::add_to(&m)?;
    super::spool_api::add_to(&m)?;
    super::mule_api::add_to(&m)?;
    super::sharedarea::add_to(&m)?;
    let (major, minor, revision) = API_VERSION;
    m.setattr(
        "version",
        PyBytes::new(py, format!("{major}.{minor}.{revision}-rwsgi").as_bytes()),
    )?;
    m.setattr(
        "version_info",
        PyTuple::new(
            py,
            [
                major.into_pyobject(py)?.into_any(),
                minor.into_pyobject(py)?.into_any(),
                revision.into_pyobject(py)?.into_any(),
                0u32.into_pyobject(py)?.into_any(),
                PyBytes::new(py, b"rwsgi").into_any(),
            ],
        )?,
    )?;
    let hostname = nix::unistd::gethostname().unwrap_or_default();
    m.setattr("hostname", PyBytes::new(py, hostname.as_encoded_bytes()))?;
    m.setattr("numproc", config.processes)?;
    m.setattr("cores", config.threads)?;
    // Threads started by the app always run in rwsgi (uWSGI's default
    // since 2.0.27).
    m.setattr("has_threads", 1)?;
    m.setattr("buffer_size", config.buffer_size)?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    m.setattr("started_on", now.as_secs())?;
    // The prototype's parent is the master.
    MASTER_PID.store(nix::unistd::getppid().as_raw(), Ordering::Relaxed);
    m.setattr("_masterpid", master_pid())?;
    m.setattr("opt", opt(py, &config.exported)?)?;
    let modules = py.import("sys")?.getattr("modules")?;
    modules.set_item("uwsgi", &m)?;
    let decorators = PyModule::from_code(
        py,
        DECORATORS_SOURCE,
        c"<uwsgidecorators>",
        c"uwsgidecorators",
    )?;
    modules.set_item("uwsgidecorators", decorators)?;
    Ok(())
}

/// What rwsgi always does that uWSGI needs options for: libraries (Sentry,
/// ddtrace, Instana) read these in `uwsgi.opt` to learn whether their
/// background threads will run and whether CPython's fork hooks are called.
/// In rwsgi both are always true, so `opt` says so unless the option was
/// given.
const ALWAYS_ON: [&str; 2] = ["enable-threads", "py-call-uwsgi-fork-hooks"];

/// `uwsgi.opt`, built as uWSGI builds it: each option under the name it
/// was given, its value as bytes (`True` for a bare flag), a list when it
/// was given more than once; then [`ALWAYS_ON`].
fn opt<'py>(
    py: Python<'py>,
    exported: &[(String, Option<String>)],
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for (name, value) in exported {
        let v = match value {
            Some(v) => PyBytes::new(py, v.as_bytes()).into_any(),
            None => pyo3::types::PyBool::new(py, true).to_owned().into_any(),
        };
        match d.get_item(name)? {
            None => d.set_item(name, v)?,
            Some(old) => match old.cast::<PyList>() {
                Ok(list) => list.append(v)?,
                Err(_) => d.set_item(name, PyList::new(py, [old, v])?)?,
            },
        }
    }
    for name in ALWAYS_ON {
        if !d.contains(name)? {
            d.set_item(name, true)?;
        }
    }
    Ok(d)
}

/// In a newly forked worker: records its id, starts its request count
/// afresh, and calls `uwsgi.post_fork_hook` when the app set one (uWSGI's
/// `uwsgi_python_post_fork`; an exception is printed and the worker goes
/// on).
pub fn after_fork(py: Python<'_>, worker: u32) {
    WORKER_ID.store(worker, Ordering::Relaxed);
    SLOT.with_borrow_mut(|s| *s = Slot::default());
    call_hook(py, "post_fork_hook");
}

/// In a worker that stops as asked: calls `uwsgi.atexit` when the app set
/// one, then (unless `skip-atexit`) the functions the app registered with
/// Python's `atexit` (uWSGI's `uwsgi_python_atexit`, which ends in
/// `Py_Finalize`). They get `mercy` (`worker-reload-mercy`); past that the
/// worker ends anyway, as uWSGI's master ends a worker that takes too long
/// to die, so a stuck exit function never holds a worker slot.
pub fn at_exit(py: Python<'_>, skip_atexit: bool, mercy: std::time::Duration) {
    let watchdog = std::thread::Builder::new()
        .name("rwsgi-exit-mercy".into())
        .spawn(move || {
            std::thread::sleep(mercy);
            tracing::error!(
                event = "no_mercy",
                worker = worker_id(),
                "worker {} (pid: {}) is taking too much time to die...NO MERCY !!!",
                worker_id(),
                std::process::id()
            );
            // SAFETY: _exit ends the process at once without running
            // anything else of it, which is the point: its exit functions
            // did not finish in time.
            unsafe { libc::_exit(super::EXIT_STOPPED) }
        });
    if let Err(e) = watchdog {
        tracing::warn!(event = "thread_failed", cause = %e, "no mercy watchdog for the exit functions");
    }
    call_hook(py, "atexit");
    if skip_atexit {
        return;
    }
    if let Err(e) = py
        .import("atexit")
        .and_then(|a| a.call_method0("_run_exitfuncs"))
    {
        e.print(py);
    }
}

fn call_hook(py: Python<'_>, name: &str) {
    let Ok(m) = py.import("uwsgi") else { return };
    let Ok(dict) = m.dict().get_item(name) else {
        return;
    };
    if let Some(hook) = dict {
        if let Err(e) = hook.call0() {
            e.print(py);
        }
    }
}

/// A `str` (as UTF-8) or `bytes` argument.
fn text(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Vec<u8>> {
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(s.to_str()?.as_bytes().to_vec());
    }
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(b.as_bytes().to_vec());
    }
    Err(PyTypeError::new_err(format!("{what} must be str or bytes")))
}

/// `uwsgi.worker_id()`.
#[pyfunction]
pub fn worker_id() -> u32 {
    WORKER_ID.load(Ordering::Relaxed)
}

/// `uwsgi.setprocname(name)`: this process's title, with the
/// `procname-prefix` and `procname-append` (`proctitle.rs`).
#[pyfunction]
fn setprocname(name: &str) {
    crate::proctitle::set_named(name);
}

/// `uwsgi.request_id()`: requests this thread finished before this one.
#[pyfunction]
fn request_id() -> u64 {
    SLOT.with_borrow(|s| s.finished)
}

/// `uwsgi.set_logvar(name, value)`: `%(name)` in `log-format` prints it.
/// Setting a name again replaces its value.
#[pyfunction]
fn set_logvar(key: &Bound<'_, PyAny>, value: &Bound<'_, PyAny>) -> PyResult<()> {
    let key = text(key, "the log variable's name")?;
    let value = text(value, "the log variable's value")?;
    if key.len() > MAX_LOGVAR_LEN || value.len() > MAX_LOGVAR_LEN {
        return Err(PyValueError::new_err(format!(
            "a log variable's name and value are at most {MAX_LOGVAR_LEN} bytes"
        )));
    }
    SLOT.with_borrow_mut(|s| {
        if let Some(slot) = s.logvars.iter_mut().find(|(k, _)| *k == key) {
            slot.1 = value;
            return Ok(());
        }
        if s.logvars.len() >= MAX_LOGVARS {
            return Err(PyValueError::new_err(format!(
                "a request can set at most {MAX_LOGVARS} log variables"
            )));
        }
        s.logvars.push((key, value));
        Ok(())
    })
}

/// `uwsgi.get_logvar(name)`: the value as bytes, or `None`.
#[pyfunction]
fn get_logvar<'py>(
    py: Python<'py>,
    key: &Bound<'py, PyAny>,
) -> PyResult<Option<Bound<'py, PyBytes>>> {
    let key = text(key, "the log variable's name")?;
    Ok(SLOT.with_borrow(|s| {
        s.logvars
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| PyBytes::new(py, v))
    }))
}

/// `uwsgi.set_user_harakiri(seconds)`: the master kills this worker if the
/// request in flight is still running `seconds` from now (0 clears it); it
/// ends with the request. Checked beside `harakiri`, as in uWSGI. Outside a
/// request it does nothing.
#[pyfunction]
fn set_user_harakiri(py: Python<'_>, seconds: u32) -> PyResult<()> {
    let Some(chan) = SLOT.with_borrow(|s| s.chan.clone()) else {
        return Ok(());
    };
    let mut c = chan.borrow_mut();
    c.push(Kind::Harakiri, &seconds.to_le_bytes());
    // Sent now: the deadline counts from this call, not from the next
    // write of the response.
    c.flush(py)
        .map_err(|e| PyOSError::new_err(format!("write error: {e}")))
}

/// `uwsgi.log_this_request()`: log this request whatever `disable-logging` and the
/// `log-*` rules say.
#[pyfunction]
fn log_this_request() {
    SLOT.with_borrow_mut(|s| s.log_this = true);
}

/// `uwsgi.total_requests()`: requests the instance served, as the master
/// last published it (once a second).
#[pyfunction]
fn total_requests() -> u64 {
    SNAPSHOT
        .get()
        .and_then(crate::snapshot::Reader::read)
        .map_or(0, |(total, _)| total)
}

/// `uwsgi.workers()`: a tuple with a dict per worker slot, with uWSGI's
/// keys (`id`, `pid`, `requests`, `delta_requests`, `signals`,
/// `exceptions`, `status` as bytes, `rss`, `vsz`, `running_time`,
/// `last_spawn`, `respawn_count`, `tx`, `avg_rt`, `apps`), from the
/// master's once-a-second snapshot; memory is read from `/proc` now.
#[pyfunction]
fn workers(py: Python<'_>) -> PyResult<Bound<'_, PyTuple>> {
    let records = SNAPSHOT
        .get()
        .and_then(crate::snapshot::Reader::read)
        .map(|(_, r)| r)
        .unwrap_or_default();
    let mut out = Vec::with_capacity(records.len());
    for r in records {
        let d = PyDict::new(py);
        let (vsz, rss) = crate::stats::process_memory(i32::try_from(r.pid).unwrap_or(0));
        d.set_item("id", r.id)?;
        d.set_item("pid", r.pid)?;
        d.set_item("requests", r.requests)?;
        d.set_item("delta_requests", r.delta_requests)?;
        d.set_item("signals", 0)?;
        d.set_item("exceptions", r.exceptions)?;
        d.set_item("status", PyBytes::new(py, r.status_name().as_bytes()))?;
        d.set_item("rss", rss)?;
        d.set_item("vsz", vsz)?;
        d.set_item("running_time", r.running_time)?;
        d.set_item("last_spawn", r.last_spawn)?;
        // uWSGI counts respawns after the first spawn.
        d.set_item("respawn_count", r.respawn_count.saturating_sub(1))?;
        d.set_item("tx", r.tx)?;
        d.set_item("avg_rt", r.avg_rt)?;
        let app = PyDict::new(py);
        app.set_item("id", 0)?;
        app.set_item("modifier1", 0)?;
        app.set_item("mountpoint", PyBytes::new(py, b""))?;
        app.set_item("startup_time", 0)?;
        app.set_item("requests", r.requests)?;
        app.set_item("exceptions", r.exceptions)?;
        app.set_item("chdir", PyBytes::new(py, b""))?;
        let apps = if r.pid > 0 {
            PyTuple::new(py, [app])?
        } else {
            PyTuple::empty(py)
        };
        d.set_item("apps", apps)?;
        out.push(d);
    }
    PyTuple::new(py, out)
}

/// `uwsgi.micros()`: the time in microseconds since the epoch.
#[pyfunction]
fn micros() -> u64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(now.as_micros()).unwrap_or(u64::MAX)
}

/// `uwsgi.log(line)`: writes a line to the server log.
#[pyfunction]
fn log(line: &Bound<'_, PyAny>) -> PyResult<bool> {
    let line = text(line, "the log line")?;
    let line = String::from_utf8_lossy(&line);
    tracing::info!(event = "app_log", "{}", line.trim_end_matches('\n'));
    Ok(true)
}

/// `uwsgi.mem()`: (RSS, address space) of this process in bytes.
#[pyfunction]
fn mem() -> (u64, u64) {
    let pid = i32::try_from(std::process::id()).unwrap_or(0);
    let (vsz, rss) = crate::stats::process_memory(pid);
    (rss, vsz)
}

fn lock_error(e: locks::LockError) -> PyErr {
    match e {
        locks::LockError::Invalid => PyValueError::new_err(e.to_string()),
        _ => PyRuntimeError::new_err(e.to_string()),
    }
}

/// `uwsgi.lock(n=0)`: waits for user lock `n` (without the GIL).
#[pyfunction]
#[pyo3(signature = (n = 0))]
fn lock(py: Python<'_>, n: i64) -> PyResult<()> {
    py.detach(|| locks::lock(n)).map_err(lock_error)
}

/// `uwsgi.unlock(n=0)`.
#[pyfunction]
#[pyo3(signature = (n = 0))]
fn unlock(n: i64) -> PyResult<()> {
    locks::unlock(n).map_err(lock_error)
}

/// `uwsgi.is_locked(n=0)`.
#[pyfunction]
#[pyo3(signature = (n = 0))]
fn is_locked(n: i64) -> PyResult<bool> {
    locks::is_locked(n).map_err(lock_error)
}

fn cache_error(e: crate::cache::CacheError) -> PyErr {
    match e {
        crate::cache::CacheError::Lock(_) => PyRuntimeError::new_err(e.to_string()),
        _ => PyValueError::new_err(e.to_string()),
    }
}

/// Runs `f` on the named (else the first) cache, without the GIL.
fn on_cache<T: Send>(
    py: Python<'_>,
    cache: Option<&str>,
    f: impl FnOnce(&crate::cache::Cache) -> Result<T, crate::cache::CacheError> + Send,
) -> PyResult<T> {
    let c = crate::cache::by_name(cache).map_err(cache_error)?;
    py.detach(|| f(c)).map_err(cache_error)
}

/// uWSGI's answer: `True` for done, `None` for not done.
fn done(ok: bool) -> Option<bool> {
    ok.then_some(true)
}

/// `uwsgi.cache_get(key, cache=None)`: the value as bytes, or `None`.
#[pyfunction]
#[pyo3(signature = (key, cache = None))]
fn cache_get<'py>(
    py: Python<'py>,
    key: &Bound<'py, PyAny>,
    cache: Option<&str>,
) -> PyResult<Option<Bound<'py, PyBytes>>> {
    let key = text(key, "the key")?;
    let v = on_cache(py, cache, |c| c.get(&key))?;
    Ok(v.map(|v| PyBytes::new(py, &v)))
}

/// `uwsgi.cache_exists(key, cache=None)`: `True` or `None`.
#[pyfunction]
#[pyo3(signature = (key, cache = None))]
fn cache_exists(
    py: Python<'_>,
    key: &Bound<'_, PyAny>,
    cache: Option<&str>,
) -> PyResult<Option<bool>> {
    let key = text(key, "the key")?;
    Ok(done(on_cache(py, cache, |c| c.exists(&key))?))
}

/// `uwsgi.cache_set(key, value, expires=0, cache=None)`: stores a key that
/// is not there yet.
#[pyfunction]
#[pyo3(signature = (key, value, expires = 0, cache = None))]
fn cache_set(
    py: Python<'_>,
    key: &Bound<'_, PyAny>,
    value: &Bound<'_, PyAny>,
    expires: u64,
    cache: Option<&str>,
) -> PyResult<Option<bool>> {
    let (key, value) = (text(key, "the key")?, text(value, "the value")?);
    Ok(done(on_cache(py, cache, |c| {
        c.set(&key, &value, expires, false)
    })?))
}

/// `uwsgi.cache_update(key, value, expires=0, cache=None)`: stores or
/// replaces.
#[pyfunction]
#[pyo3(signature = (key, value, expires = 0, cache = None))]
fn cache_update(
    py: Python<'_>,
    key: &Bound<'_, PyAny>,
    value: &Bound<'_, PyAny>,
    expires: u64,
    cache: Option<&str>,
) -> PyResult<Option<bool>> {
    let (key, value) = (text(key, "the key")?, text(value, "the value")?);
    Ok(done(on_cache(py, cache, |c| {
        c.set(&key, &value, expires, true)
    })?))
}

/// `uwsgi.cache_del(key, cache=None)`.
#[pyfunction]
#[pyo3(signature = (key, cache = None))]
fn cache_del(
    py: Python<'_>,
    key: &Bound<'_, PyAny>,
    cache: Option<&str>,
) -> PyResult<Option<bool>> {
    let key = text(key, "the key")?;
    Ok(done(on_cache(py, cache, |c| c.delete(&key))?))
}

/// `uwsgi.cache_clear(cache=None)`.
#[pyfunction]
#[pyo3(signature = (cache = None))]
fn cache_clear(py: Python<'_>, cache: Option<&str>) -> PyResult<Option<bool>> {
    on_cache(py, cache, |c| c.clear())?;
    Ok(Some(true))
}

/// `uwsgi.cache_keys(cache=None)`: the keys, as bytes.
#[pyfunction]
#[pyo3(signature = (cache = None))]
fn cache_keys<'py>(py: Python<'py>, cache: Option<&str>) -> PyResult<Bound<'py, PyList>> {
    let keys = on_cache(py, cache, |c| c.keys())?;
    PyList::new(py, keys.iter().map(|k| PyBytes::new(py, k)))
}

/// `uwsgi.cache_num(key, cache=None)`: the 64-bit number at `key` (0 when
/// missing or not a number).
#[pyfunction]
#[pyo3(signature = (key, cache = None))]
fn cache_num(py: Python<'_>, key: &Bound<'_, PyAny>, cache: Option<&str>) -> PyResult<i64> {
    let key = text(key, "the key")?;
    let v = on_cache(py, cache, |c| c.get(&key))?;
    Ok(v.and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
        .map_or(0, i64::from_ne_bytes))
}

/// The arithmetic of `cache_inc` and friends.
fn cache_math(
    py: Python<'_>,
    key: &Bound<'_, PyAny>,
    cache: Option<&str>,
    expires: u64,
    op: impl FnOnce(i64) -> Option<i64> + Send,
) -> PyResult<Option<bool>> {
    let key = text(key, "the key")?;
    Ok(done(on_cache(py, cache, |c| c.math(&key, op, expires))?))
}

/// `uwsgi.cache_inc(key, value=1, expires=0, cache=None)`.
#[pyfunction]
#[pyo3(signature = (key, value = 1, expires = 0, cache = None))]
fn cache_inc(
    py: Python<'_>,
    key: &Bound<'_, PyAny>,
    value: i64,
    expires: u64,
    cache: Option<&str>,
) -> PyResult<Option<bool>> {
    cache_math(py, key, cache, expires, move |v| v.checked_add(value))
}

/// `uwsgi.cache_dec(key, value=1, expires=0, cache=None)`.
#[pyfunction]
#[pyo3(signature = (key, value = 1, expires = 0, cache = None))]
fn cache_dec(
    py: Python<'_>,
    key: &Bound<'_, PyAny>,
    value: i64,
    expires: u64,
    cache: Option<&str>,
) -> PyResult<Option<bool>> {
    cache_math(py, key, cache, expires, move |v| v.checked_sub(value))
}

/// `uwsgi.cache_mul(key, value=2, expires=0, cache=None)`.
#[pyfunction]
#[pyo3(signature = (key, value = 2, expires = 0, cache = None))]
fn cache_mul(
    py: Python<'_>,
    key: &Bound<'_, PyAny>,
    value: i64,
    expires: u64,
    cache: Option<&str>,
) -> PyResult<Option<bool>> {
    cache_math(py, key, cache, expires, move |v| v.checked_mul(value))
}

/// `uwsgi.cache_div(key, value=2, expires=0, cache=None)`.
#[pyfunction]
#[pyo3(signature = (key, value = 2, expires = 0, cache = None))]
fn cache_div(
    py: Python<'_>,
    key: &Bound<'_, PyAny>,
    value: i64,
    expires: u64,
    cache: Option<&str>,
) -> PyResult<Option<bool>> {
    cache_math(py, key, cache, expires, move |v| v.checked_div(value))
}
