//! The spooler: tasks spooled by a real app (`tests/apps/spooler_app.py`,
//! with `uwsgidecorators`' `@spool`) run in real spooler processes forked
//! by the prototype.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::harness::*;

fn start(extra: &[&str]) -> Server {
    let app = apps().with_file_name("spooler_app.py");
    let mut args = vec![
        "--http-socket",
        "127.0.0.1:0",
        "--wsgi-file",
        app.to_str().unwrap(),
        "--master",
        "--processes",
        "2",
        "--spooler",
        "{dir}/spool",
        "--spooler-external",
        "{dir}/ext",
        "--spooler-frequency",
        "1",
        "--stats",
        "127.0.0.1:0",
        "--env",
        "SPOOL_OUT={dir}",
    ];
    args.extend_from_slice(extra);
    Server::start_in(tmpdir("spooler"), &args, true)
}

/// The stats server's `spoolers` list.
fn spoolers(s: &Server) -> serde_json::Value {
    s.stats()["spoolers"].clone()
}

fn call(s: &Server, path: &str) -> serde_json::Value {
    let r = get(s.http.unwrap(), path);
    assert_eq!(r.status, 200, "{path}");
    r.json()
}

#[test]
fn spooled_tasks_run_in_the_spooler_process() {
    let s = start(&[]);
    let dir = s.dir.clone();
    let spool = std::fs::canonicalize(dir.join("spool")).unwrap();
    s.wait_logged(
        &format!("spawned the uWSGI spooler on dir {}", spool.display()),
        Duration::from_secs(5),
    );
    let info = call(&s, "/info");
    let pid = info["pid"].as_i64().unwrap();
    assert!(pid > 0, "{info}");
    assert_eq!(info["pids"], serde_json::json!([pid]));
    assert_eq!(info["i_am"], serde_json::Value::Null);

    // @spool with keyword arguments: runs once, in the spooler (worker id 0),
    // and the task file goes.
    let file = call(&s, "/mail")["file"].as_str().unwrap().to_owned();
    assert!(
        file.starts_with(&format!("{}/uwsgi_spoolfile_on_", spool.display())),
        "{file}"
    );
    assert_eq!(
        wait_file_lines(&dir, "mail", 1, Duration::from_secs(10)),
        ["a@b.c True 0"]
    );
    s.wait_logged("done with task uwsgi_spoolfile_on_", Duration::from_secs(5));
    assert!(s.logged(&format!(
        "[spooler {} pid: {pid}] managing request",
        spool.display()
    )));
    assert!(s.logged("[spooler] written "));
    wait_until(
        Duration::from_secs(5),
        || !Path::new(&file).exists(),
        || format!("{file} was not removed"),
    );

    // The stats list the spooler process (uWSGI's `spoolers`).
    let listed = spoolers(&s);
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(listed[0]["dir"], spool.display().to_string());
    assert_eq!(listed[0]["pid"], pid);
    assert!(listed[0]["tasks"].as_u64().unwrap() >= 1, "{listed}");
    assert_eq!(listed[0]["respawns"], 0);

    // pass_arguments: the function's own arguments, pickled.
    call(&s, "/resize");
    assert_eq!(
        wait_file_lines(&dir, "resize", 1, Duration::from_secs(10)),
        ["/img.png 300"]
    );
    // A body of 100 KB, past the 64 KiB of the arguments.
    call(&s, "/body");
    assert_eq!(
        wait_file_lines(&dir, "body", 1, Duration::from_secs(10)),
        ["100000 b'\\x00\\x01\\x00\\x01'"]
    );
    // A priority subdirectory.
    let prio = call(&s, "/prio")["file"].as_str().unwrap().to_owned();
    assert!(
        prio.starts_with(&format!("{}/5/", spool.display())),
        "{prio}"
    );
    wait_file_lines(&dir, "mail", 2, Duration::from_secs(10));
    // SPOOL_RETRY runs it again at the next scans, until SPOOL_OK.
    call(&s, "/flaky");
    wait_file_lines(&dir, "flaky", 3, Duration::from_secs(15));
    // `at`: not before its time.
    let t = Instant::now();
    call(&s, "/later");
    let later = wait_file_lines(&dir, "mail", 3, Duration::from_secs(15));
    assert_eq!(later[2], "later True 0");
    assert!(t.elapsed() >= Duration::from_secs(2), "{:?}", t.elapsed());

    // spooler-external: written there, not run here; read back.
    let ext = call(&s, "/external");
    let ext_file = ext["file"].as_str().unwrap();
    assert!(Path::new(ext_file).exists());
    assert_eq!(ext["task"]["x"], "y");
    assert_eq!(ext["task"]["spooler_task_name"], ext_file);
    // What cannot be spooled says why.
    let bad = call(&s, "/bad");
    let errors = bad["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 3, "{bad}");
    assert!(errors[0].as_str().unwrap().contains("priority"), "{bad}");
    assert!(
        errors[1].as_str().unwrap().contains("unable to spool"),
        "{bad}"
    );
    assert!(errors[2].as_str().unwrap().contains("64 KiB"), "{bad}");

    // A uWSGI signal for the spooler runs in the spooler process.
    call(&s, "/raise40");
    assert_eq!(
        wait_file_lines(&dir, "sig40", 1, Duration::from_secs(10)),
        ["40 True"]
    );

    // A task that raises: the traceback, and it stays to run again.
    call(&s, "/fail");
    wait_file_lines(&dir, "failing", 2, Duration::from_secs(10));
    assert!(s.logged("RuntimeError: this task fails"));
    assert_eq!(call(&s, "/info")["jobs"].as_array().unwrap().len(), 1);
}

#[test]
fn a_task_past_spooler_harakiri_is_killed_and_the_spooler_respawned() {
    let s = start(&["--spooler-harakiri", "1", "--spooler-max-tasks", "2"]);
    let dir = s.dir.clone();
    s.wait_logged("spawned the uWSGI spooler on dir", Duration::from_secs(5));
    let first = call(&s, "/info")["pid"].as_i64().unwrap();
    // Two quick tasks: then the process is recycled.
    call(&s, "/mail");
    call(&s, "/resize");
    wait_file_lines(&dir, "resize", 1, Duration::from_secs(10));
    s.wait_logged(
        "maximum number of tasks reached (2) recycling ...",
        Duration::from_secs(10),
    );
    s.wait_logged(
        "OOOPS the spooler is no more...trying respawn...",
        Duration::from_secs(5),
    );
    // A task that sleeps 30 s is killed after one.
    call(&s, "/slow");
    wait_file_lines(&dir, "slow", 1, Duration::from_secs(10));
    s.wait_logged("*** HARAKIRI ON THE SPOOLER (pid: ", Duration::from_secs(5));
    wait_until(
        Duration::from_secs(10),
        || {
            let now = call(&s, "/info")["pid"].as_i64().unwrap();
            now > 0 && now != first && s.events("spooler_spawned").len() >= 3
        },
        || "no new spooler".into(),
    );
    assert!(spoolers(&s)[0]["respawns"].as_u64().unwrap() >= 2);
    // Requests were served all along.
    assert_eq!(get(s.http.unwrap(), "/info").status, 200);
}

#[test]
fn several_spooler_processes_run_each_task_once() {
    let s = start(&["--spooler-processes", "2"]);
    let dir = s.dir.clone();
    s.wait_events("spooler_spawned", 2, Duration::from_secs(10));
    call(&s, "/many");
    wait_file_lines(&dir, "mail", 20, Duration::from_secs(20));
    // Time for a task to run twice, if it could.
    std::thread::sleep(Duration::from_millis(1500));
    let mut done = file_lines(&dir, "mail");
    done.sort();
    done.dedup();
    assert_eq!(done.len(), 20, "{done:?}");
    assert_eq!(file_lines(&dir, "mail").len(), 20);
    let listed = spoolers(&s);
    let tasks: u64 = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["tasks"].as_u64().unwrap())
        .sum();
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
    assert_eq!(tasks, 20, "{listed}");
}
