//! The `rwsgi bundle` command line.

use std::path::PathBuf;

/// Which standard-library modules go into the bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stdlib {
    /// Only those the traced run imported (plus `--include-module`).
    Traced,
    /// All of it, without tests, idlelib, tkinter, ensurepip and the like.
    Full,
}

/// What to bundle.
#[derive(Debug, Clone)]
pub struct Args {
    /// `module[:callable]`.
    pub module: String,
    /// The virtualenv holding the app's packages.
    pub virtualenv: Option<PathBuf>,
    /// The app's directory (copied to `/app`).
    pub chdir: Option<PathBuf>,
    /// Extra `sys.path` entries for the traced run.
    pub pythonpath: Vec<PathBuf>,
    /// Where to write the root filesystem.
    pub out: PathBuf,
    /// Paths requested during the traced run.
    pub warmup: Vec<String>,
    /// Modules to include although the traced run did not import them.
    pub include_module: Vec<String>,
    /// Modules left out although the traced run imported them (for
    /// example `_ssl` and `_hashlib`, whose OpenSSL is 5 MiB, when the app
    /// does not need them at run time).
    pub exclude_module: Vec<String>,
    /// Files to include at their own paths.
    pub include_file: Vec<PathBuf>,
    /// Standard library mode.
    pub stdlib: Stdlib,
    /// Put the standard library in a deflated `python311.zip` (CPython
    /// imports from it; Debian's CPython has zlib built in).
    pub zip: bool,
}

/// The usage text.
pub const USAGE: &str =
    "usage: rwsgi bundle --module pkg.mod:callable --out DIR [--virtualenv DIR] [--chdir DIR]
                    [--pythonpath DIR]... [--warmup-url PATH]... [--include-module NAME]...
                    [--include-file PATH]... [--exclude-module NAME]... [--stdlib traced|full] [--zip]

Writes a root filesystem for a FROM scratch container: /rwsgi, the dynamic loader and the
shared objects it and the app load, the standard-library modules the app imports (as .pyc),
the app in /app and its packages in /app/packages, /app/rwsgi.ini, /etc/passwd and /etc/group
with nobody (65534), and /tmp. Run it as: /rwsgi /app/rwsgi.ini --http-socket :9090 ...
";

/// Parses the arguments after `bundle`.
pub fn parse(args: &[String]) -> Result<Args, String> {
    let mut module = None;
    let mut out = None;
    let mut a = Args {
        module: String::new(),
        virtualenv: None,
        chdir: None,
        pythonpath: Vec::new(),
        out: PathBuf::new(),
        warmup: Vec::new(),
        include_module: Vec::new(),
        include_file: Vec::new(),
        exclude_module: Vec::new(),
        stdlib: Stdlib::Traced,
        zip: false,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v.to_owned())),
            _ => (arg.as_str(), None),
        };
        if name == "--zip" {
            a.zip = true;
            continue;
        }
        let mut value = || {
            inline
                .clone()
                .or_else(|| it.next().cloned())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match name {
            "--module" | "-w" => module = Some(value()?),
            "--virtualenv" | "--home" | "-H" => a.virtualenv = Some(PathBuf::from(value()?)),
            "--chdir" => a.chdir = Some(PathBuf::from(value()?)),
            "--pythonpath" => a.pythonpath.push(PathBuf::from(value()?)),
            "--out" | "-o" => out = Some(PathBuf::from(value()?)),
            "--warmup-url" => a.warmup.push(value()?),
            "--include-module" => a.include_module.push(value()?),
            "--include-file" => a.include_file.push(PathBuf::from(value()?)),
            "--exclude-module" => a.exclude_module.push(value()?),
            "--stdlib" => {
                a.stdlib = match value()?.as_str() {
                    "traced" => Stdlib::Traced,
                    "full" => Stdlib::Full,
                    other => return Err(format!("--stdlib takes traced or full, not {other:?}")),
                }
            }
            other => return Err(format!("unknown bundle option {other:?}")),
        }
    }
    a.module = module.ok_or("--module is required")?;
    a.out = out.ok_or("--out is required")?;
    if a.warmup.is_empty() {
        a.warmup.push("/".into());
    }
    let cwd = std::env::current_dir().map_err(|e| e.to_string())?;
    let abs = |p: PathBuf| if p.is_absolute() { p } else { cwd.join(p) };
    a.virtualenv = a.virtualenv.map(abs);
    a.chdir = a.chdir.map(abs);
    a.out = abs(a.out);
    a.pythonpath = a.pythonpath.into_iter().map(abs).collect();
    a.include_file = a.include_file.into_iter().map(abs).collect();
    Ok(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses() {
        let a = parse(&v(&[
            "--module",
            "app:app",
            "--out=/x",
            "--stdlib",
            "full",
            "--zip",
            "--warmup-url",
            "/a",
        ]))
        .unwrap();
        assert_eq!(a.module, "app:app");
        assert_eq!(a.out, PathBuf::from("/x"));
        assert_eq!(a.stdlib, Stdlib::Full);
        assert!(a.zip);
        assert_eq!(a.warmup, vec!["/a"]);
        let a = parse(&v(&["--module", "m", "--out", "/o"])).unwrap();
        assert_eq!(a.warmup, vec!["/"]);
        assert!(parse(&v(&["--out", "/o"])).is_err());
        assert!(parse(&v(&["--module", "m", "--out", "/o", "--bogus"])).is_err());
        assert!(parse(&v(&["--module", "m", "--out", "/o", "--stdlib", "some"])).is_err());
    }
}
