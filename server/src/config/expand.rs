//! `%(name)` placeholder expansion (uWSGI `core/config.c`
//! `uwsgi_manage_placeholder`): the value of the first option or ini key with
//! that name. Unknown names are left as they are, as in uWSGI. Pure.
//!
//! Also `set` and `set-placeholder` (uWSGI `core/uwsgi.c`
//! `uwsgi_opt_set_placeholder`): `set = KEY=VALUE` is the option `KEY` when
//! there is one (so `-S processes=4` is `--processes 4`), otherwise a
//! placeholder; `set-placeholder` is always a placeholder, and one nothing
//! refers to is not an error (an unknown plain ini key is, as a typo).

use super::options;
use super::sources::RawOption;
use crate::error::ConfigError;

/// Turns each `set`/`set-placeholder` into the option or placeholder it
/// names, in place, so the logic blocks and the placeholders see them where
/// they were written. A placeholder keeps the `set-placeholder` spec (the
/// configuration skips it) and takes `KEY` as its name.
pub fn setters(options: &mut [RawOption]) -> Result<(), ConfigError> {
    for o in options.iter_mut() {
        let Some(spec) = o
            .spec
            .filter(|s| matches!(s.name, "set" | "set-placeholder"))
        else {
            continue;
        };
        let Some((key, value)) = o.value.split_once('=') else {
            return Err(ConfigError::Invalid {
                name: o.name.clone(),
                value: o.value.clone(),
                reason: "must be KEY=VALUE".into(),
                origin: o.origin.clone(),
            });
        };
        let key = key.trim();
        let option = (spec.name == "set").then(|| options::lookup(key)).flatten();
        o.spec = option.or_else(|| options::lookup("set-placeholder"));
        (o.name, o.value) = (key.to_owned(), value.to_owned());
    }
    Ok(())
}

/// Expands placeholders in every value, in place. Returns the indices of the
/// non-option keys that some value referenced (they were placeholders, not
/// typos).
pub fn placeholders(options: &mut [RawOption]) -> Vec<usize> {
    let table: Vec<(String, String)> = options
        .iter()
        .map(|o| (o.name.clone(), o.value.clone()))
        .collect();
    let mut used = Vec::new();
    for o in options.iter_mut() {
        if !o.value.contains("%(") {
            continue;
        }
        let mut out = String::with_capacity(o.value.len());
        let mut rest = o.value.as_str();
        while let Some(start) = rest.find("%(") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            match after.find(')') {
                Some(end) => {
                    let name = &after[..end];
                    match table.iter().position(|(n, _)| n == name) {
                        Some(i) => {
                            out.push_str(&table[i].1);
                            used.push(i);
                        }
                        None => out.push_str(&rest[start..start + 3 + end]),
                    }
                    rest = &after[end + 1..];
                }
                None => {
                    out.push_str(&rest[start..]);
                    rest = "";
                }
            }
        }
        out.push_str(rest);
        o.value = out;
    }
    used
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::sources::Origin;

    fn raw(name: &str, value: &str) -> RawOption {
        RawOption {
            spec: crate::config::options::lookup(name),
            name: name.into(),
            value: value.into(),
            origin: Origin::Arg(0),
        }
    }

    #[test]
    fn expands_first_definition_and_keeps_unknown() {
        let mut o = vec![
            raw("base", "/srv/app"),
            raw("base", "/other"),
            raw("chdir", "%(base)/src"),
            raw("log-format", "%(addr) %(base)"),
            raw("env", "X=%(unclosed"),
        ];
        let used = placeholders(&mut o);
        assert_eq!(o[2].value, "/srv/app/src");
        assert_eq!(o[3].value, "%(addr) /srv/app");
        assert_eq!(o[4].value, "X=%(unclosed");
        assert_eq!(used, vec![0, 0]);
    }

    #[test]
    fn set_names_an_option_or_a_placeholder() {
        let mut o = vec![
            raw("set", "processes=4"),
            raw("set", "base=/srv=x"),
            raw("set-placeholder", "processes=9"),
            raw("chdir", "%(base)"),
        ];
        setters(&mut o).unwrap();
        assert_eq!(o[0].spec.unwrap().name, "processes");
        assert_eq!(
            (o[0].name.as_str(), o[0].value.as_str()),
            ("processes", "4")
        );
        assert_eq!(o[1].spec.unwrap().name, "set-placeholder");
        assert_eq!(
            (o[1].name.as_str(), o[1].value.as_str()),
            ("base", "/srv=x")
        );
        assert_eq!(o[2].spec.unwrap().name, "set-placeholder");
        placeholders(&mut o);
        assert_eq!(o[3].value, "/srv=x");

        let mut bad = vec![raw("set-ph", "novalue")];
        let err = setters(&mut bad).unwrap_err().to_string();
        assert!(err.contains("KEY=VALUE"), "{err}");
    }
}
