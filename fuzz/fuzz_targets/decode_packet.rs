//! Decoding arbitrary bytes never panics, and a packet that decodes
//! re-encodes to exactly the bytes it was decoded from.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rwsgi_proto::{Limits, Status, decode, decode_frame, encode_packet};

fuzz_target!(|data: &[u8]| {
    // Small limits too, so the limit checks are exercised.
    for limits in [
        Limits::DEFAULT,
        Limits {
            max_block: 64,
            max_vars: 3,
        },
    ] {
        let _ = decode_frame(data, &limits);
        if let Ok(Status::Complete((pkt, used))) = decode(data, &limits) {
            let vars: Vec<_> = pkt.vars.iter().collect();
            assert_eq!(vars.len(), pkt.vars.len());
            let mut out = Vec::with_capacity(used);
            encode_packet(pkt.header.modifier1, &vars, pkt.header.modifier2, &mut out)
                .expect("a decoded packet re-encodes");
            assert_eq!(out, &data[..used]);
        }
    }
});
