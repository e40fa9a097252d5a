//! Replays every input under `testdata/fuzz/` that once crashed a fuzz
//! target, through the same checks the targets make. Each file is named after
//! the bug it found; the comment next to its name below explains it.
//!
//! No fuzz target has crashed so far; the replay runs over an empty set of
//! files until one does, plus the seed inputs, so the harness itself is kept
//! working.

use std::fs;
use std::path::Path;

use rwsgi_proto::{Limits, Status, decode, encode_packet};

/// The decode_packet target's checks.
fn check(data: &[u8]) {
    if let Ok(Status::Complete((pkt, used))) = decode(data, &Limits::DEFAULT) {
        let vars: Vec<_> = pkt.vars.iter().collect();
        let mut out = Vec::new();
        encode_packet(pkt.header.modifier1, &vars, pkt.header.modifier2, &mut out).unwrap();
        assert_eq!(out, &data[..used]);
    }
}

#[test]
fn replay_crash_files() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/testdata/fuzz");
    let Ok(entries) = fs::read_dir(&dir) else {
        return;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        check(&fs::read(&path).unwrap());
    }
}

#[test]
fn seed_inputs() {
    for data in [
        &b""[..],
        b"GET / HTTP/1.1\r\n\r\n",
        &[100, 0, 0, 0],
        &[0, 0xff, 0xff, 0],
        &[0, 3, 0, 0, 1, 0, b'a'],
    ] {
        check(data);
    }
}
