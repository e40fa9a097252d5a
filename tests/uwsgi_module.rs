//! The `uwsgi` Python module and `uwsgidecorators`, used by a real app
//! (`tests/apps/uwsgi_api.py`) in real forked workers.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::*;

/// Starts the app with two workers, writing its marker files to the
/// server's directory, with `extra` options.
fn start(extra: &[&str]) -> Server {
    start_in(tmpdir("uwsgimod"), extra)
}

fn start_in(dir: std::path::PathBuf, extra: &[&str]) -> Server {
    let app = apps().with_file_name("uwsgi_api.py");
    let mut args = vec![
        "--http-socket",
        "127.0.0.1:0",
        "--wsgi-file",
        app.to_str().unwrap(),
        "--master",
        "--processes",
        "2",
        "--env",
        "APP_OUT={dir}",
    ];
    args.extend_from_slice(extra);
    Server::start_in(dir, &args, true)
}

fn text(s: &Server, path: &str) -> String {
    let r = get(s.http.unwrap(), path);
    assert_eq!(r.status, 200, "{path}");
    String::from_utf8(r.body).unwrap()
}

/// Runs `check` (which answers the pid of the worker that served it) on
/// each of the two workers: once while the other holds a slow request,
/// then on the busy one (the most recently idle afterwards).
fn on_both_workers(a: std::net::SocketAddr, check: impl Fn() -> i64) {
    let busy = std::thread::spawn(move || get(a, "/hold?1.0").status);
    std::thread::sleep(Duration::from_millis(300));
    let first = check();
    busy.join().unwrap();
    let second = check();
    assert_ne!(first, second, "both workers answered");
}

/// Waits until `path` exists.
fn wait_file(path: &Path, timeout: Duration) {
    wait_until(
        timeout,
        || path.exists(),
        || format!("no {} within {timeout:?}", path.display()),
    );
}

#[test]
fn the_module_describes_the_server_and_its_options() {
    let ini = tmpdir("uwsgimod-ini").join("app.ini");
    std::fs::write(
        &ini,
        "[uwsgi]\nstatic-map = /a=/tmp\nstatic-map = /b=/tmp\nbuffer-size = 32768\nthreads = 2\nenable-threads = true\noptimize = 1\n",
    )
    .unwrap();
    let s = start(&["--ini", ini.to_str().unwrap(), "--chdir2", "/tmp"]);
    let info = get(s.http.unwrap(), "/info").json();
    let wid = info["worker_id"].as_u64().unwrap();
    assert!((1..=2).contains(&wid), "{info}");
    // The app was imported once, in the prototype: worker 0, as in
    // uWSGI's master.
    assert_eq!(info["imported_in"], 0);
    assert_eq!(info["numproc"], 2);
    assert_eq!(info["cores"], 2);
    assert_eq!(info["buffer_size"], 32768);
    assert_eq!(info["masterpid"], s.pid());
    assert_ne!(info["pid"], s.pid());
    assert_eq!(info["version"], "2.0.30-rwsgi");
    assert_eq!(
        info["version_info"],
        serde_json::json!([2, 0, 30, 0, "rwsgi"])
    );
    assert_eq!(info["hostname"], true);
    assert_eq!(info["mem"], true);
    assert_eq!(info["optimize"], 1);
    // chdir2: after the app was loaded.
    assert_eq!(info["cwd"], "/tmp");
    // threads = 2: no `uwsgi.env` (uWSGI sets it only with one thread).
    assert_eq!(info["env_is_environ"], false);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let started = info["started_on"].as_u64().unwrap();
    assert!(started <= now && now - started < 120, "{info}");
    let micros = info["micros"].as_u64().unwrap();
    assert!(
        micros / 1_000_000 >= started && micros / 1_000_000 <= now + 1,
        "{info}"
    );
    // The options as given: values as written (bytes), True for a bare
    // flag, a list for a repeated option.
    let opt = &info["opt"];
    assert_eq!(opt["processes"], "2");
    assert_eq!(opt["enable-threads"], "true");
    assert_eq!(opt["master"], true);
    assert_eq!(opt["buffer-size"], "32768");
    assert_eq!(opt["static-map"], serde_json::json!(["/a=/tmp", "/b=/tmp"]));
    assert!(opt.get("harakiri").is_none());
    // What rwsgi always does, said the way libraries look for it.
    assert_eq!(opt["py-call-uwsgi-fork-hooks"], true);
    // Whatever rwsgi does not have says so.
    let missing = text(&s, "/missing");
    assert!(
        missing.starts_with("uwsgi.websocket_handshake is not available"),
        "{missing}"
    );
}

#[test]
fn hooks_run_after_fork_and_when_workers_stop() {
    let mut s = start(&[]);
    let dir = s.dir.clone();
    for wid in 1..=2 {
        wait_file(
            &dir.join(format!("postfork-{wid}")),
            Duration::from_secs(10),
        );
    }
    // @postfork(2) ran in worker 2 only.
    assert!(dir.join("postfork-only-2-2").exists());
    assert!(!dir.join("postfork-only-2-1").exists());
    let pids: Vec<String> = (1..=2)
        .map(|w| std::fs::read_to_string(dir.join(format!("postfork-{w}"))).unwrap())
        .collect();
    assert_eq!(s.terminate().code(), Some(0));
    // uwsgi.atexit and the app's atexit functions ran in each worker.
    for pid in &pids {
        assert!(
            dir.join(format!("atexit-{pid}")).exists(),
            "atexit in {pid}"
        );
        assert!(
            dir.join(format!("pyatexit-{pid}")).exists(),
            "pyatexit in {pid}"
        );
    }
}

#[test]
fn skip_atexit_leaves_python_atexit_functions_out() {
    let mut s = start(&["--skip-atexit"]);
    let dir = s.dir.clone();
    wait_file(&dir.join("postfork-1"), Duration::from_secs(10));
    let pid = std::fs::read_to_string(dir.join("postfork-1")).unwrap();
    assert_eq!(s.terminate().code(), Some(0));
    assert!(dir.join(format!("atexit-{pid}")).exists());
    assert!(!dir.join(format!("pyatexit-{pid}")).exists());
}

#[test]
fn log_variables_and_log_this_reach_the_request_log() {
    let s = start(&[
        "--log-format",
        "%(method) %(uri) %(status) user=%(user_id) role=%(role) none=%(unset)",
        "--disable-logging",
    ]);
    assert_eq!(text(&s, "/logvar?ann"), "admin None");
    assert_eq!(text(&s, "/logvar?force"), "admin None");
    // Logging is disabled, but log_this_request() asks for the line.
    s.wait_logged(
        "GET /logvar?force 200 user=force role=admin none=-",
        Duration::from_secs(5),
    );
    assert!(!s.logged("GET /logvar?ann"));
    assert_eq!(text(&s, "/log?hello"), "logged");
    s.wait_logged("from the app: hello", Duration::from_secs(5));
}

#[test]
fn user_locks_are_shared_by_the_workers_and_survive_a_dead_holder() {
    let s = start(&["--locks", "1"]);
    let a = s.http.unwrap();
    // One worker holds lock 0; the other sees it held.
    let holder = std::thread::spawn(move || get(a, "/hold?1.5").body);
    wait_until(
        Duration::from_secs(5),
        || text(&s, "/is_locked") == "True",
        || "lock 0 never seen held".into(),
    );
    assert_eq!(holder.join().unwrap(), b"held");
    assert_eq!(text(&s, "/is_locked"), "False");
    // The @lock decorator serialises a read-modify-write across workers.
    let counters: Vec<_> = (0..8)
        .map(|_| std::thread::spawn(move || get(a, "/counted").status))
        .collect();
    for c in counters {
        assert_eq!(c.join().unwrap(), 200);
    }
    let counter = std::fs::read_to_string(s.dir.join("counter")).unwrap();
    assert_eq!(counter, "8");
    // Only lock 0 and the `locks` extra exist.
    assert_eq!(text(&s, "/bad_lock"), "Invalid lock number");
    // A worker that dies holding lock 1 does not leave it taken.
    assert_eq!(get(a, "/die_holding").status, 502);
    assert_eq!(text(&s, "/lock1"), "lock 1 free");
}

#[test]
fn reload_from_the_app_replaces_the_workers() {
    let s = start(&[]);
    // request_id counts the requests a worker finished before this one.
    let mut seen = std::collections::HashSet::new();
    for _ in 0..6 {
        let i = get(s.http.unwrap(), "/info").json();
        let key = (
            i["pid"].as_i64().unwrap(),
            i["request_id"].as_u64().unwrap(),
        );
        assert!(seen.insert(key), "request_id repeated: {i}");
    }
    assert!(seen.iter().any(|(_, n)| *n >= 1));
    // One thread: `uwsgi.env` is the request's environ.
    assert_eq!(get(s.http.unwrap(), "/info").json()["env_is_environ"], true);
    // Not given, but always on in rwsgi: said so for libraries that look.
    let opt = get(s.http.unwrap(), "/info").json()["opt"].clone();
    assert_eq!(opt["enable-threads"], true);
    assert_eq!(opt["py-call-uwsgi-fork-hooks"], true);
    let before = get(s.http.unwrap(), "/info").json()["pid"].clone();
    assert_eq!(text(&s, "/reload"), "True");
    s.wait_event("reload_done", Duration::from_secs(30));
    let after = get(s.http.unwrap(), "/info").json()["pid"].clone();
    assert_ne!(before, after);
}

#[test]
fn the_app_sets_its_own_harakiri() {
    // No `harakiri` option: the app's deadline alone kills.
    let s = start(&[]);
    let a = s.http.unwrap();
    let started = Instant::now();
    assert_eq!(get(a, "/user_harakiri").status, 502);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    s.wait_logged("*** HARAKIRI ON WORKER", Duration::from_secs(5));
    // A deadline cleared with 0 does not fire.
    assert_eq!(text(&s, "/harakiri_cleared"), "survived");
    // Any number of them in a row is fine for the master.
    assert_eq!(text(&s, "/harakiri_storm"), "survived");
    // uwsgidecorators.harakiri sets it around the function.
    assert_eq!(get(a, "/harakiri_decorated").status, 502);
    assert_eq!(s.events("harakiri").len(), 2);
}

#[test]
fn sentrys_sdk_finds_what_it_looks_for_in_uwsgi_opt() {
    let app = apps().with_file_name("sentry_app.py");
    let venv = venv();
    let s = Server::start(&[
        "--http-socket",
        "127.0.0.1:0",
        "--wsgi-file",
        app.to_str().unwrap(),
        "--virtualenv",
        venv.to_str().unwrap(),
        "--master",
        "--processes",
        "2",
    ]);
    let v = get(s.http.unwrap(), "/").json();
    // No "IMPORTANT: We detected the use of uWSGI ... without thread
    // support" at init, though the command line says nothing of threads:
    // rwsgi always runs them, and its `uwsgi.opt` says so.
    assert_eq!(v["at_init"], serde_json::json!([]), "{v}");
    assert_eq!(v["supported"], true);
    // The check is live: without those keys it objects.
    assert_eq!(v["without"], false);
}

#[test]
fn a_stuck_exit_function_does_not_hold_the_worker_slot() {
    let s = start(&[
        "--env",
        "APP_HANG_AT_EXIT=1",
        "--max-requests",
        "1",
        "--min-worker-lifetime",
        "0",
        "--worker-reload-mercy",
        "1",
    ]);
    let before = s.events("spawned").len();
    assert_eq!(text(&s, "/log?x"), "logged");
    // The worker retires after its request, hangs in atexit, and is ended
    // after the mercy; its slot gets a new worker.
    s.wait_logged(
        "is taking too much time to die...NO MERCY !!!",
        Duration::from_secs(10),
    );
    wait_until(
        Duration::from_secs(10),
        || s.events("respawned").len() + s.events("spawned").len() > before,
        || "the slot was not given a new worker".into(),
    );
}

#[test]
fn workers_and_total_requests_come_from_the_masters_table() {
    let s = start(&[]);
    for _ in 0..5 {
        assert_eq!(text(&s, "/log?x"), "logged");
    }
    // The master publishes its table once a second.
    let deadline = Instant::now() + Duration::from_secs(10);
    let v = loop {
        let v = get(s.http.unwrap(), "/workers").json();
        if v["total"].as_u64().unwrap() >= 5 {
            break v;
        }
        assert!(
            Instant::now() < deadline,
            "total_requests stayed at {}",
            v["total"]
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let spawned: std::collections::HashMap<u64, i64> = s
        .events("spawned")
        .iter()
        .map(|e| (e["worker"].as_u64().unwrap(), e["pid"].as_i64().unwrap()))
        .collect();
    let workers = v["workers"].as_array().unwrap();
    assert_eq!(workers.len(), 2, "{v}");
    let mut requests = 0;
    for w in workers {
        let id = w["id"].as_u64().unwrap();
        assert_eq!(w["pid"].as_i64(), spawned.get(&id).copied(), "{w}");
        assert!(
            ["idle", "busy"].contains(&w["status"].as_str().unwrap()),
            "{w}"
        );
        assert!(w["rss"].as_u64().unwrap() > 0, "{w}");
        assert_eq!(w["respawn_count"], 0);
        requests += w["requests"].as_u64().unwrap();
    }
    assert!(requests >= 5, "{v}");
    assert_eq!(v["apps"], serde_json::json!([1, 1]));
}

#[test]
fn caches_are_shared_by_the_workers() {
    let s = start(&[
        "--cache2",
        "name=shared,items=16,blocksize=64",
        "--cache",
        "4",
    ]);
    let a = s.http.unwrap();
    assert_eq!(text(&s, "/cache_set?greeting=hello"), "True");
    // cache_set does not replace.
    assert_eq!(text(&s, "/cache_set?greeting=again"), "None");
    // Every worker sees it: one asks while the other is busy, then the
    // busy one (the most recently idle afterwards) asks.
    let check = || {
        let v = get(a, "/cache_get?greeting").json();
        assert_eq!(v["value"], "hello", "{v}");
        assert_eq!(v["exists"], true);
        assert_eq!(v["keys"], serde_json::json!(["greeting"]));
        // The legacy cache (`cache = 4`) is the default one, and separate.
        assert_eq!(v["default"], serde_json::Value::Null);
        v["pid"].as_i64().unwrap()
    };
    on_both_workers(a, check);
    // Increments from both workers at once are all counted (the lock).
    let incs: Vec<_> = (0..20)
        .map(|_| std::thread::spawn(move || get(a, "/cache_inc").body))
        .collect();
    for i in incs {
        assert_eq!(i.join().unwrap(), b"True");
    }
    assert_eq!(text(&s, "/cache_num"), "20");
    assert_eq!(
        text(&s, "/cache_bad"),
        "no local uWSGI cache available named \"nope\""
    );
}

#[test]
fn a_stored_lru_cache_evicts_the_oldest_and_survives_a_restart() {
    let dir = tmpdir("cachestore");
    std::fs::write(dir.join("page.html"), "<p>hi</p>").unwrap();
    let spec = "name=shared,items=3,blocksize=64,purge_lru=1,store={dir}/c.store";
    let page = format!("shared {}", dir.join("page.html").display());
    let mut s = start_in(
        dir.clone(),
        &[
            "--stats",
            "127.0.0.1:0",
            "--cache2",
            spec,
            "--add-cache-item",
            "shared motd=welcome",
            "--load-file-in-cache",
            &page,
        ],
    );
    assert!(s.logged("creating a new cache store file"));
    let stored: Vec<_> = s
        .events("cache_preloaded")
        .iter()
        .map(|e| e["message"].clone())
        .collect();
    assert_eq!(stored.len(), 2, "{stored:?}");
    assert_eq!(stored[0], "[cache] stored \"motd\" in \"shared\"");
    let keys = |s: &Server| get(s.http.unwrap(), "/cache_get?motd").json()["keys"].clone();
    let page_key = dir.join("page.html").display().to_string();
    assert_eq!(keys(&s), serde_json::json!([page_key, "motd"]));
    assert_eq!(text(&s, "/cache_set?a=1"), "True");
    // motd was just read (keys() reads it): the page is the oldest now.
    assert_eq!(keys(&s), serde_json::json!([page_key, "a", "motd"]));
    assert_eq!(text(&s, "/cache_set?b=2"), "True");
    assert_eq!(
        s.events("cache_lru_purge")[0]["message"],
        "LRU item will be purged from cache \"shared\""
    );
    assert_eq!(keys(&s), serde_json::json!(["a", "b", "motd"]));
    // The stats show it as uWSGI's do.
    assert_eq!(
        get(s.http.unwrap(), "/cache_get?nothing").json()["value"],
        serde_json::Value::Null
    );
    let stats = s.stats();
    let c = &stats["caches"][0];
    assert_eq!(
        (c["name"].as_str(), c["max_items"].as_u64()),
        (Some("shared"), Some(3))
    );
    assert_eq!(
        (c["items"].as_u64(), c["full"].as_u64()),
        (Some(3), Some(1))
    );
    assert!(
        c["hits"].as_u64().unwrap() >= 3 && c["miss"].as_u64().unwrap() >= 1,
        "{c}"
    );
    // A reload keeps the items: every prototype maps the master's cache.
    s.signal(1);
    s.wait_event("reload_done", Duration::from_secs(30));
    assert_eq!(keys(&s), serde_json::json!(["a", "b", "motd"]));
    assert!(s.terminate().success());

    // A new instance finds them in the store.
    let mut again = start_in(dir.clone(), &["--cache2", spec]);
    assert!(again.logged("recovered cache from backing store file"));
    let v = get(again.http.unwrap(), "/cache_get?b").json();
    assert_eq!(
        (v["value"].clone(), v["keys"].clone()),
        (
            serde_json::json!("2"),
            serde_json::json!(["a", "b", "motd"])
        )
    );
    assert!(again.terminate().success());

    // A store made for another size is refused at startup, by name.
    let out = Command::new(bin())
        .args(["--http-socket", "127.0.0.1:0", "--wsgi-file"])
        .arg(apps().with_file_name("uwsgi_api.py"))
        .arg("--cache2")
        .arg(
            spec.replace("items=3", "items=4")
                .replace("{dir}", dir.to_str().unwrap()),
        )
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("invalid cache store file") && err.contains("store_delete"),
        "{err}"
    );
}

#[test]
fn rpc_functions_registered_at_import_are_called_in_every_worker() {
    let s = start(&[]);
    let a = s.http.unwrap();
    let check = || {
        let v = get(a, "/rpc").json();
        assert_eq!(v["hello"], "hi a,b", "{v}");
        // Run in the process that called it.
        assert_eq!(v["pid"].as_str().unwrap(), v["worker"].to_string());
        assert_eq!(v["missing"], serde_json::Value::Null);
        assert_eq!(v["names"], serde_json::json!(["hello", "pid"]));
        assert!(
            v["remote"].as_str().unwrap().contains("not supported"),
            "{v}"
        );
        v["worker"].as_i64().unwrap()
    };
    on_both_workers(a, check);
}

#[test]
fn a_shared_area_is_shared_by_the_workers() {
    let s = start(&["--sharedarea", "1"]);
    let a = s.http.unwrap();
    // Increments from both workers at once are all counted.
    let incs: Vec<_> = (0..20)
        .map(|_| std::thread::spawn(move || get(a, "/sa_inc").body))
        .collect();
    for i in incs {
        assert_eq!(i.join().unwrap(), b"ok");
    }
    let v = get(a, "/sa?hello").json();
    assert_eq!(v["count"], 20, "{v}");
    assert_eq!(
        (v["text"].as_str(), v["byte"].as_u64()),
        (Some("hello"), Some(7))
    );
    assert_eq!(v["view"], serde_json::json!([4096, 7]));
    let errors: Vec<&str> = v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e.as_str())
        .collect();
    assert_eq!(
        errors,
        [
            "error calling uwsgi_sharedarea_read()",
            "error calling uwsgi_sharedarea_read()",
            "error calling uwsgi_sharedarea_write()",
            "error calling uwsgi_sharedarea_unlock()",
        ]
    );
    // A size that is not one is refused at startup.
    let out = std::process::Command::new(bin())
        .args([
            "--http-socket",
            "127.0.0.1:0",
            "--sharedarea",
            "file=/tmp/x",
        ])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("sharedarea"));
}
