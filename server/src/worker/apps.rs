//! The apps a worker serves and which one a request goes to (`mount`,
//! `manage-script-name`), as uWSGI picks them (`core/protocol.c`,
//! `core/utils.c` `uwsgi_get_app_id`):
//!
//! - with `manage-script-name`, the app whose mountpoint is the longest
//!   prefix of `PATH_INFO` at a `/` boundary (a mountpoint of `/` is
//!   skipped); `SCRIPT_NAME` becomes the mountpoint and `PATH_INFO` what
//!   follows it;
//! - otherwise the app whose mountpoint equals `UWSGI_APPID` or
//!   `SCRIPT_NAME` (what nginx sends with `uwsgi_param SCRIPT_NAME`);
//! - otherwise the default app: the first one loaded (`module`/`wsgi-file`,
//!   else the first `mount`).

use pyo3::prelude::*;

/// The loaded apps, the default first.
#[derive(Debug, Default)]
pub struct Apps {
    /// (mountpoint, callable); the `module`/`wsgi-file` app has mountpoint `""`.
    pub mounted: Vec<(String, Py<PyAny>)>,
    /// `manage-script-name`.
    pub manage_script_name: bool,
}

/// The app a request goes to, and how many leading bytes of `PATH_INFO`
/// move to `SCRIPT_NAME` (with `manage-script-name`).
#[derive(Debug)]
pub struct Picked<'a> {
    /// The callable.
    pub app: &'a Py<PyAny>,
    /// `Some(n)`: `SCRIPT_NAME` = the first `n` bytes of `PATH_INFO`,
    /// `PATH_INFO` = the rest.
    pub script_name_len: Option<usize>,
}

impl Apps {
    /// Whether no app loaded.
    pub fn is_empty(&self) -> bool {
        self.mounted.is_empty()
    }

    /// Another handle on the same apps, for another thread.
    pub fn clone_ref(&self, py: Python<'_>) -> Apps {
        Apps {
            mounted: self
                .mounted
                .iter()
                .map(|(m, a)| (m.clone(), a.clone_ref(py)))
                .collect(),
            manage_script_name: self.manage_script_name,
        }
    }

    /// Picks the app for a request.
    pub fn pick(&self, vars: &rwsgi_proto::Vars<'_>) -> Option<Picked<'_>> {
        if self.manage_script_name {
            let path = vars.get(b"PATH_INFO").unwrap_or_default();
            let best = self
                .mounted
                .iter()
                .filter(|(m, _)| m.len() > 1 && crate::environ::under_mount(path, m.as_bytes()))
                .max_by_key(|(m, _)| m.len());
            if let Some((m, app)) = best {
                return Some(Picked {
                    app,
                    script_name_len: Some(m.len()),
                });
            }
        }
        if self.mounted.len() == 1 {
            // One app: no variable can pick another (two walks of the vars
            // saved on every request).
            return self.mounted.first().map(|(_, app)| Picked {
                app,
                script_name_len: None,
            });
        }
        let id = vars
            .get(b"UWSGI_APPID")
            .or_else(|| vars.get(b"SCRIPT_NAME"))
            .filter(|id| !id.is_empty());
        let by_id = id.and_then(|id| self.mounted.iter().find(|(m, _)| m.as_bytes() == id));
        by_id.or(self.mounted.first()).map(|(_, app)| Picked {
            app,
            script_name_len: None,
        })
    }
}
