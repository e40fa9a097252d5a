//! decode(encode(vars)) == vars for arbitrary vars; encoding refuses exactly
//! what a decoder would reject.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rwsgi_proto::{Limits, Modifier1, Modifier2, decode, encode_packet};

#[derive(Debug, arbitrary::Arbitrary)]
struct Input {
    modifier1: u8,
    modifier2: u8,
    vars: Vec<(Vec<u8>, Vec<u8>)>,
}

fuzz_target!(|input: Input| {
    let mut buf = Vec::new();
    let encoded = encode_packet(
        Modifier1(input.modifier1),
        &input.vars,
        Modifier2(input.modifier2),
        &mut buf,
    );
    let fits = input.vars.iter().all(|(k, _)| !k.is_empty())
        && input.vars.iter().map(|(k, v)| 4 + k.len() + v.len()).sum::<usize>() <= 65535;
    match encoded {
        Err(_) => {
            assert!(!fits, "encode refused vars that fit");
            assert!(buf.is_empty(), "encode wrote on error");
        }
        Ok(()) => {
            assert!(fits);
            let limits = Limits {
                max_vars: u16::MAX,
                ..Limits::DEFAULT
            };
            let (pkt, used) = decode(&buf, &limits)
                .expect("what encode wrote decodes")
                .complete()
                .expect("complete");
            assert_eq!(used, buf.len());
            assert_eq!(pkt.header.modifier1, Modifier1(input.modifier1));
            assert_eq!(pkt.header.modifier2, Modifier2(input.modifier2));
            let got: Vec<(Vec<u8>, Vec<u8>)> =
                pkt.vars.iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect();
            assert_eq!(got, input.vars);
        }
    }
});
