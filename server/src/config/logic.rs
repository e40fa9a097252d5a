//! uWSGI's configuration logic blocks (`core/config.c` `uwsgi_opt_logic`,
//! the `uwsgi_logic_opt_*` functions): `if-env`, `if-not-env`, `if-exists`,
//! `if-not-exists`, `if-file`, `if-not-file`, `if-dir`, `if-not-dir`,
//! `if-opt`, `if-not-opt` … `endif`, and `for` … `endfor`.
//!
//! The options inside a block that holds are kept, with `%(_)` replaced by
//! the block's value (the variable's value, the path, the option's value,
//! the loop item); the others are dropped. As in uWSGI:
//! - `if-env = VAR` holds when `VAR` is set (even empty); `VAR=value` when
//!   it is set to exactly that. `if-not-env` is the opposite. An `env`
//!   option given earlier counts, since uWSGI sets those as it reads them.
//! - `if-opt` looks at options and placeholders given earlier.
//! - `for = a b c` repeats each option of the block once per
//!   space-separated item, option by option (uWSGI's order).
//! - `endif` and `endfor` end whichever block is open; a block left open
//!   runs to the end.
//!
//! Blocks do not nest in uWSGI (a second `if` replaces the first); here a
//! block inside another is an error, so it cannot silently mean something
//! else. Pure, apart from reading the environment and the file system.

use std::path::Path;

use super::sources::RawOption;
use crate::error::ConfigError;

/// What an open block does with the options inside it.
enum Block {
    /// Keep them, with `%(_)` set to this value.
    Keep(String),
    /// Drop them.
    Drop,
    /// Repeat each one for these items.
    For(Vec<String>),
}

/// Applies the blocks: the options that remain, in order, without the
/// `if-*`, `for` and `end*` lines.
pub fn apply(raw: Vec<RawOption>) -> Result<Vec<RawOption>, ConfigError> {
    if !raw.iter().any(|o| is_logic(&o.name)) {
        return Ok(raw);
    }
    let mut out: Vec<RawOption> = Vec::with_capacity(raw.len());
    let mut block: Option<Block> = None;
    for o in raw {
        let name = o.name.as_str();
        if name == "endif" || name == "endfor" {
            block = None;
            continue;
        }
        if is_logic(name) {
            if block.is_some() {
                return Err(ConfigError::Invalid {
                    name: o.name.clone(),
                    value: o.value.clone(),
                    reason: "logic blocks do not nest: end the open one first".into(),
                    origin: o.origin.clone(),
                });
            }
            block = Some(open(name, &o.value, &out));
            continue;
        }
        match &block {
            None => out.push(o),
            Some(Block::Drop) => {}
            Some(Block::Keep(v)) => out.push(with_value(o, v)),
            Some(Block::For(items)) => {
                for item in items {
                    out.push(with_value(o.clone(), item));
                }
            }
        }
    }
    Ok(out)
}

fn is_logic(name: &str) -> bool {
    name == "for" || (name.starts_with("if-") && condition(name).is_some())
}

/// The condition of an `if-*` name and whether it is negated.
fn condition(name: &str) -> Option<(&str, bool)> {
    let rest = name.strip_prefix("if-")?;
    let (what, negated) = match rest.strip_prefix("not-") {
        Some(w) => (w, true),
        None => (rest, false),
    };
    matches!(what, "env" | "exists" | "file" | "dir" | "opt").then_some((what, negated))
}

fn open(name: &str, value: &str, before: &[RawOption]) -> Block {
    if name == "for" {
        return Block::For(
            value
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect(),
        );
    }
    let Some((what, negated)) = condition(name) else {
        return Block::Drop;
    };
    // `NAME=value` compares; `NAME` alone asks whether it is set.
    let found = |lookup: &dyn Fn(&str) -> Option<String>| -> Option<String> {
        let (key, want) = match value.split_once('=') {
            Some((k, w)) => (k, Some(w)),
            None => (value, None),
        };
        let got = lookup(key);
        match (negated, got, want) {
            (false, Some(g), None) => Some(g),
            (false, Some(g), Some(w)) => (g == w).then_some(g),
            (false, None, _) => None,
            (true, None, _) => Some(String::new()),
            (true, Some(g), Some(w)) => (g != w).then_some(g),
            (true, Some(_), None) => None,
        }
    };
    let held = match what {
        "env" => found(&|k| env(k, before)),
        "opt" => found(&|k| {
            before
                .iter()
                .rev()
                .find(|o| o.name == k)
                .map(|o| o.value.clone())
        }),
        _ => {
            let p = Path::new(value);
            let is = match what {
                "exists" => p.exists(),
                "file" => p.is_file(),
                _ => p.is_dir(),
            };
            (is != negated).then(|| value.to_owned())
        }
    };
    held.map_or(Block::Drop, Block::Keep)
}

/// A variable as uWSGI would see it while reading: set by an earlier `env`
/// option, or by the environment.
fn env(key: &str, before: &[RawOption]) -> Option<String> {
    before
        .iter()
        .rev()
        .filter(|o| o.name == "env")
        .find_map(|o| {
            o.value
                .split_once('=')
                .filter(|(k, _)| *k == key)
                .map(|(_, v)| v.to_owned())
        })
        .or_else(|| std::env::var(key).ok())
}

fn with_value(mut o: RawOption, v: &str) -> RawOption {
    if o.value.contains("%(_)") {
        o.value = o.value.replace("%(_)", v);
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::sources::Origin;

    fn raw(pairs: &[(&str, &str)]) -> Vec<RawOption> {
        pairs
            .iter()
            .enumerate()
            .map(|(i, (n, v))| RawOption {
                spec: crate::config::options::lookup(n),
                name: (*n).to_owned(),
                value: (*v).to_owned(),
                origin: Origin::Arg(i),
            })
            .collect()
    }

    fn names(v: &[RawOption]) -> Vec<String> {
        v.iter()
            .map(|o| format!("{}={}", o.name, o.value))
            .collect()
    }

    #[test]
    fn if_blocks_keep_or_drop_and_fill_in_the_value() {
        let out = apply(raw(&[
            ("env", "RWSGI_LOGIC_A=8080"),
            ("if-env", "RWSGI_LOGIC_A"),
            ("http-socket", ":%(_)"),
            ("endif", ""),
            ("if-env", "RWSGI_LOGIC_A=9999"),
            ("processes", "9"),
            ("endif", ""),
            ("if-not-env", "RWSGI_LOGIC_UNSET_B"),
            ("processes", "2"),
            ("endif", ""),
            ("if-exists", "/"),
            ("chdir", "%(_)"),
            ("endif", ""),
            ("if-not-dir", "/"),
            ("threads", "4"),
            ("endif", ""),
            ("if-opt", "processes=2"),
            ("master", ""),
            ("endif", ""),
        ]))
        .unwrap();
        assert_eq!(
            names(&out),
            [
                "env=RWSGI_LOGIC_A=8080",
                "http-socket=:8080",
                "processes=2",
                "chdir=/",
                "master="
            ]
        );
    }

    #[test]
    fn for_repeats_each_option_and_blocks_do_not_nest() {
        let out = apply(raw(&[
            ("for", "a b"),
            ("env", "X_%(_)=1"),
            ("endfor", ""),
            ("module", "m"),
        ]))
        .unwrap();
        assert_eq!(names(&out), ["env=X_a=1", "env=X_b=1", "module=m"]);
        let err = apply(raw(&[("if-exists", "/"), ("if-dir", "/")])).unwrap_err();
        assert!(err.to_string().contains("do not nest"), "{err}");
        // Options that only look like logic pass through.
        let out = apply(raw(&[("if-unknown", "x")])).unwrap();
        assert_eq!(out.len(), 1);
    }
}
