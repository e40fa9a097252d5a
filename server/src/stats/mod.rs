//! The stats server (uWSGI `core/stats.c`, `uwsgi_master_generate_stats`;
//! reference §4): on every connection the master writes a JSON document
//! about the instance, its sockets and every configured worker slot, and
//! closes. uwsgitop and the Prometheus uwsgi_exporter read it.
//!
//! The schema is uWSGI 2.0's, field for field and in its order, so that
//! those consumers work unchanged: every slot is listed (never-spawned
//! cheaper slots with `id` 0 and status `cheap`), all numbers are integers,
//! the pretty form is tab-indented with `"key":value`, and `stats-http`
//! answers with exactly `Content-Type: application/json`. Version 1 of
//! rwsgi's stats schema; fields rwsgi has no counterpart for (a worker's
//! own signal queue, offloading, static files) are always 0. `signals` is
//! the uWSGI signals a worker handled, the top-level `signal_queue` those
//! being delivered.

pub mod json;
pub mod server;
pub mod table;

use serde_json::{Map, Value, json};

use crate::dispatch::Pool;

/// What the document says about the instance besides the worker table.
#[derive(Debug, Clone)]
pub struct Info {
    /// Listening sockets: name, protocol, and the ones whose kernel accept
    /// queue is read (TCP; unix with `worker-accept`).
    pub sockets: Vec<(String, &'static str, Option<crate::accept_queue::Listener>)>,
    /// `listen`, reported as `max_queue` of the sockets whose queue is read.
    pub listen: u32,
    /// The master's working directory.
    pub cwd: String,
    /// Without whitespace (`stats-minified`).
    pub minified: bool,
    /// The spooler processes, when there are any.
    pub spoolers: Option<SpoolerInfo>,
    /// The caches (uWSGI's `caches[]`).
    pub caches: Vec<std::sync::Arc<crate::cache::Cache>>,
}

/// uWSGI's `caches[]` (`core/master_utils.c`): `hash` names rwsgi's hash
/// function, `hashsize` its bucket count; `blocks` is `max_items` (one
/// block per item, as uWSGI without `bitmap`).
fn caches(caches: &[std::sync::Arc<crate::cache::Cache>]) -> Value {
    caches
        .iter()
        .map(|c| {
            let spec = c.spec();
            let [items, hits, miss, full, last_modified_at] = c.counters();
            json!({
                "name": spec.name, "hash": "fnv1a", "hashsize": c.buckets(),
                "keysize": spec.keysize, "max_items": spec.items, "blocks": spec.items,
                "blocksize": spec.blocksize, "items": items, "hits": hits, "miss": miss,
                "full": full, "last_modified_at": last_modified_at,
            })
        })
        .collect()
}

/// What the stats show of the spooler processes (uWSGI's `spoolers[]`).
#[derive(Debug, Clone)]
pub struct SpoolerInfo {
    /// The `spooler` directories, in order.
    pub dirs: Vec<std::path::PathBuf>,
    /// Processes per directory.
    pub processes: usize,
    /// Their counters, written by the prototype and the spoolers.
    pub counters: std::sync::Arc<crate::spool::Counters>,
}

/// uWSGI's `spoolers[]`: one entry per spooler process (`dir`, `pid`,
/// `tasks`, `respawns`, `running`).
fn spoolers(sp: &SpoolerInfo) -> Value {
    let entries = sp
        .dirs
        .iter()
        .flat_map(|d| std::iter::repeat_n(d, sp.processes.max(1)))
        .enumerate()
        .map(|(i, d)| {
            let dir = std::fs::canonicalize(d).unwrap_or_else(|_| d.clone());
            json!({
                "dir": dir.display().to_string(),
                "pid": sp.counters.pid(i),
                "tasks": sp.counters.tasks(i),
                "respawns": sp.counters.respawns(i),
                "running": u8::from(sp.counters.running(i)),
            })
        })
        .collect();
    Value::Array(entries)
}

/// `vsz` and `rss` of a process, in bytes (0 when it cannot be read).
pub fn process_memory(pid: i32) -> (u64, u64) {
    if pid <= 0 {
        return (0, 0);
    }
    let Ok(statm) = std::fs::read_to_string(format!("/proc/{pid}/statm")) else {
        return (0, 0);
    };
    let mut pages = statm
        .split_whitespace()
        .map(|p| p.parse::<u64>().unwrap_or(0) * 4096);
    (pages.next().unwrap_or(0), pages.next().unwrap_or(0))
}

/// The document.
pub fn document(pool: &Pool, info: &Info) -> Value {
    let sockets: Vec<Value> = info
        .sockets
        .iter()
        .map(|(name, proto, fd)| {
            let queue = fd.and_then(crate::accept_queue::len).unwrap_or(0);
            json!({
                "name": name, "proto": proto, "queue": queue,
                "max_queue": if fd.is_some() { info.listen } else { 0 },
                "shared": 0, "can_offload": 0,
            })
        })
        .collect();
    let queue = pool.backlog(info.sockets.iter().filter_map(|(_, _, fd)| *fd));
    let workers: Vec<Value> = pool
        .table
        .snapshot()
        .into_iter()
        .map(|w| {
            let (vsz, rss) = process_memory(w.pid);
            let status = w.status();
            let apps = if w.id > 0 {
                vec![json!({
                    "id": 0, "modifier1": 0, "mountpoint": "", "startup_time": 0,
                    "requests": w.requests, "exceptions": w.exceptions, "chdir": "",
                })]
            } else {
                Vec::new()
            };
            let cores: Vec<Value> = w
                .cores
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    json!({
                        "id": i, "requests": c.requests, "static_requests": 0, "routed_requests": 0,
                        "offloaded_requests": 0, "write_errors": 0, "read_errors": 0,
                        "in_request": u8::from(c.in_request), "vars": [], "req_info": {},
                    })
                })
                .collect();
            json!({
                "id": w.id, "pid": w.pid, "accepting": u8::from(w.accepting), "requests": w.requests,
                "delta_requests": w.delta_requests, "exceptions": w.exceptions, "harakiri_count": w.harakiri_count,
                "signals": w.signals, "signal_queue": 0, "status": status, "rss": rss, "vsz": vsz,
                "running_time": w.running_time, "last_spawn": w.last_spawn,
                "respawn_count": w.respawn_count, "tx": w.tx, "avg_rt": w.avg_rt,
                "apps": apps, "cores": cores,
            })
        })
        .collect();
    let mut doc = Map::new();
    doc.insert(
        "version".into(),
        json!(concat!(env!("CARGO_PKG_VERSION"), "-rwsgi")),
    );
    doc.insert("listen_queue".into(), json!(queue));
    doc.insert("listen_queue_errors".into(), json!(0));
    doc.insert(
        "signal_queue".into(),
        json!(pool.signal_queue.load(std::sync::atomic::Ordering::Relaxed)),
    );
    doc.insert("load".into(), json!(queue));
    doc.insert("pid".into(), json!(std::process::id()));
    doc.insert("uid".into(), json!(nix::unistd::getuid().as_raw()));
    doc.insert("gid".into(), json!(nix::unistd::getgid().as_raw()));
    doc.insert("cwd".into(), json!(info.cwd));
    doc.insert("locks".into(), json!([]));
    if !info.caches.is_empty() {
        doc.insert("caches".into(), caches(&info.caches));
    }
    doc.insert("sockets".into(), Value::Array(sockets));
    doc.insert("workers".into(), Value::Array(workers));
    if let Some(sp) = &info.spoolers {
        doc.insert("spoolers".into(), spoolers(sp));
    }
    Value::Object(doc)
}

/// The document as uWSGI prints it.
pub fn render(pool: &Pool, info: &Info) -> Vec<u8> {
    json::to_bytes(&document(pool, info), info.minified)
}
