//! Writing the bundle's tree, and the size report.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};

use super::args::{Args, Stdlib};
use super::elf;

/// Where the Python in use keeps things.
#[derive(Debug, Clone)]
pub struct Python {
    /// The interpreter to compile with (same version as the embedded one).
    pub exe: PathBuf,
    /// The standard library directory.
    pub stdlib: PathBuf,
    /// Directories of installed packages (the virtualenv's site-packages).
    pub site: Vec<PathBuf>,
    /// `X.Y`.
    pub version: String,
}

const QUERY: &str = "import json, sys, sysconfig, site
p = sysconfig.get_paths()
print(json.dumps({'stdlib': p['stdlib'], 'site': sorted({p['purelib'], p['platlib']}),
                  'version': '%d.%d' % sys.version_info[:2]}))";

const MODULE_FILES: &str = "import importlib.util, json, os, sys
spec = importlib.util.find_spec(sys.argv[1])
files = []
if spec is None:
    sys.exit('no module named ' + sys.argv[1])
if spec.submodule_search_locations:
    for d in spec.submodule_search_locations:
        for root, dirs, names in os.walk(d):
            dirs[:] = [x for x in dirs if x != '__pycache__']
            files += [os.path.join(root, n) for n in names if n.endswith(('.py', '.so'))]
elif spec.origin and os.path.isabs(spec.origin):
    files.append(spec.origin)
print(json.dumps(files))";

const COMPILE: &str = "import json, os, py_compile, sys, tempfile, zipfile
job = json.load(sys.stdin)
mode = py_compile.PycInvalidationMode.UNCHECKED_HASH
for src, dst in job['compile']:
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    py_compile.compile(src, cfile=dst, dfile=src, doraise=True, invalidation_mode=mode)
z = job.get('zip')
if z:
    with zipfile.ZipFile(z['path'], 'w', zipfile.ZIP_DEFLATED) as zf, tempfile.TemporaryDirectory() as tmp:
        for src, arc in z['entries']:
            out = os.path.join(tmp, 'x.pyc')
            py_compile.compile(src, cfile=out, dfile=src, doraise=True, invalidation_mode=mode)
            zf.write(out, arc)";

impl Python {
    /// Asks the virtualenv's interpreter (or the one rwsgi was built for).
    pub fn query(venv: Option<&Path>) -> anyhow::Result<Python> {
        let exe = match venv {
            Some(v) => v.join("bin/python"),
            None => PathBuf::from(crate::prototype::interp::BUILD_PYTHON),
        };
        let out = Command::new(&exe)
            .args(["-c", QUERY])
            .output()
            .with_context(|| format!("cannot run {}", exe.display()))?;
        if !out.status.success() {
            bail!(
                "{} failed: {}",
                exe.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        let s = |k: &str| v[k].as_str().map(PathBuf::from).context("bad python query");
        Ok(Python {
            stdlib: s("stdlib")?,
            site: v["site"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(PathBuf::from))
                        .collect()
                })
                .unwrap_or_default(),
            version: v["version"].as_str().unwrap_or("3").to_owned(),
            exe,
        })
    }

    /// The files of a module (every file of a package).
    pub fn module_files(&self, name: &str) -> anyhow::Result<Vec<PathBuf>> {
        let out = Command::new(&self.exe)
            .args(["-c", MODULE_FILES, name])
            .output()?;
        if !out.status.success() {
            bail!("{}", String::from_utf8_lossy(&out.stderr).trim());
        }
        let files: Vec<String> = serde_json::from_slice(&out.stdout)?;
        Ok(files.into_iter().map(PathBuf::from).collect())
    }

    fn zip_name(&self) -> String {
        format!("python{}.zip", self.version.replace('.', ""))
    }
}

/// Everything the tree is made from.
#[derive(Debug)]
pub struct Plan {
    /// This binary.
    pub exe: PathBuf,
    /// Module files the traced run imported (plus `--include-module`).
    pub modules: BTreeSet<PathBuf>,
    /// Files the traced run mapped.
    pub maps: Vec<PathBuf>,
    /// The Python.
    pub python: Python,
    /// The command line.
    pub args: Args,
}

/// Size by category.
#[derive(Debug, Default)]
pub struct Report {
    sizes: BTreeMap<&'static str, (u64, usize)>,
}

impl Report {
    fn add(&mut self, category: &'static str, bytes: u64) {
        let e = self.sizes.entry(category).or_default();
        e.0 += bytes;
        e.1 += 1;
    }

    /// Prints the report.
    pub fn print(&self, out: &Path) {
        let total: u64 = self.sizes.values().map(|(b, _)| b).sum();
        println!("bundle written to {}", out.display());
        for (cat, (bytes, files)) in &self.sizes {
            println!(
                "  {cat:<28} {:>9.2} MiB  {files:>5} files",
                *bytes as f64 / 1048576.0
            );
        }
        println!("  {:<28} {:>9.2} MiB", "total", total as f64 / 1048576.0);
    }
}

/// Removes `.` and `..` lexically.
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(n) => out.push(n),
            _ => {}
        }
    }
    out
}

/// `root` + the absolute `p`.
fn under(root: &Path, p: &Path) -> PathBuf {
    root.join(p.strip_prefix("/").unwrap_or(p))
}

/// Copies a host file into the tree at the same path, recreating the
/// symlinks met on the way (so `/lib64/ld-linux-x86-64.so.2` keeps working
/// through Debian's `/lib64 -> usr/lib64`).
fn install(
    host: &Path,
    root: &Path,
    mode: u32,
    depth: u32,
    report: &mut Report,
    cat: &'static str,
) -> anyhow::Result<()> {
    if depth > 16 {
        bail!("too many symlinks at {}", host.display());
    }
    let comps: Vec<Component> = host
        .components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .collect();
    let mut cur = PathBuf::from("/");
    for (i, c) in comps.iter().enumerate() {
        cur.push(c);
        let meta = std::fs::symlink_metadata(&cur).with_context(|| format!("{}", cur.display()))?;
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&cur)?;
            let dst = under(root, &cur);
            if std::fs::symlink_metadata(&dst).is_err() {
                if let Some(parent) = dst.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                std::os::unix::fs::symlink(&target, &dst)?;
            }
            let base = if target.is_absolute() {
                target
            } else {
                cur.parent().unwrap_or(Path::new("/")).join(target)
            };
            let rest: PathBuf = comps.get(i + 1..).unwrap_or_default().iter().collect();
            return install(
                &normalize(&base.join(rest)),
                root,
                mode,
                depth + 1,
                report,
                cat,
            );
        }
    }
    let dst = under(root, host);
    if dst.exists() {
        return Ok(());
    }
    if let Some(parent) = dst.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::copy(host, &dst).with_context(|| format!("copying {}", host.display()))?;
    std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(mode))?;
    report.add(cat, std::fs::metadata(&dst)?.len());
    Ok(())
}

/// Standard-library parts never bundled in full mode.
const STDLIB_SKIP: &[&str] = &[
    "site-packages",
    "dist-packages",
    "test",
    "tests",
    "idlelib",
    "tkinter",
    "turtledemo",
    "ensurepip",
    "lib2to3",
    "__pycache__",
    "pydoc_data",
    "venv",
];

/// Walks a directory, skipping some directory names.
fn walk(dir: &Path, skip: &[&str]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            match e.file_type() {
                Ok(t) if t.is_dir() => {
                    let skipped = skip.contains(&name.as_str()) || name.starts_with("config-");
                    if !skipped {
                        todo.push(p);
                    }
                }
                Ok(t) if t.is_file() => out.push(p),
                _ => {}
            }
        }
    }
    out.sort();
    out
}

fn is_ext(p: &Path) -> bool {
    p.extension().is_some_and(|e| e == "so")
}

/// Writes the tree.
pub fn write(plan: &Plan, work: &Path) -> anyhow::Result<Report> {
    let root = &plan.args.out;
    let py = &plan.python;
    let mut report = Report::default();
    let mut compile: Vec<(PathBuf, PathBuf)> = Vec::new();
    let mut zip: Vec<(PathBuf, String)> = Vec::new();
    let mut elf_roots: Vec<PathBuf> = vec![plan.exe.clone()];
    let mut data_maps: Vec<PathBuf> = Vec::new();
    let mut elf_maps: Vec<PathBuf> = Vec::new();
    let mut packages: BTreeSet<(PathBuf, String)> = BTreeSet::new();
    let excluded = |f: &Path| {
        plan.args.exclude_module.iter().any(|name| {
            f.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.split('.').next() == Some(name.as_str()))
                || f.components().any(|c| c.as_os_str() == name.as_str())
        })
    };

    // The binary, and beside it the Python host it loads (plugin.rs).
    let host = crate::plugin::library_path(&plan.exe);
    for (src, name, mode) in [
        (&plan.exe, "rwsgi", 0o755),
        (&host, crate::plugin::LIBRARY, 0o644),
    ] {
        let dst = root.join(name);
        std::fs::copy(src, &dst).with_context(|| format!("cannot copy {}", src.display()))?;
        // Symbols only serve debuggers and backtraces; the bundle has
        // neither. The dynamic symbol table, which loading needs, stays.
        if Command::new("strip")
            .arg("--strip-all")
            .arg(&dst)
            .status()
            .is_ok_and(|s| s.success())
        {
            eprintln!("bundle: stripped /{name}");
        }
        std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(mode))?;
        report.add(
            "rwsgi binary and Python host",
            std::fs::metadata(&dst)?.len(),
        );
    }
    elf_roots.push(host.clone());

    for m in &plan.maps {
        if excluded(m) {
            continue;
        }
        if m == &plan.exe
            || m == &host
            || m.starts_with(work)
            || m.starts_with("/dev")
            || m.starts_with("/proc")
        {
            continue;
        }
        if elf::read(m).is_some() {
            elf_maps.push(m.clone());
        } else if m.exists() {
            data_maps.push(m.clone());
        }
    }

    // Python modules, sorted by where they live.
    let stdlib = &py.stdlib;
    let in_site = |f: &Path| py.site.iter().find(|s| f.starts_with(s)).cloned();
    let mut stdlib_files: Vec<PathBuf> = Vec::new();
    let excluded_exts: Vec<PathBuf> = plan
        .modules
        .iter()
        .filter(|f| excluded(f) && is_ext(f))
        .cloned()
        .collect();
    for f in plan.modules.iter().filter(|f| !excluded(f)) {
        if let Some(site) = in_site(f) {
            if let Some(Component::Normal(top)) = f
                .strip_prefix(&site)
                .ok()
                .and_then(|r| r.components().next())
            {
                packages.insert((site.clone(), top.to_string_lossy().into_owned()));
            }
        } else if let Some(dir) = plan.args.pythonpath.iter().find(|d| f.starts_with(d)) {
            if let Some(Component::Normal(top)) =
                f.strip_prefix(dir).ok().and_then(|r| r.components().next())
            {
                packages.insert((dir.clone(), top.to_string_lossy().into_owned()));
            }
        } else if plan.args.chdir.as_ref().is_some_and(|d| f.starts_with(d)) {
            // The whole app directory is copied below.
        } else if f.starts_with(stdlib) {
            stdlib_files.push(f.clone());
        } else {
            eprintln!(
                "bundle: not bundled (outside the stdlib, the virtualenv and the app): {}",
                f.display()
            );
        }
    }
    if plan.args.stdlib == Stdlib::Full {
        stdlib_files.extend(walk(stdlib, STDLIB_SKIP));
    }
    for f in stdlib_files {
        if is_ext(&f) {
            elf_roots.push(f);
        } else if f.extension().is_some_and(|e| e == "py") {
            let rel = f.strip_prefix(stdlib).unwrap_or(&f).with_extension("pyc");
            if plan.args.zip {
                zip.push((f.clone(), rel.display().to_string()));
            } else {
                compile.push((f.clone(), under(root, &stdlib.join(rel))));
            }
        }
    }

    // The app's packages, whole, with their metadata.
    let pkg_root = root.join("app/packages");
    for (site, top) in &packages {
        let src = site.join(top);
        let files = if src.is_dir() {
            walk(&src, &["__pycache__"])
        } else {
            vec![src.clone()]
        };
        for f in files {
            let rel = f.strip_prefix(site).unwrap_or(&f).to_path_buf();
            copy_python_file(
                &f,
                &pkg_root.join(&rel),
                &mut compile,
                &mut elf_roots,
                &mut report,
                "packages",
            )?;
        }
        copy_dist_info(site, top, &pkg_root, &mut report)?;
    }

    // The app itself.
    if let Some(dir) = &plan.args.chdir {
        for f in walk(
            dir,
            &[".venv", "venv", "__pycache__", ".git", "node_modules"],
        ) {
            let rel = f.strip_prefix(dir).unwrap_or(&f).to_path_buf();
            copy_python_file(
                &f,
                &root.join("app").join(&rel),
                &mut compile,
                &mut elf_roots,
                &mut report,
                "app",
            )?;
        }
    }

    // The ELF closure. Mapped objects that only excluded modules need
    // (OpenSSL for `_ssl`, say) are left out with them.
    let dropped = closure(excluded_exts).0;
    let canonical = |p: &PathBuf| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone());
    let roots = elf_roots.into_iter().chain(
        elf_maps
            .into_iter()
            .filter(|m| !dropped.contains_key(&canonical(m))),
    );
    let (objects, interps) = closure(roots);
    for interp in interps {
        install(
            &interp,
            root,
            0o755,
            0,
            &mut report,
            "loader and shared objects",
        )?;
    }
    let copied_elsewhere = |o: &Path| {
        o == plan.exe
            || o == host
            || py.site.iter().any(|s| o.starts_with(s))
            || plan.args.pythonpath.iter().any(|d| o.starts_with(d))
            || plan.args.chdir.as_ref().is_some_and(|d| o.starts_with(d))
    };
    for obj in objects.values().flatten().filter(|o| !copied_elsewhere(o)) {
        let cat = if obj.starts_with(stdlib) {
            "python extension modules"
        } else {
            "loader and shared objects"
        };
        install(obj, root, 0o644, 0, &mut report, cat)?;
    }
    for m in data_maps {
        install(&m, root, 0o644, 0, &mut report, "other mapped files")?;
    }
    for f in &plan.args.include_file {
        install(f, root, 0o644, 0, &mut report, "included files")?;
    }

    // Compile.
    let job = serde_json::json!({
        "compile": compile.iter().map(|(s, d)| [s.display().to_string(), d.display().to_string()]).collect::<Vec<_>>(),
        "zip": (!zip.is_empty()).then(|| serde_json::json!({
            "path": under(root, &stdlib.parent().unwrap_or(Path::new("/usr/lib")).join(py.zip_name())).display().to_string(),
            "entries": zip.iter().map(|(s, a)| [s.display().to_string(), a.clone()]).collect::<Vec<_>>(),
        })),
    });
    if let Some(parent) = stdlib.parent() {
        std::fs::create_dir_all(under(root, parent))?;
    }
    let mut child = Command::new(&py.exe)
        .args(["-c", COMPILE])
        .stdin(Stdio::piped())
        .spawn()
        .context("cannot run python to compile modules")?;
    child
        .stdin
        .take()
        .context("no stdin")?
        .write_all(job.to_string().as_bytes())?;
    if !child.wait()?.success() {
        bail!("compiling Python modules failed");
    }
    for (src, dst) in &compile {
        let cat = if src.starts_with(stdlib) {
            "python standard library"
        } else if dst.starts_with(&pkg_root) {
            "packages"
        } else {
            "app"
        };
        if let Ok(m) = std::fs::metadata(dst) {
            std::fs::set_permissions(dst, std::fs::Permissions::from_mode(0o644))?;
            report.add(cat, m.len());
        }
    }
    if !zip.is_empty() {
        let z = under(
            root,
            &stdlib
                .parent()
                .unwrap_or(Path::new("/usr/lib"))
                .join(py.zip_name()),
        );
        std::fs::set_permissions(&z, std::fs::Permissions::from_mode(0o644))?;
        report.add("python standard library", std::fs::metadata(&z)?.len());
    }

    // The rest of a root filesystem.
    std::fs::create_dir_all(root.join("etc"))?;
    std::fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n",
    )?;
    std::fs::write(root.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n")?;
    for d in ["tmp", "proc", "dev"] {
        std::fs::create_dir_all(root.join(d))?;
    }
    std::fs::set_permissions(root.join("tmp"), std::fs::Permissions::from_mode(0o1777))?;
    let module = plan.args.module.as_str();
    std::fs::create_dir_all(root.join("app"))?;
    std::fs::write(
        root.join("app/rwsgi.ini"),
        format!(
            "[uwsgi]\nchdir = /app\nmodule = {module}\npythonpath = /app/packages\nneed-app = true\n"
        ),
    )?;
    Ok(report)
}

/// The ELF objects `roots` need, transitively (keyed by canonical path, with
/// every path they are reached by), and their interpreters.
fn closure(
    roots: impl IntoIterator<Item = PathBuf>,
) -> (BTreeMap<PathBuf, BTreeSet<PathBuf>>, BTreeSet<PathBuf>) {
    let mut seen = BTreeMap::new();
    let mut interps = BTreeSet::new();
    let mut queue: VecDeque<PathBuf> = roots.into_iter().collect();
    while let Some(obj) = queue.pop_front() {
        let canonical = std::fs::canonicalize(&obj).unwrap_or_else(|_| obj.clone());
        // Every name an object is reached by is kept (the soname symlink
        // and the file it points to); its needs are read once.
        let names: &mut BTreeSet<PathBuf> = seen.entry(canonical).or_default();
        let first = names.is_empty();
        names.insert(obj.clone());
        if !first {
            continue;
        }
        let Some(needs) = elf::read(&obj) else {
            continue;
        };
        if let Some(interp) = needs.interp {
            interps.insert(PathBuf::from(interp));
        }
        for name in &needs.needed {
            match elf::resolve(name, &needs.runpath, &obj) {
                Some(p) => queue.push_back(p),
                None => eprintln!(
                    "bundle: {} needs {name}, which was not found",
                    obj.display()
                ),
            }
        }
    }
    (seen, interps)
}

/// Copies one file of the app or a package: `.py` is compiled to a
/// sourceless `.pyc`, `.pyc` and caches are skipped, extension modules are
/// copied and added to the ELF closure, anything else is copied as data.
fn copy_python_file(
    src: &Path,
    dst: &Path,
    compile: &mut Vec<(PathBuf, PathBuf)>,
    elf_roots: &mut Vec<PathBuf>,
    report: &mut Report,
    cat: &'static str,
) -> anyhow::Result<()> {
    match src.extension().and_then(|e| e.to_str()) {
        Some("py") => compile.push((src.to_path_buf(), dst.with_extension("pyc"))),
        Some("pyc") | Some("pyo") => {}
        _ => {
            if let Some(parent) = dst.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::copy(src, dst)?;
            std::fs::set_permissions(dst, std::fs::Permissions::from_mode(0o644))?;
            report.add(cat, std::fs::metadata(dst)?.len());
            if is_ext(src) {
                elf_roots.push(src.to_path_buf());
            }
        }
    }
    Ok(())
}

/// Copies the `*.dist-info` directories whose RECORD lists files of `top`,
/// so `importlib.metadata` still answers for the package.
fn copy_dist_info(
    site: &Path,
    top: &str,
    pkg_root: &Path,
    report: &mut Report,
) -> anyhow::Result<()> {
    let Ok(entries) = std::fs::read_dir(site) else {
        return Ok(());
    };
    let stem = top.trim_end_matches(".py");
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".dist-info") {
            continue;
        }
        let record = std::fs::read_to_string(e.path().join("RECORD")).unwrap_or_default();
        let owns = record
            .lines()
            .any(|l| l.starts_with(&format!("{stem}/")) || l.starts_with(&format!("{stem}.py,")));
        if !owns {
            continue;
        }
        for f in walk(&e.path(), &[]) {
            let dst = pkg_root.join(f.strip_prefix(site).unwrap_or(&f));
            if dst.exists() {
                continue;
            }
            if let Some(parent) = dst.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::copy(&f, &dst)?;
            std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(0o644))?;
            report.add("packages", std::fs::metadata(&dst)?.len());
        }
    }
    Ok(())
}
