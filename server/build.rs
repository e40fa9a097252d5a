//! Records which Python the binary is built against (DESIGN.md §9), so that
//! at startup the server can check that the interpreter it loaded is that
//! one, and can use it as `sys.executable` when no virtualenv is given.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=PYO3_PYTHON");
    let python = std::env::var("PYO3_PYTHON").unwrap_or_else(|_| "python3".into());
    let out = Command::new(&python)
        .args([
            "-c",
            "import sys; print(sys.executable); print('%d.%d.%d' % sys.version_info[:3]); print(sys.base_prefix)",
        ])
        .output();
    let (exe, version, prefix) = match out {
        Ok(o) if o.status.success() => {
            let text = String::from_utf8_lossy(&o.stdout).into_owned();
            let mut lines = text.lines().map(str::to_owned);
            (
                lines.next().unwrap_or_default(),
                lines.next().unwrap_or_default(),
                lines.next().unwrap_or_default(),
            )
        }
        _ => (python.clone(), String::new(), String::new()),
    };
    println!("cargo:rustc-env=RWSGI_BUILD_PYTHON={exe}");
    println!("cargo:rustc-env=RWSGI_BUILD_PYTHON_VERSION={version}");
    println!("cargo:rustc-env=RWSGI_BUILD_PYTHON_PREFIX={prefix}");
}
