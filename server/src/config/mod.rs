//! The validated, typed configuration and how it is built from the raw
//! options ([`sources`]) through the option table ([`options`]).
//!
//! Two levels, as in ripgrep: [`sources::RawOption`] records what the user
//! said and where; [`Config`] is typed. Later scalar occurrences override
//! earlier ones and list options accumulate, as in uWSGI.

pub mod cache;
pub mod cheaper;
pub mod cron;
pub mod daemon;
pub mod expand;
pub mod formats;
pub mod logic;
pub mod mules;
pub mod options;
pub mod sources;
pub mod spooler;
pub mod touch;
pub mod value;

use std::path::PathBuf;
use std::time::Duration;

pub use cache::{CacheSpec, Preload};
pub use cron::CronSpec;
pub use daemon::DaemonSpec;
use options::{Kind, Support};
use sources::{Origin, RawOption};
pub use value::{Address, AppSource, AppSpec, Protocol, SocketSpec};

use crate::error::ConfigError;

/// The most user locks `locks` may ask for (each is a mutex in memory all
/// workers share).
pub const MAX_LOCKS: u64 = 1024;

/// The server log style.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStyle {
    /// Human-readable lines, uWSGI's messages verbatim.
    Text,
    /// One JSON object per line (for tests and log pipelines).
    Json,
}

/// When a worker recycles itself after a request (uWSGI's
/// `uwsgi_close_request` checks, reference §5.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recycle {
    /// Requests after which a worker exits (0 = never).
    pub max_requests: u64,
    /// Added per worker id above 1, so workers do not all recycle at once.
    pub max_requests_delta: u64,
    /// RSS in bytes at which a worker exits after a request (0 = never).
    pub reload_on_rss: u64,
    /// Address space (VSZ) in bytes at which a worker exits after a
    /// request (0 = never).
    pub reload_on_as: u64,
    /// Neither limit applies before a worker is this old.
    pub min_lifetime: Duration,
}

/// `daemonize`/`daemonize2`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Daemonize {
    /// Where the daemon logs (`logto` wins when both are given).
    pub log: String,
    /// `daemonize2`: the command returns once the workers are ready.
    pub wait_ready: bool,
}

/// Where the logs go and which request lines are written (`logfile.rs`,
/// `telemetry.rs`, `reqlog`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogOptions {
    /// `logto`/`logto2`/`logger = file:`: a file path, or `host:port` (UDP).
    pub logto: Option<String>,
    /// Open `logto` only after dropping privileges (`logto2`).
    pub logto_after_drop: bool,
    /// `logfile-chmod`.
    pub chmod: Option<u32>,
    /// `log-reopen`: reopen the file at each graceful reload.
    pub reopen: bool,
    /// `log-date`: `Some("")` for ctime's form, else a strftime format.
    pub date: Option<String>,
    /// Which requests get a line and how it reads: `disable-logging`,
    /// `log-4xx`, `log-5xx`, `log-slow`, `log-zero`, `log-big`,
    /// `log-micros`, `log-x-forwarded-for`.
    pub rules: crate::reqlog::Rules,
    /// `log-maxsize`: rotate the log file past this many bytes (0 = off).
    pub maxsize: u64,
    /// `log-backupname`.
    pub backupname: Option<PathBuf>,
    /// `req-logger = file:PATH`: request lines go there.
    pub req_file: Option<PathBuf>,
}

/// The CPU scheduling policy of rwsgi's processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchedPolicy {
    /// `SCHED_BATCH`: no wake-up preemption (the default).
    Batch,
    /// `SCHED_OTHER`, Linux's default.
    Other,
}

/// The typed configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listeners, in the order given.
    pub sockets: Vec<SocketSpec>,
    /// The app, if one was named.
    pub app: Option<AppSpec>,
    /// Directory to change to before loading the app.
    pub chdir: Option<PathBuf>,
    /// `chdir2`: directory to change to after loading the app.
    pub chdir2: Option<PathBuf>,
    /// `enable-proxy-protocol`: read PROXY v1 headers on HTTP sockets.
    pub proxy_protocol: bool,
    /// Directories prepended to `sys.path`.
    pub pythonpath: Vec<PathBuf>,
    /// The virtualenv.
    pub home: Option<PathBuf>,
    /// `KEY=VALUE` pairs set in the environment before anything starts.
    pub env: Vec<(String, String)>,
    /// Load the app in each worker after fork.
    pub lazy_apps: bool,
    /// Exit when the app cannot be loaded.
    pub need_app: bool,
    /// Run `gc.freeze()` before forking.
    pub gc_freeze: bool,
    /// Queue a request on a busy worker when all are busy (`dispatch`).
    pub worker_pipeline: bool,
    /// Seconds a request may run before its worker is killed (0 = off).
    pub harakiri: u64,
    /// `harakiri-graceful-timeout` (seconds, 0 = SIGKILL at once) and
    /// `harakiri-graceful-signal` (a signal number).
    pub harakiri_graceful: (u64, i32),
    /// Seconds after which a worker is recycled between requests (0 =
    /// off), plus `delta` per worker id above 1.
    pub max_worker_lifetime: (u64, u64),
    /// When a worker recycles itself (`worker/recycle.rs`).
    pub recycle: Recycle,
    /// `evil-reload-on-rss` and `evil-reload-on-as`: the master kills a
    /// worker past these sizes in bytes (0 = off).
    pub evil_reload: (u64, u64),
    /// CPU scheduling policy of every process (`master/sched.rs`).
    pub sched_policy: SchedPolicy,
    /// Paths (with an optional query) the prototype calls the app with
    /// before forking, so that what the first requests initialise lazily is
    /// built once and shared (`prototype/warmup.rs`).
    pub warmup_urls: Vec<String>,
    /// How many times each warm-up path is called.
    pub warmup_requests: u32,
    /// Number of worker processes.
    pub processes: usize,
    /// Python threads per worker.
    pub threads: usize,
    /// Listen backlog, and the bound of the master's request queue.
    pub listen: u32,
    /// Largest uwsgi vars block / HTTP header block.
    pub buffer_size: u16,
    /// Largest number of uwsgi vars.
    pub max_vars: u16,
    /// Mode for unix sockets.
    pub chmod_socket: Option<u32>,
    /// Remove unix sockets at exit.
    pub vacuum: bool,
    /// How long a peer may stall.
    pub socket_timeout: Duration,
    /// User to switch to after binding.
    pub uid: Option<String>,
    /// Group to switch to after binding.
    pub gid: Option<String>,
    /// How long in-flight requests get at shutdown.
    pub reload_mercy: Duration,
    /// Server log style.
    pub log_style: LogStyle,
    /// uWSGI's `log-format` request-log template, when given.
    pub log_format: Option<String>,
    /// Worker autoscaling, when `cheaper` is set.
    pub cheaper: Option<cheaper::CheaperConfig>,
    /// How often the master checks the pool.
    pub check_interval: Duration,
    /// Master FIFOs.
    pub master_fifo: Vec<PathBuf>,
    /// Files whose modification makes the master act (`touch-*`).
    pub touches: Vec<touch::Touch>,
    /// Paths inotify watches for the master (`fs-*`).
    pub fs_watches: Vec<touch::Touch>,
    /// `exit-on-reload`: a reload request stops the instance instead.
    pub exit_on_reload: bool,
    /// `worker-accept`: workers accept on the uwsgi sockets themselves
    /// (`worker/direct.rs`).
    pub worker_accept: bool,
    /// `print`/`iprint` lines, for stdout at startup.
    pub prints: Vec<String>,
    /// `threads-stacksize`, in KiB.
    pub threads_stacksize: Option<usize>,
    /// `daemonize`/`daemonize2`: detach, and whether the command waits
    /// for the workers (`daemonize.rs`).
    pub daemonize: Option<Daemonize>,
    /// Where the stats server listens.
    pub stats: Option<Address>,
    /// The stats server speaks HTTP.
    pub stats_http: bool,
    /// Stats JSON without whitespace.
    pub stats_minified: bool,
    /// Logging destinations and request-line rules.
    pub logging: LogOptions,
    /// Process titles (`auto-procname`, `procname*`).
    pub procnames: crate::proctitle::Names,
    /// `chown-socket`: owner (and group) of unix sockets.
    pub chown_socket: Option<String>,
    /// `umask`.
    pub umask: Option<u32>,
    /// `pidfile` (before dropping privileges) and `pidfile2` (after).
    pub pidfiles: (Option<PathBuf>, Option<PathBuf>),
    /// `limit-post`: largest declared request body (0 = no limit).
    pub limit_post: u64,
    /// `add-header`: added to every response.
    pub add_headers: Vec<(String, String)>,
    /// Put `wsgi.file_wrapper` in the environ.
    pub file_wrapper: bool,
    /// `py-autoreload`: seconds between checks of the app's modules (0 = off).
    pub py_autoreload: u64,
    /// `show-config`: the configuration as an ini file, to log at startup.
    pub show_config: Option<String>,
    /// `mount`: (mountpoint, app) pairs, in order.
    pub mounts: Vec<(String, AppSpec)>,
    /// `manage-script-name`: pick the app by `PATH_INFO` prefix and move
    /// the mountpoint to `SCRIPT_NAME`.
    pub manage_script_name: bool,
    /// `static-map`, then `static-map2`, then `check-static` mappings
    /// (`staticfiles.rs`), directories absolute.
    pub static_maps: Vec<StaticMap>,
    /// `static-index` names.
    pub static_index: Vec<String>,
    /// `static-safe`: directories a mapped file may resolve into through
    /// links (relative ones under `chdir`).
    pub static_safe: Vec<PathBuf>,
    /// `static-skip-ext` suffixes.
    pub static_skip_ext: Vec<String>,
    /// `static-expires*` rules, in the order uWSGI tries them.
    pub static_expires: Vec<ExpiresRule>,
    /// `max-fd`: the open-file limit to set.
    pub max_fd: Option<u64>,
    /// `limit-as`: the address-space limit, in MiB.
    pub limit_as: Option<u64>,
    /// `so-keepalive` on TCP sockets.
    pub so_keepalive: bool,
    /// `reuse-port` on TCP sockets.
    pub reuse_port: bool,
    /// `honour-range`: static files answer `Range` with `206`.
    pub honour_range: bool,
    /// `attach-daemon`, `attach-daemon2`, `smart-attach-daemon` and
    /// `smart-attach-daemon2`, in order.
    pub daemons: Vec<DaemonSpec>,
    /// `cron`, `unique-cron`, `cron2`.
    pub crons: Vec<CronSpec>,
    /// `cache2` (and the legacy `cache`), in order.
    pub caches: Vec<CacheSpec>,
    /// `sharedarea`: the areas' sizes in bytes, in order (their ids).
    pub sharedareas: Vec<usize>,
    /// `add-cache-item` and `load-file-in-cache`, in order.
    pub cache_preload: Vec<Preload>,
    /// `cron-harakiri`: seconds a cron command may run (0: no limit).
    pub cron_harakiri: u64,
    /// `spooler` and its options.
    pub spooling: spooler::Spooling,
    /// `mule`, `mules`, `farm`, `mule-msg-size`.
    pub mules: mules::Mules,
    /// `route*` rules, `(option, value)` in the order given
    /// (`routing.rs`).
    pub routes: Vec<(String, String)>,
    /// `static-gzip*`.
    pub static_gzip: GzipConfig,
    /// `hook-asap`, `hook-pre-app`, `exec-asap`, `exec-pre-app`.
    pub hooks: Vec<crate::hooks::Hook>,
    /// The options as given (after logic blocks and placeholders), for the
    /// `uwsgi` Python module's `opt`: the name as written and the value, or
    /// `None` for a flag given without one.
    pub exported: Vec<(String, Option<String>)>,
    /// `locks`: user locks besides lock 0, for `uwsgi.lock(n)`.
    pub locks: u32,
    /// `skip-atexit`: workers exit without running Python's atexit
    /// handlers.
    pub skip_atexit: bool,
    /// `worker-reload-mercy`: how long a stopping worker's exit functions
    /// may run before it is ended.
    pub worker_reload_mercy: Duration,
    /// `import`: modules (or `.py` files) imported where the app is loaded,
    /// before it.
    pub imports: Vec<String>,
    /// `shared-import`: modules (or `.py` files) imported in the prototype
    /// before the app, also with `lazy-apps`.
    pub shared_imports: Vec<String>,
    /// `optimize`: Python's optimization level (0, 1 or 2).
    pub optimize: u8,
}

/// `static-gzip*`: which static files may be sent as their `.gz` twin.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GzipConfig {
    /// `static-gzip-all`.
    pub all: bool,
    /// `static-gzip-dir`: directories (relative ones under `chdir`).
    pub dirs: Vec<PathBuf>,
    /// `static-gzip-ext`: endings.
    pub exts: Vec<String>,
    /// `static-gzip`: regular expressions (checked when read).
    pub patterns: Vec<String>,
}

/// What a `static-expires*` rule looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ExpiresOn {
    /// The file's real path (`static-expires`).
    File,
    /// `PATH_INFO` (`static-expires-path-info`).
    PathInfo,
    /// `REQUEST_URI` (`static-expires-uri`).
    Uri,
    /// The content type, compared whole (`static-expires-type`).
    Type,
}

/// One `static-expires*` rule: a matching file gets `Expires:` at now (or
/// its modification time, for the `-mtime` forms) plus `seconds`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiresRule {
    /// What is matched.
    pub on: ExpiresOn,
    /// A regular expression (searched, as PCRE does), or a content type.
    pub pattern: String,
    /// Seconds to add.
    pub seconds: u64,
    /// Counted from the file's modification time rather than now.
    pub from_mtime: bool,
}

/// One static-file mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticMap {
    /// URL prefix without a trailing `/` (empty for `check-static`).
    pub mount: String,
    /// The directory.
    pub dir: PathBuf,
    /// The file path keeps the mountpoint (`static-map2`, `check-static`).
    pub keep_mount: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            sockets: Vec::new(),
            app: None,
            chdir: None,
            chdir2: None,
            proxy_protocol: false,
            pythonpath: Vec::new(),
            home: None,
            env: Vec::new(),
            lazy_apps: false,
            need_app: false,
            gc_freeze: true,
            worker_pipeline: true,
            sched_policy: SchedPolicy::Batch,
            harakiri: 0,
            harakiri_graceful: (0, libc::SIGTERM),
            max_worker_lifetime: (0, 0),
            evil_reload: (0, 0),
            recycle: Recycle {
                max_requests: 0,
                max_requests_delta: 0,
                reload_on_rss: 0,
                reload_on_as: 0,
                min_lifetime: Duration::from_secs(10),
            },
            warmup_urls: Vec::new(),
            warmup_requests: 16,
            processes: 1,
            threads: 1,
            listen: 100,
            buffer_size: u16::MAX,
            max_vars: rwsgi_proto::Limits::DEFAULT.max_vars,
            chmod_socket: None,
            vacuum: false,
            socket_timeout: Duration::from_secs(4),
            uid: None,
            gid: None,
            reload_mercy: Duration::from_secs(30),
            log_style: LogStyle::Text,
            log_format: None,
            cheaper: None,
            check_interval: Duration::from_secs(1),
            master_fifo: Vec::new(),
            touches: Vec::new(),
            fs_watches: Vec::new(),
            exit_on_reload: false,
            worker_accept: false,
            threads_stacksize: None,
            prints: Vec::new(),
            daemonize: None,
            stats: None,
            stats_http: false,
            stats_minified: false,
            logging: LogOptions {
                rules: crate::reqlog::Rules {
                    all: true,
                    ..Default::default()
                },
                ..Default::default()
            },
            procnames: Default::default(),
            chown_socket: None,
            umask: None,
            pidfiles: (None, None),
            limit_post: 0,
            add_headers: Vec::new(),
            file_wrapper: true,
            py_autoreload: 0,
            show_config: None,
            mounts: Vec::new(),
            manage_script_name: false,
            static_maps: Vec::new(),
            static_index: Vec::new(),
            static_safe: Vec::new(),
            static_skip_ext: Vec::new(),
            static_expires: Vec::new(),
            max_fd: None,
            limit_as: None,
            so_keepalive: false,
            reuse_port: false,
            honour_range: false,
            daemons: Vec::new(),
            crons: Vec::new(),
            caches: Vec::new(),
            cache_preload: Vec::new(),
            sharedareas: Vec::new(),
            cron_harakiri: 0,
            spooling: spooler::Spooling::default(),
            mules: mules::Mules::default(),
            routes: Vec::new(),
            static_gzip: GzipConfig::default(),
            hooks: Vec::new(),
            exported: Vec::new(),
            locks: 0,
            skip_atexit: false,
            worker_reload_mercy: Duration::from_secs(60),
            imports: Vec::new(),
            shared_imports: Vec::new(),
            optimize: 0,
        }
    }
}

/// What the command line asked for.
#[derive(Debug)]
pub enum Command {
    /// Serve with this configuration; the warnings are logged once logging
    /// is set up.
    Serve(Box<Config>, Vec<String>),
    /// Print help.
    Help,
    /// Print the version.
    Version,
}

impl Config {
    /// Builds the configuration from the command line (without the program
    /// name) and the environment.
    pub fn load(
        args: &[String],
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Command, ConfigError> {
        let collected = sources::collect(args, env)?;
        if collected.help {
            return Ok(Command::Help);
        }
        if collected.version {
            return Ok(Command::Version);
        }
        let (config, warnings) = Config::from_raw(collected.options)?;
        Ok(Command::Serve(Box::new(config), warnings))
    }

    /// Applies raw options in order. Returns the config and warnings.
    pub fn from_raw(mut raw: Vec<RawOption>) -> Result<(Config, Vec<String>), ConfigError> {
        expand::setters(&mut raw)?;
        let mut raw = logic::apply(raw)?;
        let used = expand::placeholders(&mut raw);
        let mut warnings = Vec::new();
        let mut c = Config::default();
        let mut module: Option<(String, Origin)> = None;
        let mut file: Option<PathBuf> = None;
        let mut paste: Option<String> = None;
        // The legacy `cache` (items) and `cache-blocksize`.
        let mut legacy_cache: (Option<u64>, u64) = (None, 65536);
        let mut paste_logger = false;
        let mut callable = String::from("application");
        let mut ch = cheaper::Raw::default();
        let mut show_config = false;
        // `protocol` applies to every `socket`, wherever it is given.
        let mut default_sockets = Vec::new();
        let mut default_protocol = Protocol::Uwsgi;
        let mut mounts: Vec<(String, String, Origin)> = Vec::new();
        // static-map, static-map2, check-static: looked up in that order.
        let mut statics: [Vec<StaticMap>; 3] = Default::default();
        for (i, o) in raw.iter().enumerate() {
            let Some(spec) = o.spec else {
                if used.contains(&i) {
                    continue;
                }
                return Err(ConfigError::Unknown {
                    name: o.name.clone(),
                    suggestion: options::suggest(&o.name),
                    origin: o.origin.clone(),
                });
            };
            match spec.support {
                Support::Yes => {}
                Support::Ignored(why) => {
                    warnings.push(format!(
                        "{}: option \"{}\" ignored: {why}",
                        o.origin, o.name
                    ));
                    continue;
                }
                Support::Unsupported(why) => {
                    return Err(ConfigError::Unsupported {
                        name: o.name.clone(),
                        reason: why,
                        origin: o.origin.clone(),
                    });
                }
            }
            let invalid = |reason: String| ConfigError::Invalid {
                name: o.name.clone(),
                value: o.value.clone(),
                reason,
                origin: o.origin.clone(),
            };
            let v = o.value.as_str();
            let flag = spec.kind == Kind::Flag && value::parse_bool(v);
            let number = || value::parse_number(v).map_err(invalid);
            // `hook-PHASE` and `exec-PHASE` (hooks.rs knows the phases).
            if let Some(phase) = crate::hooks::Phase::from_option(spec.name) {
                let hook = crate::hooks::Hook::parse(phase, v, spec.name.starts_with("exec-"));
                c.hooks.push(hook.map_err(invalid)?);
                continue;
            }
            match spec.name {
                "socket" => {
                    default_sockets.push(c.sockets.len());
                    c.sockets.push(socket(v, Protocol::Uwsgi).map_err(invalid)?)
                }
                "protocol" => {
                    default_protocol = match v.trim() {
                        "uwsgi" => Protocol::Uwsgi,
                        "http" | "http11" => Protocol::Http,
                        _ => return Err(invalid(
                            "rwsgi speaks uwsgi and http (fastcgi, scgi and the others are not supported)".into(),
                        )),
                    }
                }
                "http-socket" | "http" => {
                    c.sockets.push(socket(v, Protocol::Http).map_err(invalid)?)
                }
                "listen" => c.listen = bounded(number()?, 1, 65535).map_err(invalid)? as u32,
                "buffer-size" => c.buffer_size = number()?.clamp(1024, 65535) as u16,
                "max-vars" => c.max_vars = bounded(number()?, 1, 65535).map_err(invalid)? as u16,
                "chmod-socket" => c.chmod_socket = Some(value::parse_mode(v).map_err(invalid)?),
                "vacuum" => c.vacuum = flag,
                "socket-timeout" => {
                    c.socket_timeout =
                        Duration::from_secs(bounded(number()?, 1, 86400).map_err(invalid)?)
                }
                "module" => module = Some((v.to_owned(), o.origin.clone())),
                "wsgi-file" => file = Some(PathBuf::from(v)),
                "paste" => paste = Some(v.to_owned()),
                "paste-logger" => paste_logger = flag,
                "import" => c.imports.push(v.to_owned()),
                "shared-import" => c.shared_imports.push(v.to_owned()),
                "optimize" => c.optimize = bounded(number()?, 0, 2).map_err(invalid)? as u8,
                "callable" => callable = v.to_owned(),
                "chdir" => c.chdir = Some(PathBuf::from(v)),
                "chdir2" => c.chdir2 = Some(PathBuf::from(v)),
                "enable-proxy-protocol" => c.proxy_protocol = flag,
                "pythonpath" => c.pythonpath.push(PathBuf::from(v)),
                "home" => c.home = Some(PathBuf::from(v)),
                "env" => {
                    let (k, val) = v
                        .split_once('=')
                        .ok_or_else(|| invalid("expected KEY=VALUE".into()))?;
                    c.env.push((k.to_owned(), val.to_owned()));
                }
                "lazy-apps" => c.lazy_apps = flag,
                "need-app" => c.need_app = flag,
                "gc-freeze" => c.gc_freeze = value::parse_bool(v),
                "worker-pipeline" => c.worker_pipeline = value::parse_bool(v),
                "harakiri" => c.harakiri = bounded(number()?, 0, 86400 * 365).map_err(invalid)?,
                "harakiri-graceful-timeout" => {
                    c.harakiri_graceful.0 = bounded(number()?, 0, 86400).map_err(invalid)?
                }
                "harakiri-graceful-signal" => {
                    c.harakiri_graceful.1 = value::parse_signal(v).map_err(invalid)?
                }
                "max-requests" => c.recycle.max_requests = number()?,
                "max-worker-lifetime" => c.max_worker_lifetime.0 = number()?,
                "max-worker-lifetime-delta" => c.max_worker_lifetime.1 = number()?,
                "max-requests-delta" => c.recycle.max_requests_delta = number()?,
                "reload-on-rss" => c.recycle.reload_on_rss = number()?.saturating_mul(1024 * 1024),
                "reload-on-as" => c.recycle.reload_on_as = number()?.saturating_mul(1024 * 1024),
                "evil-reload-on-rss" => c.evil_reload.0 = number()?.saturating_mul(1024 * 1024),
                "evil-reload-on-as" => c.evil_reload.1 = number()?.saturating_mul(1024 * 1024),
                "min-worker-lifetime" => c.recycle.min_lifetime = Duration::from_secs(number()?),
                "sched-policy" => {
                    c.sched_policy = match v {
                        "batch" => SchedPolicy::Batch,
                        "other" | "normal" => SchedPolicy::Other,
                        _ => return Err(invalid("expected batch or other".into())),
                    }
                }
                "warmup-url" => {
                    if !v.starts_with('/') {
                        return Err(invalid("expected a path that starts with /".into()));
                    }
                    c.warmup_urls.push(v.to_owned());
                }
                "warmup-requests" => {
                    c.warmup_requests = bounded(number()?, 1, 10_000).map_err(invalid)? as u32
                }
                "enable-threads" | "master" | "die-on-term" | "strict" => {}
                "processes" => c.processes = bounded(number()?, 1, 1024).map_err(invalid)? as usize,
                "threads" => c.threads = bounded(number()?, 1, 256).map_err(invalid)? as usize,
                "locks" => c.locks = bounded(number()?, 0, MAX_LOCKS).map_err(invalid)? as u32,
                "skip-atexit" => c.skip_atexit = flag,
                "worker-reload-mercy" => {
                    c.worker_reload_mercy =
                        Duration::from_secs(bounded(number()?, 1, 86400).map_err(invalid)?);
                }
                "uid" => c.uid = Some(v.to_owned()),
                "gid" => c.gid = Some(v.to_owned()),
                "reload-mercy" => c.reload_mercy = Duration::from_secs(number()?),
                "log-format" => match v {
                    "json" => c.log_style = LogStyle::Json,
                    "text" => c.log_style = LogStyle::Text,
                    _ => c.log_format = Some(v.to_owned()),
                },
                "disable-logging" => c.logging.rules.all = !flag,
                "cheaper" => ch.cheaper = Some(number()?),
                "cheaper-initial" => ch.initial = Some(number()?),
                "cheaper-step" => ch.step = number()?,
                "cheaper-overload" => ch.overload = Some(number()?),
                "cheaper-algo" => ch.algo = Some(v.trim().to_owned()),
                "check-interval" => {
                    c.check_interval =
                        Duration::from_secs(bounded(number()?, 1, 3600).map_err(invalid)?)
                }
                "cheaper-busyness-max" => ch.busyness.max = number()?,
                "cheaper-busyness-min" => ch.busyness.min = number()?,
                "cheaper-busyness-multiplier" => ch.busyness.multiplier = number()?,
                "cheaper-busyness-penalty" => ch.busyness.penalty = number()?,
                "cheaper-busyness-verbose" => ch.busyness.verbose = flag,
                "cheaper-busyness-backlog-alert" => ch.busyness.backlog_alert = number()?,
                "cheaper-busyness-backlog-multiplier" => ch.busyness.backlog_multiplier = number()?,
                "cheaper-busyness-backlog-step" => ch.busyness.backlog_step = number()?,
                "cheaper-busyness-backlog-nonzero" => ch.busyness.backlog_nonzero = number()?,
                "cheaper-rss-limit-soft" => ch.rss_soft = number()?,
                "cheaper-rss-limit-hard" => ch.rss_hard = number()?,
                "cheaper-idle" => ch.idle = Some(number()?),
                "master-fifo" => c.master_fifo.push(PathBuf::from(v)),
                name if name.starts_with("touch-") || name.starts_with("fs-") => {
                    if let Some(t) = touch::Touch::parse(name, v) {
                        let list = if name.starts_with("fs-") {
                            &mut c.fs_watches
                        } else {
                            &mut c.touches
                        };
                        list.push(t.map_err(invalid)?);
                    }
                }
                "exit-on-reload" => c.exit_on_reload = flag,
                "worker-accept" => c.worker_accept = flag,
                "print" => c.prints.push(v.to_owned()),
                "threads-stacksize" => {
                    let kib = bounded(number()?, 16, 1 << 20).map_err(invalid)?;
                    c.threads_stacksize = Some(kib as usize);
                }
                "daemonize" | "daemonize2" => {
                    if v.is_empty() {
                        return Err(invalid("expected a log file path or host:port".into()));
                    }
                    c.daemonize = Some(Daemonize {
                        log: v.to_owned(),
                        wait_ready: spec.name == "daemonize2",
                    });
                }
                "stats" => c.stats = Some(value::parse_address(v).map_err(invalid)?),
                "stats-http" => c.stats_http = flag,
                "stats-minified" => c.stats_minified = flag,
                "chown-socket" => c.chown_socket = Some(v.to_owned()),
                "umask" => c.umask = Some(value::parse_umask(v).map_err(invalid)?),
                "pidfile" => c.pidfiles.0 = Some(PathBuf::from(v)),
                "pidfile2" => c.pidfiles.1 = Some(PathBuf::from(v)),
                "limit-post" => c.limit_post = number()?,
                "add-header" => {
                    let (name, val) = v
                        .split_once(':')
                        .filter(|(n, _)| value::is_token(n.trim()))
                        .ok_or_else(|| invalid("expected \"Name: value\"".into()))?;
                    if val.bytes().any(|b| b == b'\r' || b == b'\n') {
                        return Err(invalid("a header value cannot hold a line break".into()));
                    }
                    c.add_headers
                        .push((name.trim().to_owned(), val.trim().to_owned()));
                }
                "wsgi-disable-file-wrapper" => c.file_wrapper = !flag,
                "py-autoreload" => {
                    c.py_autoreload = bounded(number()?, 0, 86400).map_err(invalid)?
                }
                "logto" | "logto2" => {
                    if v.is_empty() {
                        return Err(invalid("expected a file path or host:port".into()));
                    }
                    c.logging.logto = Some(v.to_owned());
                    c.logging.logto_after_drop = spec.name == "logto2";
                }
                "logger" | "req-logger" => {
                    let path = match v.split_once(':') {
                        Some(("file", path)) if !path.is_empty() => Some(PathBuf::from(path)),
                        None if v == "stdio" => None,
                        _ => {
                            return Err(invalid("rwsgi's loggers are file:PATH and stdio".into()));
                        }
                    };
                    if spec.name == "logger" {
                        c.logging.logto = path.map(|p| p.display().to_string());
                        c.logging.logto_after_drop = false;
                    } else {
                        c.logging.req_file = path;
                    }
                }
                "logfile-chmod" => c.logging.chmod = Some(value::parse_mode(v).map_err(invalid)?),
                "log-reopen" => c.logging.reopen = flag,
                "log-date" => {
                    // A bare option (or a boolean) asks for ctime's form.
                    let bare = v.is_empty() || matches!(v, "1" | "true" | "on" | "yes");
                    c.logging.date = if bare {
                        Some(String::new())
                    } else if matches!(v, "0" | "false" | "off" | "no") {
                        None
                    } else {
                        Some(v.to_owned())
                    };
                }
                "log-4xx" => c.logging.rules.log_4xx = flag,
                "log-5xx" => c.logging.rules.log_5xx = flag,
                "log-slow" => c.logging.rules.slow_ms = number()?,
                "log-x-forwarded-for" => c.logging.rules.x_forwarded_for = flag,
                "show-config" => show_config = flag,
                "auto-procname" => c.procnames.auto = flag,
                "procname" => c.procnames.procname = Some(v.to_owned()),
                "procname-master" => c.procnames.master = Some(v.to_owned()),
                "procname-prefix" => c.procnames.prefix = v.to_owned(),
                "procname-prefix-spaced" => c.procnames.prefix = format!("{v} "),
                "procname-append" => c.procnames.append = v.to_owned(),
                // A placeholder, already expanded (`expand::setters`).
                "set-placeholder" => {}
                "mount" => {
                    let (mp, target) = v
                        .split_once('=')
                        .filter(|(m, t)| (m.is_empty() || m.starts_with('/')) && !t.is_empty())
                        .ok_or_else(|| invalid("expected /mountpoint=app".into()))?;
                    mounts.push((
                        mp.trim_end_matches('/').to_owned(),
                        target.to_owned(),
                        o.origin.clone(),
                    ));
                }
                "manage-script-name" => c.manage_script_name = flag,
                "static-map" | "static-map2" => {
                    let (mount, dir) = v
                        .split_once('=')
                        .filter(|(m, d)| m.starts_with('/') && !d.is_empty())
                        .ok_or_else(|| invalid("expected /mountpoint=directory".into()))?;
                    let keep_mount = spec.name == "static-map2";
                    statics[usize::from(keep_mount)].push(StaticMap {
                        mount: mount.trim_end_matches('/').to_owned(),
                        dir: PathBuf::from(dir),
                        keep_mount,
                    });
                }
                "check-static" => statics[2].push(StaticMap {
                    mount: String::new(),
                    dir: PathBuf::from(v),
                    keep_mount: true,
                }),
                "static-index" => c.static_index.push(v.to_owned()),
                "static-safe" => c.static_safe.push(PathBuf::from(v)),
                "static-skip-ext" if !v.is_empty() => c.static_skip_ext.push(v.to_owned()),
                "static-skip-ext" => return Err(invalid("expected a file name ending".into())),
                name if name.starts_with("static-expires") => {
                    c.static_expires
                        .push(value::parse_expires(name, v).map_err(invalid)?);
                }
                "limit-as" => c.limit_as = Some(bounded(number()?, 16, 1 << 30).map_err(invalid)?),
                "max-fd" => c.max_fd = Some(bounded(number()?, 1, 1 << 30).map_err(invalid)?),
                "so-keepalive" => c.so_keepalive = flag,
                "reuse-port" => c.reuse_port = flag,
                "honour-range" => c.honour_range = flag,
                "static-gzip-all" => c.static_gzip.all = flag,
                "static-gzip-dir" => c.static_gzip.dirs.push(PathBuf::from(v)),
                "static-gzip-ext" => c.static_gzip.exts.push(v.to_owned()),
                "static-gzip" => {
                    regex_lite::Regex::new(v)
                        .map_err(|e| invalid(format!("bad regular expression: {e}")))?;
                    c.static_gzip.patterns.push(v.to_owned());
                }
                "attach-daemon" => c.daemons.push(DaemonSpec::plain(v).map_err(invalid)?),
                "attach-daemon2" => c.daemons.push(DaemonSpec::keyed(v).map_err(invalid)?),
                "cron" => c.crons.push(CronSpec::classic(v, false).map_err(invalid)?),
                "unique-cron" => c.crons.push(CronSpec::classic(v, true).map_err(invalid)?),
                "cron2" => c.crons.push(CronSpec::keyed(v).map_err(invalid)?),
                "cron-harakiri" => c.cron_harakiri = number()?,
                "spooler" => c.spooling.dirs.push(PathBuf::from(v)),
                "spooler-external" => c.spooling.external.push(PathBuf::from(v)),
                "spooler-processes" => {
                    let n = bounded(number()?, 1, spooler::MAX_PROCESSES).map_err(invalid)?;
                    c.spooling.processes = n as u32;
                }
                "spooler-frequency" => c.spooling.frequency = number()?.max(1),
                "spooler-harakiri" => c.spooling.harakiri = number()?,
                "spooler-max-tasks" => c.spooling.max_tasks = number()?,
                "spooler-quiet" => c.spooling.quiet = flag,
                "spooler-chdir" => c.spooling.chdir = Some(PathBuf::from(v)),
                "spooler-import" => c.spooling.imports.push(v.to_owned()),
                name if crate::routing::OPTIONS.contains(&name) => {
                    c.routes.push((name.to_owned(), v.to_owned()));
                }
                "mule" => c.mules.add(v).map_err(invalid)?,
                "mules" => c.mules.add_plain(number()?).map_err(invalid)?,
                "farm" => c.mules.add_farm(v).map_err(invalid)?,
                "mule-msg-size" => {
                    let n = bounded(number()?, 1, mules::MAX_MSG_SIZE as u64).map_err(invalid)?;
                    c.mules.msg_size = n as usize;
                }
                "cache2" => c.caches.push(CacheSpec::keyed(v).map_err(invalid)?),
                "cache" => legacy_cache.0 = Some(number()?),
                "cache-blocksize" => legacy_cache.1 = number()?,
                "sharedarea" => c
                    .sharedareas
                    .push(crate::worker::sharedarea::parse(v).map_err(invalid)?),
                "add-cache-item" => c.cache_preload.push(Preload::Item(v.to_owned())),
                "load-file-in-cache" => c.cache_preload.push(Preload::File(v.to_owned())),
                "smart-attach-daemon" => {
                    c.daemons
                        .push(DaemonSpec::smart(v, false).map_err(invalid)?);
                }
                "smart-attach-daemon2" => {
                    c.daemons.push(DaemonSpec::smart(v, true).map_err(invalid)?);
                }
                "log-zero" => c.logging.rules.zero = flag,
                "log-big" => c.logging.rules.big = number()?,
                "log-micros" => c.logging.rules.micros = flag,
                "memory-report" => c.logging.rules.memory = flag,
                "log-maxsize" => c.logging.maxsize = number()?,
                "log-backupname" => c.logging.backupname = Some(PathBuf::from(v)),
                "hook-master-start" => {
                    let words: Vec<&str> = v.split_whitespace().collect();
                    if words != ["unix_signal:15", "gracefully_kill_them_all"] {
                        return Err(ConfigError::Unsupported {
                            name: o.name.clone(),
                            reason: "hook-master-start only takes the graceful-SIGTERM idiom (rwsgi already shuts down gracefully on SIGTERM)",
                            origin: o.origin.clone(),
                        });
                    }
                    warnings.push(format!(
                        "{}: option \"{}\" ignored: rwsgi already shuts down gracefully on SIGTERM",
                        o.origin, o.name
                    ));
                }
                other => {
                    return Err(ConfigError::Unsupported {
                        name: other.to_owned(),
                        reason: "known but not applied (a bug: please report it)",
                        origin: o.origin.clone(),
                    });
                }
            }
        }
        c.cheaper = cheaper::validate(ch, c.processes, &mut warnings).map_err(ConfigError::Rule)?;
        if let (Some(items), blocksize) = legacy_cache {
            let as_usize = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
            let spec = CacheSpec::legacy(as_usize(items), as_usize(blocksize))
                .map_err(ConfigError::Rule)?;
            c.caches.insert(0, spec);
        }
        // uWSGI tries the file path, then PATH_INFO, then REQUEST_URI, then
        // the content type; in each, the "now" rules before the mtime ones
        // (`core/static.c` `uwsgi_real_file_serve`). Stable: list order
        // otherwise.
        c.static_expires.sort_by_key(|r| (r.on, r.from_mtime));
        if let (Some(d), None) = (&c.daemonize, &c.logging.logto) {
            c.logging.logto = Some(d.log.clone());
        }
        for i in default_sockets {
            c.sockets[i].protocol = default_protocol;
        }
        if show_config {
            c.show_config = Some(as_ini(&raw));
        }
        c.exported = raw
            .iter()
            .map(|o| {
                let bare = o.value.is_empty() && o.spec.is_some_and(|s| s.kind == Kind::Flag);
                (o.name.clone(), (!bare).then(|| o.value.clone()))
            })
            .collect();
        // Paths are relative to where rwsgi was started, before any chdir.
        let cwd = std::env::current_dir().unwrap_or_default();
        let abs = |p: PathBuf| if p.is_absolute() { p } else { cwd.join(p) };
        c.home = c.home.map(abs);
        c.chdir = c.chdir.map(abs);
        c.chdir2 = c.chdir2.map(abs);
        c.pythonpath = c.pythonpath.into_iter().map(abs).collect();
        c.master_fifo = c.master_fifo.into_iter().map(abs).collect();
        for t in c.touches.iter_mut().chain(&mut c.fs_watches) {
            t.path = abs(std::mem::take(&mut t.path));
        }
        // uWSGI resolves spooler directories when it reads the option.
        c.spooling.dirs = std::mem::take(&mut c.spooling.dirs)
            .into_iter()
            .map(abs)
            .collect();
        c.spooling.external = std::mem::take(&mut c.spooling.external)
            .into_iter()
            .map(abs)
            .collect();
        c.spooling.chdir = c.spooling.chdir.take().map(abs);
        c.mules.check().map_err(ConfigError::Rule)?;
        crate::routing::Rules::parse(&c.routes).map_err(ConfigError::Rule)?;
        let uwsgi_sockets = c.sockets.iter().any(|s| s.protocol == Protocol::Uwsgi);
        if c.worker_accept && uwsgi_sockets {
            // The master runs these before any worker; a worker that
            // accepts itself would skip them, serving what they protect.
            let master_only = [
                (!c.routes.is_empty(), "route rules"),
                (statics.iter().any(|m| !m.is_empty()), "static files"),
            ];
            if let Some((_, what)) = master_only.iter().find(|(set, _)| *set) {
                return Err(ConfigError::Rule(format!(
                    "worker-accept cannot be used with {what} on a uwsgi socket: the master applies them, and with worker-accept it never sees those requests"
                )));
            }
        }
        c.pidfiles = (c.pidfiles.0.map(abs), c.pidfiles.1.map(abs));
        // Static directories are relative to `chdir`, as in uWSGI (whose
        // master has changed to it when it serves files).
        let base = c.chdir.clone().unwrap_or_else(|| cwd.clone());
        c.static_gzip.dirs = std::mem::take(&mut c.static_gzip.dirs)
            .into_iter()
            .map(|d| base.join(d))
            .collect();
        c.static_safe = std::mem::take(&mut c.static_safe)
            .into_iter()
            .map(|d| base.join(d))
            .collect();
        c.static_maps = statics
            .into_iter()
            .flatten()
            .map(|m| StaticMap {
                dir: base.join(&m.dir),
                ..m
            })
            .collect();
        c.logging.req_file = c.logging.req_file.map(abs);
        c.logging.backupname = c.logging.backupname.map(abs);
        for d in &mut c.daemons {
            d.pidfile = d.pidfile.take().map(abs);
            // uWSGI's master has changed to `chdir` before it starts them.
            d.chdir = d.chdir.take().map(abs).or_else(|| c.chdir.clone());
            d.touch = std::mem::take(&mut d.touch).into_iter().map(abs).collect();
        }
        if c.logging.maxsize > 0
            && c.logging
                .logto
                .as_deref()
                .is_none_or(|t| crate::logfile::udp_address(t).is_some())
        {
            return Err(ConfigError::Rule(
                "log-maxsize needs a log file (logto, logto2 or logger = file:PATH)".into(),
            ));
        }
        // A mounted app is a file (`.py`, `.wsgi`, or a path) or a module,
        // as uWSGI's `uwsgi_python_mount_app` decides; files are relative
        // to `chdir`.
        for (mountpoint, target, origin) in mounts {
            let spec = if target.ends_with(".py")
                || target.ends_with(".wsgi")
                || target.contains('/')
            {
                AppSpec {
                    source: AppSource::File(base.join(&target)),
                    callable: callable.clone(),
                }
            } else {
                value::parse_module(&target, &callable).map_err(|reason| ConfigError::Invalid {
                    name: "mount".into(),
                    value: target.clone(),
                    reason,
                    origin,
                })?
            };
            c.mounts.push((mountpoint, spec));
        }
        let file = file.map(abs);
        c.app = match (module, file) {
            (Some((m, origin)), _) => Some(value::parse_module(&m, &callable).map_err(
                |reason| ConfigError::Invalid {
                    name: "module".into(),
                    value: m.clone(),
                    reason,
                    origin,
                },
            )?),
            (None, Some(path)) => Some(AppSpec {
                source: AppSource::File(path),
                callable,
            }),
            (None, None) => paste.map(|uri| AppSpec {
                source: AppSource::Paste {
                    uri: paste_uri(uri, &cwd),
                    logging: paste_logger,
                },
                callable,
            }),
        };
        Ok((c, warnings))
    }

    /// The uwsgi decoder limits this configuration asks for.
    pub fn limits(&self) -> rwsgi_proto::Limits {
        rwsgi_proto::Limits {
            max_block: self.buffer_size,
            max_vars: self.max_vars,
        }
    }
}

/// A relative `config:` path made absolute against `cwd` (PasteDeploy
/// refuses a relative one without `relative_to`).
fn paste_uri(uri: String, cwd: &std::path::Path) -> String {
    match uri.strip_prefix("config:") {
        Some(p) if !p.starts_with('/') => format!("config:{}", cwd.join(p).display()),
        _ => uri,
    }
}

/// The options as uWSGI's `show-config` prints them.
fn as_ini(raw: &[RawOption]) -> String {
    let mut out = String::from(";uWSGI instance configuration\n[uwsgi]\n");
    for o in raw {
        out.push_str(&format!("{} = {}\n", o.name, o.value));
    }
    out.push_str(";end of configuration");
    out
}

fn socket(v: &str, protocol: Protocol) -> Result<SocketSpec, String> {
    Ok(SocketSpec {
        address: value::parse_address(v)?,
        protocol,
    })
}

fn bounded(n: u64, lo: u64, hi: u64) -> Result<u64, String> {
    if (lo..=hi).contains(&n) {
        Ok(n)
    } else {
        Err(format!("must be between {lo} and {hi}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(a: &[&str]) -> Result<(Config, Vec<String>), ConfigError> {
        let args: Vec<String> = a.iter().map(|s| s.to_string()).collect();
        match Config::load(&args, vec![])? {
            Command::Serve(c, w) => Ok((*c, w)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn protocol_applies_to_every_socket_option_and_set_sets_options() {
        let (c, _) = load(&[
            "--socket",
            ":8001",
            "--http-socket",
            ":8002",
            "--protocol=http",
            "--socket",
            "/tmp/a.sock",
            "-S",
            "processes=3",
            "--set-ph",
            "where=/srv",
            "--chdir",
            "%(where)/app",
        ])
        .unwrap();
        let protocols: Vec<_> = c.sockets.iter().map(|s| s.protocol).collect();
        assert_eq!(protocols, [Protocol::Http; 3]);
        assert_eq!(c.processes, 3);
        assert_eq!(c.chdir, Some(PathBuf::from("/srv/app")));
        let (c, _) = load(&["--print", "in %(where)", "--set-ph", "where=/srv"]).unwrap();
        assert_eq!(c.prints, ["in /srv"]);
        let (c, _) = load(&["--socket", ":8001", "--socket-protocol", "uwsgi"]).unwrap();
        assert_eq!(c.sockets[0].protocol, Protocol::Uwsgi);
        let err = load(&["--socket", ":8001", "--protocol", "fastcgi"]).unwrap_err();
        assert!(err.to_string().contains("fastcgi"), "{err}");
    }

    #[test]
    fn production_ini_options_are_read_as_uwsgi_reads_them() {
        let (c, w) = load(&[
            "--module",
            "m",
            "--static-expires",
            "/srv/static/.* 2592000",
            "--static-expires-type-mtime",
            "text/css=60",
            "--static-expires-uri",
            "^/a 1",
            "--lazy",
            "--touch-chain-reload",
            "/tmp/stamp",
            "--touch-workers-reload",
            "/tmp/stamp2",
            "--max-fd",
            "10000",
            "--reuse-port",
            "--so-keepalive",
            "--http-auto-chunked",
            "--smart-attach-daemon",
            "/run/w.pid,5 celery -A app worker --detach",
        ])
        .unwrap();
        let d = &c.daemons[0];
        assert_eq!(d.pidfile, Some(PathBuf::from("/run/w.pid")));
        assert_eq!(
            (d.freq, d.command.as_str()),
            (5, "celery -A app worker --detach")
        );
        let on: Vec<_> = c.static_expires.iter().map(|r| r.on).collect();
        assert_eq!(on, [ExpiresOn::File, ExpiresOn::Uri, ExpiresOn::Type]);
        assert_eq!(c.static_expires[0].pattern, "/srv/static/.*");
        assert_eq!(c.static_expires[0].seconds, 2_592_000);
        assert!(c.static_expires[2].from_mtime);
        assert!(c.lazy_apps && c.reuse_port && c.so_keepalive);
        assert_eq!(c.touches.len(), 2);
        assert_eq!(c.max_fd, Some(10000));
        assert!(w.iter().any(|w| w.contains("http-auto-chunked")), "{w:?}");
        for bad in [
            ["--static-expires", "nospace"],
            ["--static-expires", "([unclosed 10"],
            ["--static-expires-type", "text/css"],
            ["--static-expires-uri", "^/a soon"],
            ["--smart-attach-daemon", "/run/w.pid"],
        ] {
            let err = load(&["--module", "m", bad[0], bad[1]]).unwrap_err();
            assert!(err.to_string().contains(&bad[0][2..]), "{err}");
        }
        let err = load(&["--module", "m", "--route", "^/x setvar:A=b"]).unwrap_err();
        assert!(
            err.to_string().contains("\"setvar\" is not supported"),
            "{err}"
        );
        let err = load(&["--module", "m", "--response-route", "^/ addheader:X: y"]).unwrap_err();
        assert!(err.to_string().contains("internal routing"), "{err}");
    }

    #[test]
    fn warm_up_paths_must_be_paths() {
        let (c, _) = load(&[
            "--module",
            "m",
            "--warmup-url",
            "/",
            "--warmup-url",
            "/a?b=1",
        ])
        .unwrap();
        assert_eq!(c.warmup_urls, ["/", "/a?b=1"]);
        assert_eq!(c.warmup_requests, 16);
        let err = load(&["--module", "m", "--warmup-url", "http://x/"]).unwrap_err();
        assert!(err.to_string().contains("warmup-url"), "{err}");
        assert!(load(&["--module", "m", "--warmup-requests", "0"]).is_err());
    }

    #[test]
    fn a_typical_command_line() {
        let (c, w) = load(&[
            "--http",
            "127.0.0.1:9090",
            "--socket",
            "/tmp/a.sock",
            "--module",
            "app:app",
            "--master",
            "--processes",
            "4",
            "--buffer-size",
            "4096",
            "--thunder-lock",
        ])
        .unwrap();
        assert_eq!(c.sockets.len(), 2);
        assert_eq!(c.sockets[0].protocol, Protocol::Http);
        assert_eq!(c.sockets[1].address, Address::Unix("/tmp/a.sock".into()));
        assert_eq!(c.processes, 4);
        assert_eq!(c.buffer_size, 4096);
        assert_eq!(
            c.app,
            Some(AppSpec {
                source: AppSource::Module("app".into()),
                callable: "app".into()
            })
        );
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("thunder-lock"), "{w:?}");
    }

    #[test]
    fn wsgi_file_and_callable() {
        let (c, _) = load(&["--wsgi-file", "a.py", "--callable", "app"]).unwrap();
        assert_eq!(
            c.app,
            Some(AppSpec {
                source: AppSource::File(std::env::current_dir().unwrap().join("a.py")),
                callable: "app".into()
            })
        );
    }

    #[test]
    fn unsupported_and_invalid_values_are_named() {
        let e = load(&["--emperor", "/etc/vassals"])
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "command line argument 1: option \"emperor\" is not supported: the emperor is not supported; use one container per app"
        );
        let e = load(&["--processes", "many"]).unwrap_err().to_string();
        assert_eq!(
            e,
            "command line argument 1: invalid value \"many\" for option \"processes\": expected a number"
        );
        assert!(load(&["--processes", "0"]).is_err());
        assert!(load(&["--socket", "host:notaport"]).is_err());
    }

    #[test]
    fn options_from_real_ini_files() {
        let (c, w) = load(&[
            "--http11-socket",
            ":8080",
            "--logto",
            "/var/log/app.log",
            "--log-date",
            "",
            "--pidfile",
            "/run/app.pid",
            "--umask",
            "022",
            "--chown-socket",
            "www-data:www-data",
            "--limit-post",
            "1048576",
            "--add-header",
            "X-Frame-Options: DENY",
            "--req-logger",
            "file:/var/log/req.log",
            "--log-slow",
            "500",
            "--py-autoreload",
            "2",
            "--procname-prefix",
            "app-",
            "--offload-threads",
            "4",
            "--hook-master-start",
            "unix_signal:15   gracefully_kill_them_all",
        ])
        .unwrap();
        assert_eq!(c.sockets[0].protocol, Protocol::Http);
        assert_eq!(c.logging.logto.as_deref(), Some("/var/log/app.log"));
        assert!(!c.logging.logto_after_drop);
        assert_eq!(c.logging.date.as_deref(), Some(""));
        assert_eq!(c.pidfiles.0, Some(PathBuf::from("/run/app.pid")));
        assert_eq!(c.umask, Some(0o022));
        assert_eq!(c.chown_socket.as_deref(), Some("www-data:www-data"));
        assert_eq!(c.limit_post, 1 << 20);
        assert_eq!(
            c.add_headers,
            vec![("X-Frame-Options".to_owned(), "DENY".to_owned())]
        );
        assert_eq!(c.logging.req_file, Some(PathBuf::from("/var/log/req.log")));
        assert_eq!(c.logging.rules.slow_ms, 500);
        assert_eq!(c.py_autoreload, 2);
        assert_eq!(c.procnames.prefix, "app-");
        // Harmless ones are accepted with the reason.
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].contains("offload-threads"));
        assert!(w[1].contains("gracefully on SIGTERM"));
        let (c, _) = load(&[
            "--logto2",
            "/l",
            "--logdate",
            "%H:%M",
            "--logger",
            "file:/x",
        ])
        .unwrap();
        assert_eq!(c.logging.logto.as_deref(), Some("/x"));
        assert!(!c.logging.logto_after_drop);
        assert_eq!(c.logging.date.as_deref(), Some("%H:%M"));
        let (c, _) = load(&["--logger", "file:/x", "--logto2", "/l"]).unwrap();
        assert_eq!(c.logging.logto.as_deref(), Some("/l"));
        assert!(c.logging.logto_after_drop);
    }

    #[test]
    fn bad_values_of_the_ini_options_are_named() {
        for args in [
            &["--add-header", "no colon here"][..],
            &["--add-header", "Bad Name: x"],
            &["--umask", "999"],
            &["--logger", "syslog:app"],
            &["--req-logger", "file:"],
            &["--logto", ""],
            &["--hook-master-start", "exec:rm -rf /"],
            &["--static-map", "static=/srv/static"],
            &["--https-socket", ":443,cert,key"],
        ] {
            let e = load(args).unwrap_err().to_string();
            assert!(
                e.contains(args[0].trim_start_matches("--")),
                "{args:?}: {e}"
            );
        }
    }

    #[test]
    fn flags_follow_uwsgi_truthiness_in_env() {
        let args: Vec<String> = vec![];
        let Command::Serve(c, _) =
            Config::load(&args, vec![("UWSGI_VACUUM".into(), "false".into())]).unwrap()
        else {
            panic!()
        };
        assert!(!c.vacuum);
        let Command::Serve(c, _) =
            Config::load(&args, vec![("UWSGI_VACUUM".into(), "1".into())]).unwrap()
        else {
            panic!()
        };
        assert!(c.vacuum);
    }

    #[test]
    fn the_options_as_given_are_kept_for_the_uwsgi_module() {
        let (c, _) = load(&[
            "--master",
            "--processes",
            "3",
            "--env",
            "A=1",
            "--env",
            "B=2",
            "--locks",
            "4",
            "--skip-atexit",
        ])
        .unwrap();
        let some = |v: &str| Some(v.to_owned());
        assert_eq!(
            c.exported,
            vec![
                ("master".to_owned(), None),
                ("processes".to_owned(), some("3")),
                ("env".to_owned(), some("A=1")),
                ("env".to_owned(), some("B=2")),
                ("locks".to_owned(), some("4")),
                ("skip-atexit".to_owned(), None),
            ]
        );
        assert_eq!(c.locks, 4);
        assert!(c.skip_atexit);
        assert!(load(&["--locks", "1025"]).is_err());
    }

    #[test]
    fn paste_apps_and_imports() {
        let dir = std::env::temp_dir().join(format!("rwsgi-paste-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ini = dir.join("prod.ini");
        std::fs::write(&ini, "[app:main]\nuse = egg:x\n[uwsgi]\nprocesses = 3\n").unwrap();
        let (c, _) = load(&["--ini-paste-logged", ini.to_str().unwrap()]).unwrap();
        assert_eq!(c.processes, 3);
        let uri = format!("config:{}", ini.display());
        assert_eq!(
            c.app.unwrap().source,
            AppSource::Paste { uri, logging: true }
        );
        // A relative config: path is made absolute; module wins over paste.
        let (c, _) = load(&[
            "--paste",
            "config:app.ini",
            "--import",
            "a",
            "--pyimport",
            "b.py",
        ])
        .unwrap();
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(
            c.app.unwrap().source,
            AppSource::Paste {
                uri: format!("config:{}", cwd.join("app.ini").display()),
                logging: false
            }
        );
        assert_eq!(c.imports, ["a", "b.py"]);
        let (c, _) = load(&[
            "--paste",
            "egg:x",
            "--module",
            "m:app",
            "--shared-import",
            "s",
        ])
        .unwrap();
        assert_eq!(c.app.unwrap().source, AppSource::Module("m".into()));
        assert_eq!(c.shared_imports, ["s"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
