//! A mule (uWSGI's `core/mule.c`, the Python plugin's `uwsgi_python_mule`
//! and `uwsgi_python_mule_msg`): a process the prototype forks beside the
//! workers, for the app's background work. A mule given a `.py` file runs
//! it as `__main__`, one given `module:function` calls it; then (or at
//! once, for a plain mule) it waits for messages (`worker/mule_api.rs`)
//! and hands each to `uwsgi.mule_msg_hook` (what `@mulefunc` sets), or logs
//! it as uWSGI does when there is none; uWSGI signals for it (`mule`,
//! `muleN`, `mules`, its farms) run their handlers. It never serves
//! requests.

use pyo3::prelude::*;

use crate::worker::mule_api;

/// Runs mule `id`; it only returns if its queues are gone.
pub fn run(id: u32) -> i32 {
    if let Some(patch) = mule_api::patch(id) {
        Python::attach(|py| {
            if let Err(e) = run_patch(py, &patch) {
                e.print(py);
            }
        });
    }
    loop {
        let delivered = Python::attach(|py| {
            if let mule_api::Incoming::Message(msg) = mule_api::next_message(py, id)? {
                crate::worker::uwsgi_module::follow_log();
                deliver(py, id, &msg);
            }
            Some(())
        });
        if delivered.is_none() {
            return 0;
        }
    }
}

/// Runs what the mule was given: a file as `__main__`, or
/// `module:function`.
fn run_patch(py: Python<'_>, patch: &str) -> PyResult<()> {
    if patch.ends_with(".py") {
        let runpy = py.import("runpy")?;
        let kwargs = pyo3::types::PyDict::new(py);
        kwargs.set_item("run_name", "__main__")?;
        runpy.call_method("run_path", (patch,), Some(&kwargs))?;
    } else if let Some((module, function)) = patch.split_once(':') {
        py.import(module)?.getattr(function)?.call0()?;
    } else {
        tracing::warn!(
            event = "mule_patch_unknown",
            patch,
            "mule: {patch} is neither a .py file nor module:function; running as a plain mule"
        );
    }
    Ok(())
}

/// Hands a message to `uwsgi.mule_msg_hook`.
fn deliver(py: Python<'_>, id: u32, msg: &[u8]) {
    let hook = py
        .import("uwsgi")
        .and_then(|m| m.getattr("mule_msg_hook"))
        .ok()
        .filter(|h| h.is_callable());
    match hook {
        Some(h) => {
            if let Err(e) = h.call1((pyo3::types::PyBytes::new(py, msg),)) {
                e.print(py);
            }
        }
        None => tracing::info!(
            event = "mule_message",
            mule = id,
            bytes = msg.len(),
            "*** mule {id} received a {} bytes message ***",
            msg.len()
        ),
    }
}
