//! `%(name)` placeholder expansion (uWSGI `core/config.c`
//! `uwsgi_manage_placeholder`): the value of the first option or ini key with
//! that name. Unknown names are left as they are, as in uWSGI. Pure.

use super::sources::RawOption;

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
}
