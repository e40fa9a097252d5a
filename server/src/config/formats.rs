//! uWSGI's other configuration file formats, read into the same (line,
//! key, value) entries as an ini section:
//!
//! - YAML, as uWSGI's built-in reader takes it (`core/yaml.c`, the
//!   parser used without libyaml): the `uwsgi:` block (or another section),
//!   one `key: value` per line, values verbatim; a key given twice is an
//!   option given twice; `#` starts a comment anywhere on a line; the block
//!   ends at a line indented no deeper than its name, or at a list or
//!   inline collection.
//! - JSON (`core/json.c`): `{"uwsgi": {"key": value, ...}}`, where a value
//!   is a string, a number, `true`/`false` (`1`/`0`), or an array of those
//!   (the option given once per element). The keys keep their order.

/// One option from a file: (1-based line, or 0 where there are no lines;
/// key; value).
pub type Entry = (usize, String, String);

/// Entries of `section`; `None` when there is no such block.
pub fn yaml_pairs(text: &str, section: &str) -> Option<Vec<Entry>> {
    let mut pairs = Vec::new();
    let mut in_section = false;
    let mut found = false;
    let mut current_depth = 0usize;
    for (n, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or_default();
        let line = line.trim_end_matches([' ', '\t', '\r']);
        if line.is_empty() {
            continue;
        }
        let depth: usize = line
            .chars()
            .take_while(|c| *c == ' ' || *c == '\t')
            .map(|c| if c == '\t' { 8 } else { 1 })
            .sum();
        if depth <= current_depth {
            current_depth = depth;
            if in_section {
                break;
            }
        } else if !in_section {
            continue;
        }
        let key = line.trim_start_matches([' ', '\t']);
        if key.starts_with(['-', '[', '{']) {
            if in_section {
                break;
            }
            continue;
        }
        if !in_section {
            if key.split(':').next() == Some(section) && key.contains(':') {
                in_section = true;
                found = true;
            }
            continue;
        }
        let Some((k, v)) = key.split_once(": ").or_else(|| key.split_once(":\t")) else {
            break;
        };
        pairs.push((n + 1, k.trim_end().to_owned(), v.trim().to_owned()));
    }
    found.then_some(pairs)
}

/// Entries of `section`; `None` when there is no such object, `Err` when
/// the text is not JSON or a value is not one uWSGI takes.
pub fn json_pairs(text: &str, section: &str) -> Result<Option<Vec<Entry>>, String> {
    let doc: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))?;
    let Some(block) = doc.get(section) else {
        return Ok(None);
    };
    let block = block
        .as_object()
        .ok_or_else(|| format!("\"{section}\" is not an object"))?;
    let scalar = |key: &str, v: &serde_json::Value| -> Result<String, String> {
        Ok(match v {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Bool(b) => if *b { "1" } else { "0" }.to_owned(),
            _ => {
                return Err(format!(
                    "\"{key}\": a value must be a string, number or boolean"
                ));
            }
        })
    };
    let mut pairs = Vec::new();
    for (key, value) in block {
        match value {
            serde_json::Value::Array(items) => {
                for item in items {
                    pairs.push((0, key.clone(), scalar(key, item)?));
                }
            }
            v => pairs.push((0, key.clone(), scalar(key, v)?)),
        }
    }
    Ok(Some(pairs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_as_uwsgi_reads_it() {
        let text = "\
other:
  processes: 9
uwsgi:
  socket: /run/app.sock   # the socket
  processes: 4
  env: A=1
  env: B=2
  master: true
next:
  processes: 7
";
        let pairs = yaml_pairs(text, "uwsgi").unwrap();
        let kv: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(_, k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            kv,
            [
                ("socket", "/run/app.sock"),
                ("processes", "4"),
                ("env", "A=1"),
                ("env", "B=2"),
                ("master", "true")
            ]
        );
        assert_eq!(pairs[0].0, 4);
        assert_eq!(yaml_pairs(text, "next").unwrap().len(), 1);
        assert_eq!(yaml_pairs(text, "missing"), None);
        // A list ends the block.
        let list = "uwsgi:\n  processes: 2\n  - x\n  master: true\n";
        assert_eq!(yaml_pairs(list, "uwsgi").unwrap().len(), 1);
    }

    #[test]
    fn json_as_uwsgi_reads_it() {
        let text = r#"{"uwsgi": {"socket": "/run/app.sock", "processes": 4, "master": true,
            "env": ["A=1", "B=2"], "vacuum": false}}"#;
        let pairs = json_pairs(text, "uwsgi").unwrap().unwrap();
        let kv: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(_, k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            kv,
            [
                ("socket", "/run/app.sock"),
                ("processes", "4"),
                ("master", "1"),
                ("env", "A=1"),
                ("env", "B=2"),
                ("vacuum", "0")
            ]
        );
        assert_eq!(json_pairs(text, "other").unwrap(), None);
        assert!(json_pairs("{", "uwsgi").is_err());
        assert!(json_pairs(r#"{"uwsgi": {"a": {"b": 1}}}"#, "uwsgi").is_err());
    }
}
