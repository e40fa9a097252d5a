//! Mules: a real app hands work to real mule processes forked by the
//! prototype (`tests/apps/mules_app.py`, `@mulefunc`), a mule runs its own
//! script first (`tests/apps/mule_script.py`), farms share a queue.

use std::path::Path;
use std::time::Duration;

use crate::harness::*;

fn wait_lines(dir: &Path, name: &str, n: usize) -> Vec<String> {
    wait_file_lines(dir, name, n, Duration::from_secs(10))
}

#[test]
fn mules_run_their_script_functions_and_messages_and_come_back() {
    let app = apps().with_file_name("mules_app.py");
    let script = apps().with_file_name("mule_script.py");
    let mut s = Server::start_in(
        tmpdir("mules"),
        &[
            "--http-socket",
            "127.0.0.1:0",
            "--wsgi-file",
            app.to_str().unwrap(),
            "--master",
            "--processes",
            "2",
            "--mule",
            script.to_str().unwrap(),
            "--mules",
            "2",
            "--farm",
            "pool:2,3",
            "--env",
            "MULE_OUT={dir}",
        ],
        true,
    );
    let dir = s.dir.clone();
    let addr = s.http.unwrap();
    let spawned = s.wait_events("mule_spawned", 3, Duration::from_secs(10));
    assert!(s.logged("created farm 1 name: pool mules:2,3"));
    assert!(s.logged("spawned uWSGI mule 2 (pid: "));
    // Mule 1 ran its script as __main__; @mule(3) ran in mule 3.
    assert_eq!(wait_lines(&dir, "script", 1), ["script 1"]);
    assert_eq!(wait_lines(&dir, "brain", 1), ["started 3"]);
    // In a worker: no mule id, no farm.
    let info = get(addr, "/info").json();
    assert_eq!(info["mule_id"], 0);
    assert_eq!(info["in_farm"], serde_json::Value::Null);
    // @mulefunc: any mule; @mulefunc(2): mule 2; @mulefunc("pool"): 2 or 3.
    for _ in 0..3 {
        get(addr, "/any");
    }
    let any = wait_lines(&dir, "any", 3);
    assert!(
        any.iter()
            .all(|l| ["hi 1", "hi 2", "hi 3"].contains(&l.as_str())),
        "{any:?}"
    );
    for _ in 0..3 {
        get(addr, "/second");
    }
    assert_eq!(wait_lines(&dir, "second", 3), ["two 2", "two 2", "two 2"]);
    for _ in 0..4 {
        get(addr, "/farm");
    }
    let pooled = wait_lines(&dir, "pooled", 4);
    assert!(
        pooled.iter().all(|l| l == "f 2" || l == "f 3"),
        "{pooled:?}"
    );
    // What cannot be sent says why.
    let bad = get(addr, "/bad").json();
    let errors: Vec<&str> = bad["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert_eq!(errors.len(), 4, "{bad}");
    assert!(errors[0].contains("invalid mule number: 9"), "{errors:?}");
    assert!(errors[1].contains("unknown farm: nofarm"), "{errors:?}");
    assert!(errors[2].contains("only in a mule"), "{errors:?}");
    assert!(errors[3].contains("at most 65536 bytes"), "{errors:?}");
    // uWSGI signals for mules: mule 2, a mule of the farm, every mule, and
    // a timer for any mule.
    get(addr, "/raise/30");
    assert_eq!(wait_lines(&dir, "sig30", 1), ["30 2"]);
    get(addr, "/raise/31");
    let farm = wait_lines(&dir, "sig31", 1);
    assert!(farm[0] == "31 2" || farm[0] == "31 3", "{farm:?}");
    get(addr, "/raise/32");
    let mut every = wait_lines(&dir, "sig32", 3);
    every.sort();
    assert_eq!(every, ["32 1", "32 2", "32 3"]);
    let ticks = wait_lines(&dir, "tick", 2);
    assert!(
        ticks.iter().all(|t| ["1", "2", "3"].contains(&t.as_str())),
        "{ticks:?}"
    );
    // A mule that dies is respawned, and serves again.
    let mule2 = spawned
        .iter()
        .find(|e| e["mule"] == 2)
        .and_then(|e| e["pid"].as_i64())
        .unwrap();
    s.kill_pid(mule2 as i32, libc::SIGKILL);
    s.wait_logged(
        &format!("OOOPS mule 2 (pid: {mule2}) crippled...trying respawn..."),
        Duration::from_secs(5),
    );
    s.wait_events("mule_spawned", 4, Duration::from_secs(5));
    get(addr, "/second");
    assert_eq!(wait_lines(&dir, "second", 4)[3], "two 2");
    // No mule outlives the instance.
    let pids: Vec<i64> = s
        .events("mule_spawned")
        .iter()
        .filter_map(|e| e["pid"].as_i64())
        .collect();
    assert!(s.terminate().success());
    // A zombie waiting for whoever reaps orphans here does not count.
    let running = |p: &i64| {
        std::fs::read_to_string(format!("/proc/{p}/stat")).is_ok_and(|st| {
            st.rsplit(')')
                .next()
                .is_some_and(|r| !r.trim_start().starts_with('Z'))
        })
    };
    wait_until(
        Duration::from_secs(5),
        || !pids.iter().any(running),
        || format!("a mule outlived the instance: {pids:?}"),
    );
}

#[test]
fn a_mule_waits_for_its_signals_and_a_worker_may_not() {
    let dir = tmpdir("signalwait");
    std::fs::write(
        dir.join("app.py"),
        "import os, uwsgi\n\
         OUT = os.environ['MULE_OUT']\n\
         def handled(num):\n\
         \x20   with open(os.path.join(OUT, 'handled'), 'a') as f:\n\
         \x20       f.write('%d\\n' % num)\n\
         uwsgi.register_signal(30, 'mule1', handled)\n\
         uwsgi.register_signal(31, 'mule1', handled)\n\
         def application(environ, start_response):\n\
         \x20   start_response('200 OK', [])\n\
         \x20   if environ['PATH_INFO'] == '/wait':\n\
         \x20       try:\n\
         \x20           uwsgi.signal_wait()\n\
         \x20       except ValueError as e:\n\
         \x20           return [str(e).encode()]\n\
         \x20   uwsgi.signal(int(environ['PATH_INFO'][1:]))\n\
         \x20   return [b'raised']\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("waiter.py"),
        "import os, uwsgi\n\
         OUT = os.environ['MULE_OUT']\n\
         while True:\n\
         \x20   n = uwsgi.signal_wait(31)\n\
         \x20   with open(os.path.join(OUT, 'waited'), 'a') as f:\n\
         \x20       f.write('%d %d\\n' % (n, uwsgi.signal_received()))\n",
    )
    .unwrap();
    let s = Server::start_in(
        dir.clone(),
        &[
            "--http-socket",
            "127.0.0.1:0",
            "--wsgi-file",
            "{dir}/app.py",
            "--mule",
            "{dir}/waiter.py",
            "--env",
            "MULE_OUT={dir}",
        ],
        true,
    );
    let addr = s.http.unwrap();
    s.wait_events("mule_spawned", 1, Duration::from_secs(10));
    // Signal 30: its handler runs in the waiting mule, the wait goes on.
    assert_eq!(get(addr, "/30").body, b"raised");
    assert_eq!(wait_lines(&dir, "handled", 1), ["30"]);
    std::thread::sleep(Duration::from_millis(300));
    assert!(file_lines(&dir, "waited").is_empty());
    // Signal 31 ends the wait.
    assert_eq!(get(addr, "/31").body, b"raised");
    assert_eq!(wait_lines(&dir, "waited", 1), ["31 31"]);
    assert_eq!(wait_lines(&dir, "handled", 2), ["30", "31"]);
    let refused = String::from_utf8(get(addr, "/wait").body).unwrap();
    assert!(refused.contains("waits in mules"), "{refused}");
}
