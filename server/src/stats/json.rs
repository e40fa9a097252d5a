//! JSON the way uWSGI's stats server writes it: tab-indented, `"key":value`
//! with no space, no trailing newline; or minified. Key order is kept
//! (serde_json's `preserve_order`).

use std::io::{self, Write};

use serde::Serialize;
use serde_json::ser::Formatter;

/// serde_json's pretty layout with a tab and no space after colons.
#[derive(Debug, Default)]
struct Tabs {
    indent: usize,
    has_value: bool,
}

impl Tabs {
    fn newline<W: ?Sized + Write>(&self, w: &mut W) -> io::Result<()> {
        w.write_all(b"\n")?;
        for _ in 0..self.indent {
            w.write_all(b"\t")?;
        }
        Ok(())
    }
}

impl Formatter for Tabs {
    fn begin_array<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.indent += 1;
        self.has_value = false;
        w.write_all(b"[")
    }

    fn end_array<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.indent -= 1;
        if self.has_value {
            self.newline(w)?;
        }
        w.write_all(b"]")
    }

    fn begin_array_value<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        if !first {
            w.write_all(b",")?;
        }
        self.newline(w)
    }

    fn end_array_value<W: ?Sized + Write>(&mut self, _w: &mut W) -> io::Result<()> {
        self.has_value = true;
        Ok(())
    }

    fn begin_object<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.indent += 1;
        self.has_value = false;
        w.write_all(b"{")
    }

    fn end_object<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.indent -= 1;
        if self.has_value {
            self.newline(w)?;
        }
        w.write_all(b"}")
    }

    fn begin_object_key<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        if !first {
            w.write_all(b",")?;
        }
        self.newline(w)
    }

    fn begin_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b":")
    }

    fn end_object_value<W: ?Sized + Write>(&mut self, _w: &mut W) -> io::Result<()> {
        self.has_value = true;
        Ok(())
    }
}

/// Serialises `v`, pretty (tabs) or minified.
pub fn to_bytes(v: &serde_json::Value, minified: bool) -> Vec<u8> {
    if minified {
        return serde_json::to_vec(v).unwrap_or_default();
    }
    let mut out = Vec::with_capacity(4096);
    let mut ser = serde_json::Serializer::with_formatter(&mut out, Tabs::default());
    if v.serialize(&mut ser).is_err() {
        return Vec::new();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uwsgi_layout() {
        let v =
            serde_json::json!({"version": "x", "workers": [{"id": 1, "vars": []}], "locks": []});
        let s = String::from_utf8(to_bytes(&v, false)).unwrap();
        assert_eq!(
            s,
            "{\n\t\"version\":\"x\",\n\t\"workers\":[\n\t\t{\n\t\t\t\"id\":1,\n\t\t\t\"vars\":[]\n\t\t}\n\t],\n\t\"locks\":[]\n}"
        );
        let m = String::from_utf8(to_bytes(&v, true)).unwrap();
        assert_eq!(
            m,
            r#"{"version":"x","workers":[{"id":1,"vars":[]}],"locks":[]}"#
        );
    }
}
