//! Other ways uWSGI configurations load an app: PasteDeploy (`paste`,
//! `ini-paste`, `ini-paste-logged`, as Pyramid apps are deployed) and the
//! `import` / `shared-import` modules.

use std::path::Path;
use std::time::Duration;

use crate::harness::*;

/// A PasteDeploy app factory and two modules that record where they were
/// imported.
fn write_app(dir: &Path) {
    std::fs::write(
        dir.join("pasteapp.py"),
        r#"import json, logging, os, sys

log = logging.getLogger("pasteapp")

def pid_of(suffix):
    return [m.PID for n, m in list(sys.modules.items()) if n.endswith(suffix)][0]

def make_app(global_config, **settings):
    def app(environ, start_response):
        log.info("served %s", environ["PATH_INFO"])
        body = json.dumps({
            "greeting": settings["greeting"],
            "here": global_config["here"],
            "worker": os.getpid(),
            "imported": pid_of("side_mod"),
            "shared": pid_of("shared_mod"),
        }).encode()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]
    return app
"#,
    )
    .unwrap();
    for m in ["side_mod", "shared_mod"] {
        std::fs::write(
            dir.join(format!("{m}.py")),
            "import os\nPID = os.getpid()\n",
        )
        .unwrap();
    }
    std::fs::write(
        dir.join("production.ini"),
        "[app:main]\n\
         use = call:pasteapp:make_app\n\
         greeting = hello from paste\n\
         \n\
         [uwsgi]\n\
         pythonpath = %d\n\
         import = %dside_mod.py\n\
         shared-import = shared_mod\n\
         \n\
         [loggers]\nkeys = root\n\
         [handlers]\nkeys = file\n\
         [formatters]\nkeys = plain\n\
         [logger_root]\nlevel = INFO\nhandlers = file\n\
         [handler_file]\nclass = FileHandler\nargs = ('%(here)s/app.log',)\nformatter = plain\n\
         [formatter_plain]\nformat = %(name)s: %(message)s\n",
    )
    .unwrap();
}

fn start(dir: &Path, extra: &[&str]) -> Server {
    let venv = venv();
    let ini = dir.join("production.ini");
    let mut args = vec![
        "--http-socket",
        "127.0.0.1:0",
        "--virtualenv",
        venv.to_str().unwrap(),
        "--processes",
        "2",
        "--ini-paste-logged",
        ini.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    Server::start_in(dir.to_path_buf(), &args, true)
}

#[test]
fn ini_paste_logged_loads_the_app_and_its_logging_with_the_imports() {
    let dir = tmpdir("paste");
    write_app(&dir);
    let s = start(&dir, &[]);
    let v = get(s.http.unwrap(), "/first").json();
    assert_eq!(v["greeting"], "hello from paste");
    assert_eq!(v["here"], dir.to_str().unwrap());
    // Both imports ran once, in the prototype, before the workers forked.
    assert_eq!(v["imported"], v["shared"]);
    assert_ne!(v["imported"], v["worker"]);
    assert!(s.logged(&format!(
        "Loading paste environment: config:{}",
        dir.join("production.ini").display()
    )));
    // The ini file's logging configuration took the app's log line.
    wait_in_file(
        &dir.join("app.log"),
        "pasteapp: served /first",
        Duration::from_secs(5),
    );
}

#[test]
fn with_lazy_apps_import_runs_in_each_worker_and_shared_import_once() {
    let dir = tmpdir("paste-lazy");
    write_app(&dir);
    let s = start(&dir, &["--lazy-apps"]);
    let v = get(s.http.unwrap(), "/").json();
    assert_eq!(v["greeting"], "hello from paste");
    assert_eq!(v["imported"], v["worker"]);
    assert_ne!(v["shared"], v["worker"]);
}

#[test]
fn a_paste_app_that_does_not_load_is_reported() {
    let dir = tmpdir("paste-bad");
    write_app(&dir);
    let ini = dir.join("production.ini");
    let text = std::fs::read_to_string(&ini).unwrap();
    std::fs::write(
        &ini,
        text.replace("call:pasteapp:make_app", "call:nowhere:make_app"),
    )
    .unwrap();
    let mut s = Server::start_in(
        dir.clone(),
        &[
            "--http-socket",
            "127.0.0.1:0",
            "--virtualenv",
            venv().to_str().unwrap(),
            "--ini-paste",
            ini.to_str().unwrap(),
            "--need-app",
        ],
        false,
    );
    let status = s.wait_exit(Duration::from_secs(30));
    assert_eq!(status.code(), Some(22));
    assert!(s.logged("ModuleNotFoundError: No module named 'nowhere'"));
    assert!(s.logged("*** no app loaded. GAME OVER ***"));
}
