//! The option table: one entry per uWSGI option rwsgi knows. It drives
//! parsing (argv, ini, `UWSGI_*` environment), `--help`, and the "unknown
//! option" errors with their "did you mean" hints.
//!
//! Each entry says what rwsgi does with the option: [`Support::Yes`] applies
//! it; [`Support::Ignored`] accepts it with a warning because ignoring it is
//! harmless; [`Support::Unsupported`] rejects it with a message that names it.
//! That third column is the one table that decides which unsupported uWSGI
//! options are errors (DESIGN.md §5).

/// How an option takes its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A boolean: bare on the command line; in an ini file any value but
    /// `false`/`off`/`no`/`0` is true (uWSGI `uwsgi_opt_true`).
    Flag,
    /// One value; a later occurrence overrides an earlier one.
    Value,
    /// A value that may be given many times; all occurrences are kept.
    List,
}

/// What rwsgi does with an option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    /// Applied.
    Yes,
    /// Accepted and ignored, with a warning that gives the reason.
    Ignored(&'static str),
    /// Rejected at startup, with the reason.
    Unsupported(&'static str),
}

/// One option.
#[derive(Debug)]
pub struct Spec {
    /// The canonical name (what `Config` is built from).
    pub name: &'static str,
    /// Other long names for the same option.
    pub aliases: &'static [&'static str],
    /// The one-letter form, if any.
    pub short: Option<char>,
    /// How it takes its value.
    pub kind: Kind,
    /// Whether and how it is supported.
    pub support: Support,
    /// One line for `--help`.
    pub help: &'static str,
}

const fn opt(
    name: &'static str,
    aliases: &'static [&'static str],
    short: Option<char>,
    kind: Kind,
    help: &'static str,
) -> Spec {
    Spec {
        name,
        aliases,
        short,
        kind,
        support: Support::Yes,
        help,
    }
}

const fn ignored(name: &'static str, kind: Kind, why: &'static str) -> Spec {
    Spec {
        name,
        aliases: &[],
        short: None,
        kind,
        support: Support::Ignored(why),
        help: why,
    }
}

const fn unsupported(name: &'static str, kind: Kind, why: &'static str) -> Spec {
    Spec {
        name,
        aliases: &[],
        short: None,
        kind,
        support: Support::Unsupported(why),
        help: why,
    }
}

use Kind::{Flag, List, Value};

/// Every option rwsgi knows, in `--help` order.
pub static OPTIONS: &[Spec] = &[
    // Sockets.
    opt(
        "socket",
        &["uwsgi-socket"],
        Some('s'),
        List,
        "serve the uwsgi protocol on host:port, :port or a unix socket path",
    ),
    opt(
        "http-socket",
        &["http11-socket"],
        None,
        List,
        "serve HTTP/1.1 on host:port, :port or a unix socket path",
    ),
    opt(
        "protocol",
        &["socket-protocol"],
        None,
        Value,
        "the protocol of every socket option: uwsgi (the default) or http",
    ),
    opt(
        "http",
        &[],
        None,
        List,
        "serve HTTP/1.1 (rwsgi serves it from the master; no router process)",
    ),
    opt(
        "listen",
        &[],
        Some('l'),
        Value,
        "the listen backlog and the request queue bound (default 100)",
    ),
    opt(
        "buffer-size",
        &[],
        Some('b'),
        Value,
        "largest uwsgi vars block or HTTP header block in bytes (default 65535)",
    ),
    opt(
        "max-vars",
        &[],
        None,
        Value,
        "largest number of uwsgi vars in one request (default 1024)",
    ),
    opt(
        "chmod-socket",
        &[],
        Some('C'),
        Value,
        "mode of unix sockets (bare: 666)",
    ),
    opt("vacuum", &[], None, Flag, "remove unix sockets at exit"),
    opt(
        "so-keepalive",
        &[],
        None,
        Flag,
        "enable TCP keepalives on the connections of TCP sockets",
    ),
    opt(
        "reuse-port",
        &[],
        None,
        Flag,
        "set SO_REUSEPORT on TCP sockets",
    ),
    opt(
        "limit-as",
        &[],
        None,
        Value,
        "limit the address space of every process to N MiB (RLIMIT_AS)",
    ),
    opt(
        "max-fd",
        &[],
        None,
        Value,
        "raise the open-file limit (RLIMIT_NOFILE) of every process to N",
    ),
    opt(
        "socket-timeout",
        &[],
        Some('z'),
        Value,
        "seconds a peer may stall while sending a request or reading a response (default 4)",
    ),
    // The application.
    opt(
        "module",
        &["wsgi"],
        Some('w'),
        Value,
        "the app as pkg.module[:callable]",
    ),
    opt(
        "wsgi-file",
        &["file"],
        None,
        Value,
        "load the app from a Python file",
    ),
    opt(
        "callable",
        &[],
        None,
        Value,
        "the app's attribute name (default application)",
    ),
    opt(
        "paste",
        &[],
        None,
        Value,
        "load the app with PasteDeploy's loadapp (config:/path/to/app.ini)",
    ),
    opt(
        "paste-logger",
        &[],
        None,
        Flag,
        "with paste, configure Python logging from the same ini file",
    ),
    opt(
        "ini-paste",
        &[],
        None,
        Value,
        "read an ini file's [uwsgi] section and load its app with PasteDeploy",
    ),
    opt(
        "ini-paste-logged",
        &[],
        None,
        Value,
        "as ini-paste, and configure Python logging from the file",
    ),
    opt(
        "optimize",
        &[],
        Some('O'),
        Value,
        "Python's optimization level (as python -O / -OO)",
    ),
    opt(
        "import",
        &["pyimport", "py-import", "python-import"],
        None,
        List,
        "import a Python module (or .py file) before the app, where the app is loaded",
    ),
    opt(
        "shared-import",
        &[
            "pyimport-shared",
            "py-shared-import",
            "python-shared-import",
        ],
        None,
        List,
        "import a Python module (or .py file) in the prototype before the app, shared by all workers",
    ),
    opt(
        "chdir",
        &[],
        None,
        Value,
        "change to this directory before loading the app",
    ),
    opt(
        "enable-proxy-protocol",
        &["http-enable-proxy-protocol"],
        None,
        Flag,
        "HTTP connections may start with a PROXY v1 header that gives the client's address",
    ),
    opt(
        "chdir2",
        &[],
        None,
        Value,
        "change to this directory after loading the app",
    ),
    opt(
        "pythonpath",
        &["python-path", "pp"],
        None,
        List,
        "prepend a directory to sys.path",
    ),
    opt(
        "home",
        &["virtualenv", "venv", "pyhome"],
        Some('H'),
        Value,
        "the virtualenv to use",
    ),
    opt(
        "env",
        &[],
        None,
        List,
        "set an environment variable (KEY=VALUE)",
    ),
    opt(
        "lazy-apps",
        &["lazy"],
        None,
        Flag,
        "load the app in each worker instead of once before forking",
    ),
    opt(
        "need-app",
        &[],
        None,
        Flag,
        "exit if the app cannot be loaded",
    ),
    opt(
        "enable-threads",
        &[],
        Some('T'),
        Flag,
        "let the app start threads (always on)",
    ),
    opt(
        "sched-policy",
        &[],
        None,
        Value,
        "rwsgi: CPU scheduling policy of all processes: batch (default) or other",
    ),
    opt(
        "warmup-url",
        &[],
        None,
        List,
        "rwsgi: before forking, call the app in the prototype with GET on this path (repeatable)",
    ),
    opt(
        "warmup-requests",
        &[],
        None,
        Value,
        "rwsgi: how many times each warm-up path is called (default 16)",
    ),
    opt(
        "worker-pipeline",
        &[],
        None,
        Value,
        "rwsgi: when every worker is busy, queue one request on a busy worker of a fast app so it starts without a wake-up (default true)",
    ),
    opt(
        "gc-freeze",
        &[],
        None,
        Value,
        "run gc.freeze() in the prototype before forking (default true)",
    ),
    // Processes.
    opt("master", &[], Some('M'), Flag, "run a master (always on)"),
    opt(
        "processes",
        &["workers"],
        Some('p'),
        Value,
        "number of worker processes (default 1)",
    ),
    opt(
        "threads",
        &[],
        None,
        Value,
        "Python threads per worker, each serving one request (default 1)",
    ),
    opt(
        "locks",
        &[],
        None,
        Value,
        "user locks besides lock 0 for uwsgi.lock(n) (default 0)",
    ),
    opt(
        "worker-reload-mercy",
        &[],
        None,
        Value,
        "seconds a stopping worker's exit functions (uwsgi.atexit, atexit) may take before it is ended (default 60)",
    ),
    opt(
        "spooler",
        &[],
        Some('Q'),
        List,
        "run spooler processes on this directory (uwsgi.spool, @spool)",
    ),
    opt(
        "spooler-external",
        &[],
        None,
        List,
        "tasks may be spooled to this directory; its spooler runs elsewhere",
    ),
    opt(
        "spooler-processes",
        &[],
        None,
        Value,
        "spooler processes per spooler directory (default 1)",
    ),
    opt(
        "spooler-frequency",
        &[],
        None,
        Value,
        "seconds between scans of a spooler directory (default 30)",
    ),
    opt(
        "spooler-harakiri",
        &[],
        None,
        Value,
        "kill a spooler process whose task runs longer than this many seconds",
    ),
    opt(
        "spooler-max-tasks",
        &[],
        None,
        Value,
        "recycle a spooler process after this many tasks",
    ),
    opt(
        "spooler-quiet",
        &[],
        None,
        Flag,
        "no log line per spooler task",
    ),
    opt(
        "spooler-chdir",
        &[],
        None,
        Value,
        "directory spooler tasks run in",
    ),
    opt(
        "spooler-import",
        &["spooler-pyimport", "spooler-python-import"],
        None,
        List,
        "import a module in the spooler processes only",
    ),
    opt(
        "route",
        &[],
        None,
        List,
        "a routing rule on PATH_INFO: REGEXP ACTION (redirect, return, break, basicauth, …)",
    ),
    opt(
        "route-uri",
        &[],
        None,
        List,
        "a routing rule on REQUEST_URI",
    ),
    opt(
        "route-qs",
        &[],
        None,
        List,
        "a routing rule on QUERY_STRING",
    ),
    opt("route-host", &[], None, List, "a routing rule on HTTP_HOST"),
    opt(
        "route-remote-addr",
        &[],
        None,
        List,
        "a routing rule on REMOTE_ADDR",
    ),
    opt(
        "route-user-agent",
        &[],
        None,
        List,
        "a routing rule on HTTP_USER_AGENT",
    ),
    opt(
        "route-referer",
        &[],
        None,
        List,
        "a routing rule on HTTP_REFERER",
    ),
    opt(
        "route-if",
        &[],
        None,
        List,
        "a routing rule on a condition: equal:A;B ACTION, startswith, regexp, isfile, …",
    ),
    opt(
        "route-run",
        &[],
        None,
        List,
        "a routing action run on every request (no condition)",
    ),
    opt(
        "route-label",
        &[],
        None,
        List,
        "a label in the routing table, for goto:LABEL",
    ),
    opt(
        "route-if-not",
        &[],
        None,
        List,
        "a routing rule on a condition that does not hold",
    ),
    opt(
        "mule",
        &[],
        None,
        List,
        "add a mule; it runs this .py file or module:function first, if given",
    ),
    opt("mules", &[], None, Value, "add this many mules"),
    opt(
        "farm",
        &[],
        None,
        List,
        "a named group of mules sharing a message queue: name:1,2",
    ),
    opt(
        "mule-msg-size",
        &[],
        None,
        Value,
        "the largest mule message in bytes (default 65536)",
    ),
    ignored(
        "spooler-ordered",
        Flag,
        "rwsgi always runs spooled tasks in order: priority directories, lowest first, then by name",
    ),
    opt(
        "skip-atexit",
        &[],
        None,
        Flag,
        "workers exit without running Python's atexit handlers",
    ),
    opt(
        "uid",
        &[],
        None,
        Value,
        "drop privileges to this user after binding",
    ),
    opt(
        "gid",
        &[],
        None,
        Value,
        "drop privileges to this group after binding",
    ),
    opt(
        "die-on-term",
        &[],
        None,
        Flag,
        "exit on SIGTERM (rwsgi always does, gracefully)",
    ),
    // Recycling and harakiri (reference §5.3, §5.4).
    opt(
        "harakiri",
        &[],
        Some('t'),
        Value,
        "kill a worker whose request has run this many seconds (0 = off)",
    ),
    ignored(
        "harakiri-verbose",
        Flag,
        "the harakiri lines name the worker, its pid and core; there is no /proc dump",
    ),
    opt(
        "max-requests",
        &[],
        Some('R'),
        Value,
        "recycle a worker after this many requests (0 = off)",
    ),
    opt(
        "max-requests-delta",
        &[],
        None,
        Value,
        "add (worker id - 1) * this to max-requests, so workers do not recycle together",
    ),
    opt(
        "reload-on-rss",
        &[],
        None,
        Value,
        "recycle a worker whose RSS after a request is at least this many megabytes",
    ),
    opt(
        "harakiri-graceful-timeout",
        &[],
        None,
        Value,
        "on harakiri, send harakiri-graceful-signal first and SIGKILL this many seconds later",
    ),
    opt(
        "harakiri-graceful-signal",
        &[],
        None,
        Value,
        "the signal of a graceful harakiri (default SIGTERM)",
    ),
    opt(
        "reload-on-as",
        &[],
        None,
        Value,
        "recycle a worker whose address space after a request is at least this many megabytes",
    ),
    opt(
        "evil-reload-on-rss",
        &[],
        None,
        Value,
        "the master kills a worker whose RSS reaches this many megabytes, even mid-request",
    ),
    opt(
        "evil-reload-on-as",
        &[],
        None,
        Value,
        "the master kills a worker whose address space reaches this many megabytes",
    ),
    opt(
        "max-worker-lifetime",
        &[],
        None,
        Value,
        "recycle a worker, between requests, once it has run this many seconds (0 = off)",
    ),
    opt(
        "max-worker-lifetime-delta",
        &[],
        None,
        Value,
        "add (worker id - 1) * this many seconds to max-worker-lifetime",
    ),
    opt(
        "min-worker-lifetime",
        &[],
        None,
        Value,
        "seconds a worker lives before max-requests and reload-on-rss apply (default 10)",
    ),
    opt(
        "reload-mercy",
        &[],
        None,
        Value,
        "seconds in-flight requests get to finish at shutdown (default 30)",
    ),
    // The cheaper subsystem (worker autoscaling) and the master FIFO.
    opt(
        "cheaper",
        &[],
        None,
        Value,
        "the fewest workers; enables scaling between it and processes",
    ),
    opt(
        "cheaper-initial",
        &[],
        None,
        Value,
        "workers started at first (default: cheaper)",
    ),
    opt(
        "cheaper-step",
        &[],
        None,
        Value,
        "workers spawned at once (0 means 1)",
    ),
    opt(
        "cheaper-overload",
        &[],
        None,
        Value,
        "busyness window in seconds / spare checks / backlog threshold (default 3)",
    ),
    opt(
        "cheaper-algo",
        &[],
        None,
        Value,
        "busyness, spare (default), spare2, backlog or manual",
    ),
    opt(
        "check-interval",
        &[],
        None,
        Value,
        "seconds between two scaling decisions (default 1)",
    ),
    opt(
        "cheaper-busyness-max",
        &[],
        None,
        Value,
        "spawn above this average busyness in % (default 50)",
    ),
    opt(
        "cheaper-busyness-min",
        &[],
        None,
        Value,
        "idle below this average busyness in % (default 25)",
    ),
    opt(
        "cheaper-busyness-multiplier",
        &[],
        None,
        Value,
        "idle cycles before a cheap (default 10)",
    ),
    opt(
        "cheaper-busyness-penalty",
        &[],
        None,
        Value,
        "multiplier increase on a too-fast respawn (default 2)",
    ),
    opt(
        "cheaper-busyness-verbose",
        &[],
        None,
        Flag,
        "log every busyness computation",
    ),
    opt(
        "cheaper-busyness-backlog-alert",
        &[],
        None,
        Value,
        "queued requests that spawn an emergency worker (default 33)",
    ),
    opt(
        "cheaper-busyness-backlog-multiplier",
        &[],
        None,
        Value,
        "cheap multiplier while emergency workers run (default 3)",
    ),
    opt(
        "cheaper-busyness-backlog-step",
        &[],
        None,
        Value,
        "emergency workers per alert (default 1)",
    ),
    opt(
        "cheaper-busyness-backlog-nonzero",
        &[],
        None,
        Value,
        "seconds of non-empty queue that spawn a worker (default 60)",
    ),
    opt(
        "cheaper-rss-limit-soft",
        &[],
        None,
        Value,
        "no spawning while the workers' total RSS is above this many bytes",
    ),
    opt(
        "cheaper-rss-limit-hard",
        &[],
        None,
        Value,
        "cheap a worker while the workers' total RSS is above this many bytes",
    ),
    opt(
        "cheaper-idle",
        &[],
        None,
        Value,
        "spare2: idle checks before a cheap (default 10)",
    ),
    opt(
        "master-fifo",
        &[],
        None,
        List,
        "a FIFO taking commands: + and - (one worker more or fewer), r or c (graceful reload), q (graceful shutdown)",
    ),
    opt(
        "touch-reload",
        &["touch-chain-reload", "touch-workers-reload"],
        None,
        List,
        "reload gracefully when this file is modified, created or removed (every reload is a chain reload)",
    ),
    opt(
        "fs-reload",
        &[],
        None,
        List,
        "reload gracefully when this file or directory (or an entry in it) changes, seen with inotify",
    ),
    opt(
        "fs-brutal-reload",
        &[],
        None,
        List,
        "as fs-reload (every reload is graceful)",
    ),
    opt(
        "fs-signal",
        &[],
        None,
        List,
        "PATH SIGNAL: raise the uWSGI signal when the path (or an entry in it) changes",
    ),
    opt(
        "touch-gracefully-stop",
        &[],
        None,
        List,
        "stop gracefully when this file is modified, created or removed",
    ),
    opt(
        "touch-exec",
        &[],
        None,
        List,
        "FILE COMMAND: run the command when the file is modified, created or removed",
    ),
    opt(
        "touch-signal",
        &[],
        None,
        List,
        "FILE SIGNAL: raise the uWSGI signal when the file is modified, created or removed",
    ),
    opt(
        "touch-logrotate",
        &[],
        None,
        List,
        "rotate the log file (as log-maxsize does) when this file is modified, created or removed",
    ),
    opt(
        "touch-logreopen",
        &[],
        None,
        List,
        "open the log file again, in every process, when this file is modified, created or removed",
    ),
    opt(
        "daemonize",
        &[],
        Some('d'),
        Value,
        "detach from the terminal and log to this file (unless logto names another); the command returns at once",
    ),
    opt(
        "daemonize2",
        &[],
        None,
        Value,
        "as daemonize, but the command returns once the workers are ready (exit 1 if the daemon stopped first)",
    ),
    opt(
        "threads-stacksize",
        &[
            "thread-stacksize",
            "threads-stack-size",
            "thread-stack-size",
        ],
        None,
        Value,
        "the stack size of the request threads beyond the first, in KiB (the first is the process's)",
    ),
    opt(
        "worker-accept",
        &[],
        None,
        Flag,
        "workers accept connections on the uwsgi sockets themselves, as uWSGI's do: no hop through the master behind nginx (no route rules or static files on those sockets)",
    ),
    opt(
        "exit-on-reload",
        &[],
        None,
        Flag,
        "a reload request stops the instance gracefully instead (its supervisor starts it again)",
    ),
    // The stats server.
    opt(
        "stats",
        &["stats-server"],
        None,
        Value,
        "serve uWSGI's stats JSON on host:port, :port or a unix socket path",
    ),
    opt(
        "stats-http",
        &[],
        None,
        Flag,
        "answer the stats socket in HTTP",
    ),
    opt(
        "stats-minified",
        &["stats-min"],
        None,
        Flag,
        "stats JSON without whitespace",
    ),
    // Logging and config.
    opt(
        "log-format",
        &["logformat"],
        None,
        Value,
        "json or text (the server log style), or a request log template of %(name) tokens",
    ),
    opt(
        "disable-logging",
        &[],
        Some('L'),
        Flag,
        "do not log requests",
    ),
    opt(
        "ini",
        &[],
        None,
        List,
        "load options from the [uwsgi] section of an ini file (file.ini:section for another)",
    ),
    opt(
        "yaml",
        &["yml"],
        Some('y'),
        List,
        "load options from the uwsgi: block of a YAML file (file.yml:section for another)",
    ),
    opt(
        "json",
        &["js"],
        Some('j'),
        List,
        "load options from the \"uwsgi\" object of a JSON file (file.json:section for another)",
    ),
    opt(
        "strict",
        &[],
        None,
        Flag,
        "accepted: rwsgi always rejects unknown options",
    ),
    // Process titles.
    opt(
        "auto-procname",
        &[],
        None,
        Flag,
        "title processes as uWSGI does: uWSGI master, uWSGI worker N, uWSGI mule N, uWSGI spooler",
    ),
    opt(
        "procname",
        &[],
        None,
        Value,
        "the master's title (with auto-procname, every process's)",
    ),
    opt("procname-master", &[], None, Value, "the master's title"),
    opt(
        "procname-prefix",
        &[],
        None,
        Value,
        "put this before every process title",
    ),
    opt(
        "procname-prefix-spaced",
        &[],
        None,
        Value,
        "put this and a space before every process title",
    ),
    opt(
        "procname-append",
        &[],
        None,
        Value,
        "put this after every process title",
    ),
    opt(
        "print",
        &["iprint"],
        None,
        List,
        "print this line on stdout when the configuration is read (placeholders expanded)",
    ),
    opt(
        "set",
        &[],
        Some('S'),
        List,
        "KEY=VALUE: set the option KEY, or the placeholder %(KEY) when KEY is not an option",
    ),
    opt(
        "set-placeholder",
        &["set-ph"],
        None,
        List,
        "KEY=VALUE: set the placeholder %(KEY)",
    ),
    // Files and permissions.
    opt(
        "chown-socket",
        &[],
        None,
        Value,
        "user[:group] to give unix sockets to after binding",
    ),
    opt(
        "umask",
        &[],
        None,
        Value,
        "the process umask (octal), set before anything is created",
    ),
    opt(
        "pidfile",
        &["safe-pidfile"],
        None,
        Value,
        "write the master's pid to this file (before dropping privileges)",
    ),
    opt(
        "pidfile2",
        &[],
        None,
        Value,
        "write the master's pid to this file after dropping privileges",
    ),
    // Requests and responses.
    opt(
        "limit-post",
        &[],
        None,
        Value,
        "largest request body in bytes (by Content-Length); larger ones get 413",
    ),
    opt(
        "add-header",
        &[],
        None,
        List,
        "add this \"Name: value\" header to every response",
    ),
    opt(
        "wsgi-disable-file-wrapper",
        &[],
        None,
        Flag,
        "leave wsgi.file_wrapper out of the environ",
    ),
    opt(
        "py-autoreload",
        &["python-autoreload"],
        None,
        Value,
        "check the app's modules every N seconds and reload gracefully when one changed",
    ),
    // Several apps.
    opt(
        "mount",
        &[],
        None,
        List,
        "/mountpoint=app: load another app (a file, or module[:callable]) for that mountpoint",
    ),
    opt(
        "manage-script-name",
        &[],
        None,
        Flag,
        "pick the app by the longest mountpoint prefix of PATH_INFO, and move it to SCRIPT_NAME",
    ),
    // Static files, served by the master.
    opt(
        "static-map",
        &[],
        None,
        List,
        "/mountpoint=dir: serve files under dir for paths under /mountpoint (GET and HEAD)",
    ),
    opt(
        "static-map2",
        &[],
        None,
        List,
        "as static-map, the file path keeping the mountpoint",
    ),
    opt(
        "check-static",
        &[],
        None,
        List,
        "serve a path from this directory when the file exists there",
    ),
    opt(
        "static-skip-ext",
        &[],
        None,
        List,
        "never serve paths or files ending with this (.py, say) as static files",
    ),
    opt(
        "static-expires-type",
        &[],
        None,
        List,
        "type=seconds: Expires header (now + seconds) for static files of this content type",
    ),
    opt(
        "static-expires-type-mtime",
        &[],
        None,
        List,
        "type=seconds: Expires header (modification time + seconds) by content type",
    ),
    opt(
        "static-expires",
        &[],
        None,
        List,
        "REGEXP seconds: Expires header (now + seconds) for static files whose path matches",
    ),
    opt(
        "static-expires-mtime",
        &[],
        None,
        List,
        "REGEXP seconds: Expires header (modification time + seconds) by file path",
    ),
    opt(
        "static-expires-uri",
        &[],
        None,
        List,
        "REGEXP seconds: Expires header (now + seconds) for static files whose REQUEST_URI matches",
    ),
    opt(
        "static-expires-uri-mtime",
        &[],
        None,
        List,
        "REGEXP seconds: Expires header (modification time + seconds) by REQUEST_URI",
    ),
    opt(
        "static-expires-path-info",
        &[],
        None,
        List,
        "REGEXP seconds: Expires header (now + seconds) for static files whose PATH_INFO matches",
    ),
    opt(
        "static-expires-path-info-mtime",
        &[],
        None,
        List,
        "REGEXP seconds: Expires header (modification time + seconds) by PATH_INFO",
    ),
    opt(
        "attach-daemon",
        &[],
        None,
        List,
        "run this command beside the workers (through /bin/sh -c where there is one) and start it again when it exits",
    ),
    opt(
        "static-gzip-all",
        &[],
        None,
        Flag,
        "send FILE.gz instead of FILE when it exists and the client accepts gzip",
    ),
    opt(
        "static-gzip-dir",
        &["static-gzip-prefix"],
        None,
        List,
        "as static-gzip-all, for files under this directory",
    ),
    opt(
        "static-gzip-ext",
        &["static-gzip-suffix"],
        None,
        List,
        "as static-gzip-all, for files ending with this",
    ),
    opt(
        "static-gzip",
        &[],
        None,
        List,
        "as static-gzip-all, for files whose path matches this regular expression",
    ),
    opt(
        "smart-attach-daemon",
        &[],
        None,
        List,
        "PIDFILE[,FREQ] COMMAND: start a self-daemonizing command and start it again when the pid in PIDFILE is gone",
    ),
    opt(
        "smart-attach-daemon2",
        &[],
        None,
        List,
        "PIDFILE[,FREQ] COMMAND: as smart-attach-daemon, for a command that stays in the foreground (rwsgi writes PIDFILE)",
    ),
    opt(
        "cache2",
        &[],
        None,
        List,
        "name=NAME,items=N[,blocksize=B][,keysize=K][,purge_lru=1][,clear_on_full=1][,ignore_full=1][,store=PATH][,store_sync=S][,store_delete=1]: a cache shared by the workers (uwsgi.cache_*)",
    ),
    opt(
        "cache",
        &[],
        None,
        Value,
        "the legacy cache named default, with this many items",
    ),
    opt(
        "add-cache-item",
        &[],
        None,
        List,
        "[CACHE ]KEY=VALUE: store an item at startup (in every cache without a name)",
    ),
    opt(
        "load-file-in-cache",
        &[],
        None,
        List,
        "[CACHE ]PATH: store a file at startup, its path as the key",
    ),
    opt(
        "sharedarea",
        &[],
        None,
        List,
        "PAGES, or pages=N / size=BYTES: a block of memory the workers share (uwsgi.sharedarea_*)",
    ),
    opt(
        "cache-blocksize",
        &[],
        None,
        Value,
        "largest value of the legacy cache in bytes (default 65536)",
    ),
    opt(
        "cron",
        &[],
        None,
        List,
        "MINUTE HOUR DAY MONTH WEEKDAY COMMAND: run COMMAND on that schedule (-1 any, -N every N)",
    ),
    opt(
        "unique-cron",
        &[],
        None,
        List,
        "as cron, not started again while the previous run goes on",
    ),
    opt(
        "cron2",
        &[],
        None,
        List,
        "[minute=,hour=,day=,month=,week=,unique=1,harakiri=S] COMMAND: a scheduled command by keys",
    ),
    opt(
        "cron-harakiri",
        &[],
        None,
        Value,
        "seconds a cron command may run before it is killed (default 0: no limit)",
    ),
    opt(
        "attach-daemon2",
        &[],
        None,
        List,
        "cmd=COMMAND[,pidfile=,freq=,daemonize=1,stopsignal=,reloadsignal=,chdir=,max_throttle=,touch=F1;F2]: an attached daemon with uWSGI's keys",
    ),
    opt(
        "honour-range",
        &[],
        None,
        Flag,
        "static files answer a Range header with 206 Partial Content (apps always see Range)",
    ),
    opt(
        "static-safe",
        &[],
        None,
        List,
        "a directory static files may resolve into through links (as collectstatic --link makes)",
    ),
    opt(
        "static-index",
        &[],
        None,
        List,
        "file name served for a mapped directory (index.html)",
    ),
    // More logging.
    opt(
        "logto",
        &[],
        None,
        Value,
        "send every process's stdout and stderr to this file (or host:port over UDP)",
    ),
    opt(
        "logto2",
        &[],
        None,
        Value,
        "as logto, opened after dropping privileges",
    ),
    opt("logger", &[], None, List, "file:PATH (as logto) or stdio"),
    opt(
        "req-logger",
        &[],
        None,
        List,
        "file:PATH for the request lines, or stdio",
    ),
    opt(
        "logfile-chmod",
        &[],
        None,
        Value,
        "mode (octal) of the log file",
    ),
    opt(
        "log-reopen",
        &[],
        None,
        Flag,
        "reopen the log file at each graceful reload (after rotation)",
    ),
    opt(
        "log-date",
        &["logdate"],
        None,
        Value,
        "prefix server log lines with the time (UTC): ctime's form, or a strftime format",
    ),
    opt(
        "log-4xx",
        &[],
        None,
        Flag,
        "with disable-logging, still log requests answered 4xx",
    ),
    opt(
        "log-5xx",
        &[],
        None,
        Flag,
        "with disable-logging, still log requests answered 5xx",
    ),
    opt(
        "log-slow",
        &[],
        None,
        Value,
        "with disable-logging, still log requests that took at least N ms",
    ),
    opt(
        "log-zero",
        &[],
        None,
        Flag,
        "with disable-logging, still log responses without a body",
    ),
    opt(
        "log-big",
        &[],
        None,
        Value,
        "with disable-logging, still log responses of at least N body bytes",
    ),
    opt(
        "memory-report",
        &[],
        Some('m'),
        Flag,
        "start each request line with the worker's address space and resident size",
    ),
    opt(
        "log-micros",
        &[],
        None,
        Flag,
        "request log lines give the time in microseconds (\"in N micros\")",
    ),
    opt(
        "log-maxsize",
        &[],
        None,
        Value,
        "rotate the log file when it reaches N bytes (copied to log-backupname or LOGFILE.<time>, then emptied)",
    ),
    opt(
        "log-backupname",
        &[],
        None,
        Value,
        "where log-maxsize copies the full log (each rotation overwrites it)",
    ),
    opt(
        "log-x-forwarded-for",
        &[],
        None,
        Flag,
        "log the X-Forwarded-For header as the client address",
    ),
    opt(
        "show-config",
        &[],
        None,
        Flag,
        "log the configuration as an ini file at startup",
    ),
    opt(
        "hook-asap",
        &[],
        None,
        List,
        "action:args (exec:CMD, mkdir:DIR, write:FILE TEXT, wait_for_socket:ADDR, ...): run right after the configuration is read; a failure stops rwsgi",
    ),
    opt(
        "hook-pre-app",
        &[],
        None,
        List,
        "action:args: run before the app is imported (exec:./manage.py migrate); a failure stops rwsgi",
    ),
    opt(
        "hook-post-app",
        &[],
        None,
        List,
        "action:args: run after the app is imported, before the workers start; a failure stops rwsgi",
    ),
    opt("exec-asap", &[], None, List, "as hook-asap = exec:CMD"),
    opt(
        "hook-as-root",
        &[],
        None,
        List,
        "action:args: run after binding, before dropping privileges; a failure stops rwsgi",
    ),
    opt(
        "exec-as-root",
        &[],
        None,
        List,
        "as hook-as-root = exec:CMD",
    ),
    opt(
        "hook-as-user",
        &[],
        None,
        List,
        "action:args: run after dropping privileges; a failure stops rwsgi",
    ),
    opt(
        "exec-as-user",
        &[],
        None,
        List,
        "as hook-as-user = exec:CMD",
    ),
    opt(
        "hook-accepting",
        &[],
        None,
        List,
        "action:args: run in each worker before its first request; a failure stops rwsgi",
    ),
    opt(
        "hook-accepting1",
        &[],
        None,
        List,
        "action:args: as hook-accepting, in worker 1 only",
    ),
    opt(
        "hook-accepting-once",
        &[],
        None,
        List,
        "action:args: as hook-accepting, not again in a respawned worker",
    ),
    opt(
        "hook-accepting1-once",
        &[],
        None,
        List,
        "action:args: as hook-accepting1, not again in a respawned worker",
    ),
    opt(
        "hook-as-user-atexit",
        &[],
        None,
        List,
        "action:args: run at shutdown (failures are logged)",
    ),
    opt(
        "exec-as-user-atexit",
        &[],
        None,
        List,
        "as hook-as-user-atexit = exec:CMD",
    ),
    opt(
        "exec-post-app",
        &[],
        None,
        List,
        "as hook-post-app = exec:CMD",
    ),
    opt(
        "exec-pre-app",
        &[],
        None,
        List,
        "as hook-pre-app = exec:CMD",
    ),
    opt(
        "hook-master-start",
        &[],
        None,
        List,
        "only `unix_signal:15 gracefully_kill_them_all` (rwsgi's behaviour already) is accepted",
    ),
    // Configuration logic blocks (config/logic.rs).
    opt(
        "if-env",
        &[],
        None,
        List,
        "VAR or VAR=value: the options up to endif apply when the variable is set (to that value); %(_) is its value",
    ),
    opt(
        "if-not-env",
        &[],
        None,
        List,
        "the options up to endif apply when the variable is not set (to that value)",
    ),
    opt(
        "if-exists",
        &[],
        None,
        List,
        "the options up to endif apply when this path exists; %(_) is the path",
    ),
    opt(
        "if-not-exists",
        &[],
        None,
        List,
        "the options up to endif apply when this path does not exist",
    ),
    opt(
        "if-file",
        &[],
        None,
        List,
        "the options up to endif apply when this is a regular file",
    ),
    opt(
        "if-not-file",
        &[],
        None,
        List,
        "the options up to endif apply when this is not a regular file",
    ),
    opt(
        "if-dir",
        &[],
        None,
        List,
        "the options up to endif apply when this is a directory",
    ),
    opt(
        "if-not-dir",
        &[],
        None,
        List,
        "the options up to endif apply when this is not a directory",
    ),
    opt(
        "if-opt",
        &[],
        None,
        List,
        "NAME or NAME=value: the options up to endif apply when an earlier option is set (to that value)",
    ),
    opt(
        "if-not-opt",
        &[],
        None,
        List,
        "the options up to endif apply when an earlier option is not set (to that value)",
    ),
    opt(
        "for",
        &[],
        None,
        List,
        "a b c: the options up to endfor are repeated for each item, as %(_)",
    ),
    opt("endif", &[], None, Flag, "ends an if-* block"),
    opt("endfor", &[], None, Flag, "ends a for block"),
    // Accepted and ignored.
    ignored(
        "plugins",
        List,
        "rwsgi has Python built in; no plugins are loaded",
    ),
    ignored(
        "plugin",
        List,
        "rwsgi has Python built in; no plugins are loaded",
    ),
    ignored(
        "single-interpreter",
        Flag,
        "rwsgi always uses one interpreter",
    ),
    ignored(
        "thunder-lock",
        Flag,
        "the master accepts every connection, and with worker-accept each connection wakes one idle worker (EPOLLEXCLUSIVE) without a lock",
    ),
    ignored(
        "py-call-osafterfork",
        Flag,
        "rwsgi always calls the CPython fork hooks",
    ),
    ignored(
        "tcp-nodelay",
        Flag,
        "rwsgi sets TCP_NODELAY on every TCP connection",
    ),
    ignored("reaper", Flag, "the master reaps every child it starts"),
    ignored(
        "py-call-uwsgi-fork-hooks",
        Flag,
        "rwsgi always calls the CPython fork hooks",
    ),
    ignored(
        "no-orphans",
        Flag,
        "workers always exit when the master goes away",
    ),
    ignored(
        "post-buffering",
        Value,
        "rwsgi streams bodies with backpressure from the master",
    ),
    ignored(
        "offload-threads",
        Value,
        "the master streams every response; the worker is free when the app returns",
    ),
    ignored(
        "http-timeout",
        Value,
        "the HTTP router's timeout; rwsgi's listeners use socket-timeout",
    ),
    ignored(
        "ignore-sigpipe",
        Flag,
        "workers never write to clients, so they never get SIGPIPE",
    ),
    ignored(
        "ignore-write-errors",
        Flag,
        "a client that went away is logged once, at info level",
    ),
    ignored(
        "disable-write-exception",
        Flag,
        "a client that went away never raises in the app",
    ),
    ignored(
        "log-master",
        Flag,
        "every process writes whole lines to the same log",
    ),
    ignored("no-defer-accept", Flag, "rwsgi never defers accept()"),
    ignored(
        "http-keepalive",
        Value,
        "HTTP/1.1 keep-alive is always on (idle connections close after socket-timeout)",
    ),
    ignored(
        "http-auto-chunked",
        Flag,
        "an HTTP/1.1 response without Content-Length is always sent chunked",
    ),
    ignored(
        "close-on-exec",
        Flag,
        "every socket rwsgi opens is already close-on-exec",
    ),
    ignored(
        "close-on-exec2",
        Flag,
        "every socket rwsgi opens is already close-on-exec",
    ),
    ignored("disable-sendfile", Flag, "rwsgi never uses sendfile()"),
    ignored(
        "log-sendfile",
        Flag,
        "rwsgi never uses sendfile(), so no request is served through it",
    ),
    ignored(
        "log-ioerror",
        Flag,
        "a failed read or write is logged as its own line at info level",
    ),
    ignored(
        "pcre-jit",
        Flag,
        "static-expires patterns use rwsgi's own regular expressions",
    ),
    ignored(
        "static-cache-paths",
        Value,
        "static lookups are not cached; the kernel's caches serve them",
    ),
    ignored("cpu-affinity", Value, "the kernel places the processes"),
    ignored(
        "threaded-logger",
        Flag,
        "every process writes whole lines to the log itself",
    ),
    ignored(
        "log-master-bufsize",
        Value,
        "every process writes whole lines to the log itself",
    ),
    ignored(
        "enable-metrics",
        Flag,
        "there is no metrics subsystem; the stats server has the counters",
    ),
    ignored(
        "py-tracebacker",
        Value,
        "there is no tracebacker socket; a stuck worker is named by harakiri's log lines",
    ),
    ignored(
        "mimefile",
        Value,
        "content types come from rwsgi's built-in table of web types",
    ),
    ignored(
        "mime-file",
        Value,
        "content types come from rwsgi's built-in table of web types",
    ),
    ignored(
        "log-prefix",
        Value,
        "log lines are not prefixed; log-format and log-date shape them",
    ),
    ignored("wsgi-strict", Flag, "rwsgi's WSGI is PEP 3333 as it is"),
    ignored(
        "wsgi-accept-payload",
        Flag,
        "request bodies are always passed to the app",
    ),
    ignored(
        "wsgi-env-behaviour",
        Value,
        "each request gets a fresh environ",
    ),
    ignored(
        "catch-exceptions",
        Flag,
        "tracebacks go to the log; the client gets a 500",
    ),
    ignored("honour-stdin", Flag, "workers read nothing from stdin"),
    ignored(
        "logfile-chown",
        Flag,
        "the log is opened before privileges are dropped and inherited by every process",
    ),
    // Known but not supported yet: refused, so nobody runs without what they asked for.
    unsupported(
        "https-socket",
        Value,
        "terminate TLS in nginx or the ingress in front of rwsgi",
    ),
    unsupported(
        "emperor",
        Value,
        "the emperor is not supported; use one container per app",
    ),
    unsupported(
        "response-route",
        List,
        "this part of internal routing is not supported (rwsgi runs route, route-if, route-run, route-label and the other route-SUBJECT rules); do it in nginx or in the app",
    ),
    unsupported(
        "final-route",
        List,
        "this part of internal routing is not supported (rwsgi runs route, route-if, route-run, route-label and the other route-SUBJECT rules); do it in nginx or in the app",
    ),
    unsupported(
        "error-route",
        List,
        "this part of internal routing is not supported (rwsgi runs route, route-if, route-run, route-label and the other route-SUBJECT rules); do it in nginx or in the app",
    ),
    unsupported(
        "collect-header",
        List,
        "this part of internal routing is not supported (rwsgi runs route, route-if, route-run, route-label and the other route-SUBJECT rules); do it in nginx or in the app",
    ),
    unsupported(
        "pull-header",
        List,
        "this part of internal routing is not supported (rwsgi runs route, route-if, route-run, route-label and the other route-SUBJECT rules); do it in nginx or in the app",
    ),
    unsupported(
        "attach-control-daemon",
        List,
        "a control daemon (whose death stops the instance) is not supported; use attach-daemon2",
    ),
    unsupported(
        "gevent",
        Value,
        "workers run requests in threads (threads = N), not in a gevent loop",
    ),
    unsupported(
        "async",
        Value,
        "workers run requests in threads (threads = N), not in async cores",
    ),
    unsupported(
        "ugreen",
        Flag,
        "workers run requests in threads (threads = N), not in green threads",
    ),
    unsupported(
        "http-websockets",
        Flag,
        "WebSockets are not supported; serve them from an ASGI server beside rwsgi",
    ),
    unsupported(
        "xml",
        Value,
        "configuration is read from ini, YAML and JSON files, the command line and UWSGI_* variables",
    ),
    unsupported(
        "vhost",
        Value,
        "virtual hosting mode is not supported; use mount or one instance per app",
    ),
    unsupported(
        "upload-progress",
        Value,
        "upload progress reports are not supported",
    ),
    unsupported(
        "idle",
        Value,
        "idle mode is not supported; cheaper scales workers down",
    ),
    unsupported(
        "die-on-idle",
        Value,
        "idle mode is not supported; cheaper scales workers down",
    ),
    unsupported(
        "master-as-root",
        Value,
        "the master always drops privileges after binding",
    ),
    unsupported(
        "hook-pre-jail",
        List,
        "rwsgi has no jails or post-fork hook phase; use hook-as-root, hook-as-user, hook-pre-app or hook-accepting",
    ),
    unsupported(
        "hook-post-jail",
        List,
        "rwsgi has no jails or post-fork hook phase; use hook-as-root, hook-as-user, hook-pre-app or hook-accepting",
    ),
    unsupported(
        "hook-in-jail",
        List,
        "rwsgi has no jails or post-fork hook phase; use hook-as-root, hook-as-user, hook-pre-app or hook-accepting",
    ),
    unsupported(
        "hook-post-fork",
        List,
        "rwsgi has no jails or post-fork hook phase; use hook-as-root, hook-as-user, hook-pre-app or hook-accepting",
    ),
    unsupported(
        "exec-pre-jail",
        List,
        "rwsgi has no jails or post-fork hook phase; use hook-as-root, hook-as-user, hook-pre-app or hook-accepting",
    ),
    unsupported(
        "exec-post-jail",
        List,
        "rwsgi has no jails or post-fork hook phase; use hook-as-root, hook-as-user, hook-pre-app or hook-accepting",
    ),
    unsupported(
        "shared-socket",
        List,
        "sockets are bound by the master; use socket or http-socket",
    ),
    unsupported("vassal-sos", Value, "the emperor is not supported"),
    unsupported(
        "py-programname",
        Value,
        "sys.executable is the virtualenv's python",
    ),
    unsupported("python-worker-override", Value, "workers run the WSGI app"),
    unsupported(
        "carbon",
        List,
        "send metrics from the stats server through an exporter",
    ),
];

/// Finds an option by long name or alias.
pub fn lookup(name: &str) -> Option<&'static Spec> {
    OPTIONS
        .iter()
        .find(|s| s.name == name || s.aliases.contains(&name))
}

/// Finds an option by its one-letter form.
pub fn lookup_short(c: char) -> Option<&'static Spec> {
    OPTIONS.iter().find(|s| s.short == Some(c))
}

/// The known name closest to `name`, when one is close enough to be a typo.
pub fn suggest(name: &str) -> Option<&'static str> {
    OPTIONS
        .iter()
        .flat_map(|s| std::iter::once(&s.name).chain(s.aliases))
        .map(|candidate| (edit_distance(name, candidate), *candidate))
        .filter(|(d, c)| *d <= 2.max(c.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Levenshtein distance, for suggestions.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The `--help` text, generated from the table.
pub fn help() -> String {
    let mut out = String::from(
        "rwsgi: an application server for Python WSGI apps, compatible with uWSGI\n\n\
         usage: rwsgi [OPTIONS] [config.ini]\n\n\
         Options take uWSGI's names; each may also come from an ini file (--ini)\n\
         or a UWSGI_<NAME> environment variable.\n\n",
    );
    for spec in OPTIONS {
        let mut names = format!("--{}", spec.name);
        for a in spec.aliases {
            names.push_str(", --");
            names.push_str(a);
        }
        if let Some(c) = spec.short {
            names.push_str(&format!(", -{c}"));
        }
        let arg = match spec.kind {
            Kind::Flag => "",
            Kind::Value | Kind::List => " VALUE",
        };
        let note = match spec.support {
            Support::Yes => "",
            Support::Ignored(_) => " [accepted, ignored]",
            Support::Unsupported(_) => " [not supported]",
        };
        out.push_str(&format!("  {names}{arg}\n      {}{note}\n", spec.help));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique() {
        let mut all: Vec<&str> = OPTIONS
            .iter()
            .flat_map(|s| std::iter::once(s.name).chain(s.aliases.iter().copied()))
            .collect();
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n);
        let mut shorts: Vec<char> = OPTIONS.iter().filter_map(|s| s.short).collect();
        let n = shorts.len();
        shorts.sort_unstable();
        shorts.dedup();
        assert_eq!(shorts.len(), n);
    }

    #[test]
    fn aliases_and_shorts() {
        assert_eq!(lookup("workers").unwrap().name, "processes");
        assert_eq!(lookup("virtualenv").unwrap().name, "home");
        assert_eq!(lookup_short('w').unwrap().name, "module");
        assert_eq!(lookup_short('s').unwrap().name, "socket");
    }

    #[test]
    fn typos_get_a_suggestion() {
        assert_eq!(suggest("proceses"), Some("processes"));
        assert_eq!(suggest("harakri"), Some("harakiri"));
        assert_eq!(suggest("http-sokcet"), Some("http-socket"));
        assert_eq!(suggest("zzzzzzzzzzzz"), None);
    }

    #[test]
    fn the_table_decides_unsupported_options() {
        assert!(matches!(
            lookup("emperor").unwrap().support,
            Support::Unsupported(_)
        ));
        assert!(matches!(
            lookup("thunder-lock").unwrap().support,
            Support::Ignored(_)
        ));
        assert_eq!(lookup("socket").unwrap().support, Support::Yes);
    }
}
