//! `rwsgi bundle`: writes the root filesystem of a `FROM scratch` container
//! for one app (DESIGN.md §6).
//!
//! 1. A traced run ([`trace`]) starts the app in this very binary, requests
//!    the warm-up paths, and records the modules imported and the files
//!    mapped.
//! 2. The ELF closure ([`elf`]) of the binary, of every mapped object and of
//!    every extension module adds what the loader needs (`DT_NEEDED`, the
//!    interpreter), whether or not the run happened to map it.
//! 3. The tree is written ([`tree`]): `/rwsgi`, the shared objects at their
//!    own paths (symlinks such as Debian's `/lib -> usr/lib` recreated), the
//!    standard-library modules compiled to sourceless `.pyc` (or zipped), the
//!    app in `/app` and its packages in `/app/packages`, `/app/rwsgi.ini`,
//!    `/etc/passwd` and `/etc/group` with `nobody`, and an empty `/tmp`.
//!    Nothing else: no shell, no other executable.
//!
//! The binary needs no environment inside the bundle: CPython finds its
//! standard library at its compiled-in prefix (`/usr`), which the bundle
//! keeps, and `/app/rwsgi.ini` names the app.

pub mod args;
pub mod elf;
pub mod trace;
pub mod tree;

use std::collections::BTreeSet;
use std::path::PathBuf;

use anyhow::Context;

/// Runs `rwsgi bundle ARGS`.
pub fn run(argv: &[String]) -> anyhow::Result<()> {
    if argv.iter().any(|a| a == "--help" || a == "-h") {
        print!("{}", args::USAGE);
        return Ok(());
    }
    let args = args::parse(argv).map_err(|e| anyhow::anyhow!("{e}\n\n{}", args::USAGE))?;
    let exe = crate::master::supervisor::self_exe().context("cannot find the rwsgi binary")?;
    if args.out.exists() && std::fs::read_dir(&args.out)?.next().is_some() {
        anyhow::bail!("{} exists and is not empty", args.out.display());
    }
    std::fs::create_dir_all(&args.out)?;
    let python = tree::Python::query(args.virtualenv.as_deref())?;
    let work = tempdir()?;
    eprintln!(
        "bundle: tracing {} (warm-up: {})",
        args.module,
        args.warmup.join(", ")
    );
    let traced = trace::run(&args, &exe, &work);
    let traced = match traced {
        Ok(t) => t,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&work);
            return Err(e);
        }
    };
    let mut modules: BTreeSet<PathBuf> = traced.modules.into_iter().collect();
    for name in &args.include_module {
        modules.extend(
            python
                .module_files(name)
                .with_context(|| format!("--include-module {name}"))?,
        );
    }
    let plan = tree::Plan {
        exe,
        modules,
        maps: traced.maps,
        python,
        args: args.clone(),
    };
    let report = tree::write(&plan, &work);
    let _ = std::fs::remove_dir_all(&work);
    let report = report?;
    report.print(&args.out);
    Ok(())
}

fn tempdir() -> std::io::Result<PathBuf> {
    let d = std::env::temp_dir().join(format!("rwsgi-bundle-{}", std::process::id()));
    std::fs::create_dir_all(&d)?;
    Ok(d)
}
