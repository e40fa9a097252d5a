//! Readers for the three places options come from, in uWSGI's order of
//! application (`core/uwsgi.c` `uwsgi_setup`): `UWSGI_*` environment variables
//! first, then the command line, with ini files expanded where they are named
//! (`--ini`, or a bare `*.ini` argument). The result is an ordered list of
//! [`RawOption`]s that remember where each came from, so errors can point at
//! `file.ini:12`.
//!
//! ini dialect (uWSGI `core/ini.c`): `[uwsgi]` section by default
//! (`file.ini:name` picks another), `;` and `#` start full-line comments only,
//! the first `=` splits, quotes are kept, a bare key is an empty value (true
//! for a flag). Magic variables `%d %p %s %n %e %c %%` are substituted on the
//! raw text (`core/utils.c` `magic_sub`); `%(name)` placeholders are expanded
//! later ([`super::expand`]).

use std::fmt;
use std::path::{Path, PathBuf};

use super::options::{self, Kind, Spec};
use crate::error::ConfigError;

/// Where an option was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The command line, at this argument index.
    Arg(usize),
    /// An ini file, at this line.
    Ini {
        /// The file.
        file: PathBuf,
        /// 1-based line number.
        line: usize,
    },
    /// An environment variable.
    Env(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Arg(i) => write!(f, "command line argument {i}"),
            Origin::Ini { file, line } => write!(f, "{}:{line}", file.display()),
            Origin::Env(name) => write!(f, "environment variable {name}"),
        }
    }
}

/// One option as the user gave it.
#[derive(Debug, Clone)]
pub struct RawOption {
    /// The option, or `None` for an ini key that is not an option: a
    /// placeholder for `%(name)`, or a typo (decided in `expand`).
    pub spec: Option<&'static Spec>,
    /// The name as written.
    pub name: String,
    /// The value as written (`""` for a bare flag).
    pub value: String,
    /// Where.
    pub origin: Origin,
}

/// What the command line asks for besides options.
#[derive(Debug, Default)]
pub struct Collected {
    /// The options, in order of application.
    pub options: Vec<RawOption>,
    /// `--help` was given.
    pub help: bool,
    /// `--version` was given.
    pub version: bool,
}

/// uWSGI's environment variables that are not options (`parse_sys_envs`).
const NOT_OPTIONS: &[&str] = &[
    "UWSGI_RELOADS",
    "UWSGI_VASSALS_DIR",
    "UWSGI_EMPEROR_FD",
    "UWSGI_BROODLORD_NUM",
    "UWSGI_EMPEROR_FD_CONFIG",
    "UWSGI_EMPEROR_PROXY",
    "UWSGI_JAIL_PID",
    "UWSGI_ORIGINAL_PROC_NAME",
];

/// Collects options from the environment and the command line (without the
/// program name).
pub fn collect(
    args: &[String],
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Collected, ConfigError> {
    let mut out = Collected::default();
    for (key, value) in env {
        let Some(rest) = key.strip_prefix("UWSGI_") else {
            continue;
        };
        if NOT_OPTIONS.contains(&key.as_str()) || rest.is_empty() {
            continue;
        }
        let name = rest.to_ascii_lowercase().replace('_', "-");
        let origin = Origin::Env(key.clone());
        match options::lookup(&name) {
            Some(spec) => push(&mut out.options, spec, &name, value, origin)?,
            None => {
                return Err(ConfigError::Unknown {
                    origin,
                    suggestion: options::suggest(&name),
                    name,
                });
            }
        }
    }
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        let origin = Origin::Arg(i + 1);
        if arg == "--help" || arg == "-h" {
            out.help = true;
        } else if arg == "--version" {
            out.version = true;
        } else if let Some(long) = arg.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_owned())),
                None => (long, None),
            };
            let spec = options::lookup(name).ok_or_else(|| ConfigError::Unknown {
                name: name.to_owned(),
                suggestion: options::suggest(name),
                origin: origin.clone(),
            })?;
            let value = take_value(spec, inline, args, &mut i, &origin)?;
            push(&mut out.options, spec, name, value, origin)?;
        } else if let Some(short) = arg.strip_prefix('-').filter(|s| !s.is_empty()) {
            let mut chars = short.chars();
            let c = chars.next().unwrap_or('-');
            let spec = options::lookup_short(c).ok_or_else(|| ConfigError::Unknown {
                name: format!("-{c}"),
                suggestion: None,
                origin: origin.clone(),
            })?;
            let rest: String = chars.collect();
            let inline = (!rest.is_empty()).then_some(rest);
            let value = take_value(spec, inline, args, &mut i, &origin)?;
            push(&mut out.options, spec, spec.name, value, origin)?;
        } else if let Some(format) = ConfigFormat::of_path(arg) {
            read_file(format, arg, &mut out.options)?;
        } else {
            return Err(ConfigError::Invalid {
                name: "argument".into(),
                value: arg.clone(),
                reason: "not an option nor an .ini, .yml/.yaml or .json file".into(),
                origin,
            });
        }
        i += 1;
    }
    Ok(out)
}

/// The value of a command-line option: inline (`--x=v`), the next argument,
/// or none for a flag.
fn take_value(
    spec: &Spec,
    inline: Option<String>,
    args: &[String],
    i: &mut usize,
    origin: &Origin,
) -> Result<String, ConfigError> {
    if let Some(v) = inline {
        return Ok(v);
    }
    if spec.kind == Kind::Flag {
        return Ok(String::new());
    }
    *i += 1;
    args.get(*i).cloned().ok_or_else(|| ConfigError::Invalid {
        name: spec.name.into(),
        value: String::new(),
        reason: "needs a value".into(),
        origin: origin.clone(),
    })
}

/// Adds an option; `ini` is expanded in place.
fn push(
    out: &mut Vec<RawOption>,
    spec: &'static Spec,
    name: &str,
    value: String,
    origin: Origin,
) -> Result<(), ConfigError> {
    if let Some(format) = ConfigFormat::of_option(spec.name) {
        return read_file(format, &value, out);
    }
    if spec.name == "ini-paste" || spec.name == "ini-paste-logged" {
        // uWSGI's `uwsgi_opt_ini_paste`: the file's [uwsgi] section, then
        // its app through PasteDeploy (`paste = config:<absolute path>`).
        read_file(ConfigFormat::Ini, &value, out)?;
        let path = std::path::absolute(&value).unwrap_or_else(|_| PathBuf::from(&value));
        let derived = |name: &str, value: String| RawOption {
            spec: options::lookup(name),
            name: name.to_owned(),
            value,
            origin: origin.clone(),
        };
        out.push(derived("paste", format!("config:{}", path.display())));
        if spec.name == "ini-paste-logged" {
            out.push(derived("paste-logger", String::new()));
        }
        return Ok(());
    }
    out.push(RawOption {
        spec: Some(spec),
        name: name.to_owned(),
        value,
        origin,
    });
    Ok(())
}

/// The configuration file formats uWSGI reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConfigFormat {
    Ini,
    Yaml,
    Json,
}

impl ConfigFormat {
    const ALL: [(ConfigFormat, &'static str, &'static [&'static str]); 3] = [
        (ConfigFormat::Ini, "ini", &[".ini"]),
        (ConfigFormat::Yaml, "yaml", &[".yml", ".yaml"]),
        (ConfigFormat::Json, "json", &[".json", ".js"]),
    ];

    /// The format an option (`ini`, `yaml`, `json`) reads.
    fn of_option(name: &str) -> Option<ConfigFormat> {
        Self::ALL
            .iter()
            .find(|(_, n, _)| *n == name)
            .map(|(f, _, _)| *f)
    }

    /// The format a positional `file[:section]` argument is in, by its
    /// ending.
    fn of_path(arg: &str) -> Option<ConfigFormat> {
        let path = split_section(arg).0;
        Self::ALL
            .iter()
            .find(|(_, _, ends)| ends.iter().any(|e| path.ends_with(e)))
            .map(|(f, _, _)| *f)
    }
}

/// `file[:section]`: the section after the last colon, when what comes
/// before it is a file of a known kind; else the whole is the file.
fn split_section(arg: &str) -> (&str, &str) {
    let known = |p: &str| {
        [".ini", ".yml", ".yaml", ".json", ".js"]
            .iter()
            .any(|e| p.ends_with(e))
    };
    match arg.rsplit_once(':') {
        Some((p, s)) if known(p) => (p, s),
        _ => (arg, "uwsgi"),
    }
}

/// Reads `path[:section]` in `format` and appends its options.
fn read_file(format: ConfigFormat, arg: &str, out: &mut Vec<RawOption>) -> Result<(), ConfigError> {
    let (path, section) = split_section(arg);
    let path = PathBuf::from(path);
    let text = std::fs::read_to_string(&path).map_err(|e| ConfigError::File {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    let text = magic(&text, &path);
    let pairs = match format {
        ConfigFormat::Ini => ini_pairs(&text, section),
        ConfigFormat::Yaml => super::formats::yaml_pairs(&text, section),
        ConfigFormat::Json => {
            super::formats::json_pairs(&text, section).map_err(|reason| ConfigError::File {
                path: path.clone(),
                reason,
            })?
        }
    };
    let Some(pairs) = pairs else {
        tracing::warn!(section, file = %path.display(), "config section not found");
        return Ok(());
    };
    for (line, key, value) in pairs {
        let origin = Origin::Ini {
            file: path.clone(),
            line,
        };
        match options::lookup(&key) {
            Some(spec) => push(out, spec, &key, value, origin)?,
            None => out.push(RawOption {
                spec: None,
                name: key,
                value,
                origin,
            }),
        }
    }
    Ok(())
}

/// The (line, key, value) entries of an ini file's `section`; `None` when
/// the file has no such section.
fn ini_pairs(text: &str, section: &str) -> Option<Vec<super::formats::Entry>> {
    let mut pairs = Vec::new();
    let mut in_section = false;
    let mut found = false;
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim_matches(|c| c == ' ' || c == '\t' || c == '\r');
        if line.is_empty() || line.starts_with(';') || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            in_section = name == section;
            found |= in_section;
            continue;
        }
        if !in_section {
            continue;
        }
        let (key, value) = match line.split_once('=') {
            Some((k, v)) => (k.trim(), v.trim()),
            None => (line, ""),
        };
        pairs.push((n + 1, key.to_owned(), value.to_owned()));
    }
    found.then_some(pairs)
}

/// uWSGI's magic `%X` variables, applied to the raw ini text. `%(` is kept
/// for placeholder expansion; other unknown escapes become empty, as in
/// uWSGI (so a strftime format needs `%%`).
fn magic(text: &str, path: &Path) -> String {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let dir = abs
        .parent()
        .map(|p| format!("{}/", p.display()))
        .unwrap_or_default();
    let file_name = abs
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = abs
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ext = abs
        .extension()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let parent_name = abs
        .parent()
        .and_then(|p| p.file_name())
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.peek().copied() {
            Some('(') | None => out.push('%'),
            Some(next) => {
                chars.next();
                match next {
                    'd' => out.push_str(&dir),
                    'p' => out.push_str(&abs.display().to_string()),
                    's' => out.push_str(&file_name),
                    'n' => out.push_str(&stem),
                    'e' => out.push_str(&ext),
                    'c' => out.push_str(&parent_name),
                    '%' => out.push('%'),
                    _ => {}
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn long_short_inline_and_flags() {
        let c = collect(
            &args(&[
                "--http",
                ":9090",
                "-w",
                "app:app",
                "--master",
                "--processes=4",
                "-p2",
            ]),
            vec![],
        )
        .unwrap();
        let got: Vec<_> = c
            .options
            .iter()
            .map(|o| (o.spec.unwrap().name, o.value.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("http", ":9090"),
                ("module", "app:app"),
                ("master", ""),
                ("processes", "4"),
                ("processes", "2"),
            ]
        );
    }

    #[test]
    fn env_comes_first() {
        let c = collect(
            &args(&["--processes", "3"]),
            vec![
                ("UWSGI_PROCESSES".into(), "16".into()),
                ("UWSGI_RELOADS".into(), "1".into()),
                ("PATH".into(), "/bin".into()),
            ],
        )
        .unwrap();
        let got: Vec<_> = c.options.iter().map(|o| o.value.as_str()).collect();
        assert_eq!(got, vec!["16", "3"]);
        assert_eq!(c.options[0].origin, Origin::Env("UWSGI_PROCESSES".into()));
    }

    #[test]
    fn unknown_names_get_suggestions() {
        let e = collect(&args(&["--proceses", "3"]), vec![]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "command line argument 1: unknown option \"proceses\" (did you mean \"processes\"?)"
        );
        assert!(collect(&args(&["--socket"]), vec![]).is_err());
        assert!(collect(&args(&["stray"]), vec![]).is_err());
    }

    #[test]
    fn ini_dialect() {
        let dir = std::env::temp_dir().join(format!("rwsgi-ini-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("app.ini");
        std::fs::write(
            &file,
            "; comment\n[other]\nprocesses = 9\n[uwsgi]\n# comment\nmodule = app:app ; kept\n\
             master\nchdir = %d\nenv = A=\"q\"\nstamp = %%Y%Q\n",
        )
        .unwrap();
        let c = collect(&args(&[file.to_str().unwrap()]), vec![]).unwrap();
        let got: Vec<_> = c
            .options
            .iter()
            .map(|o| (o.name.as_str(), o.value.clone()))
            .collect();
        assert_eq!(got[0], ("module", "app:app ; kept".to_string()));
        assert_eq!(got[1], ("master", String::new()));
        assert_eq!(got[2], ("chdir", format!("{}/", dir.display())));
        assert_eq!(got[3], ("env", "A=\"q\"".to_string()));
        // Not an option: kept as a placeholder candidate; magic `%Q` is eaten.
        assert_eq!(got[4], ("stamp", "%Y".to_string()));
        assert!(c.options[4].spec.is_none());
        assert_eq!(
            c.options[0].origin,
            Origin::Ini {
                file: file.clone(),
                line: 6
            }
        );
        let c = collect(
            &args(&["--ini", &format!("{}:other", file.display())]),
            vec![],
        )
        .unwrap();
        assert_eq!(c.options.len(), 1);
        assert_eq!(c.options[0].value, "9");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
