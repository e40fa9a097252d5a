//! Property tests: decode inverts encode, and feeding a packet split at any
//! point gives the same result as feeding it whole.

use proptest::prelude::*;
use rwsgi_proto::{Limits, Modifier1, Modifier2, Status, decode, encode_packet};

fn arb_vars() -> impl Strategy<Value = Vec<(Vec<u8>, Vec<u8>)>> {
    prop::collection::vec(
        (
            prop::collection::vec(any::<u8>(), 1..24),
            prop::collection::vec(any::<u8>(), 0..48),
        ),
        0..40,
    )
}

/// Decodes by feeding `buf` through a growing buffer in the given steps, the
/// way a connection reads it.
fn feed(buf: &[u8], cuts: &[usize]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut have = 0;
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (buf.len() + 1)).collect();
    points.push(buf.len());
    points.sort_unstable();
    for p in points {
        have = have.max(p);
        match decode(&buf[..have], &Limits::DEFAULT).unwrap() {
            Status::Complete((pkt, used)) => {
                assert_eq!(used, buf.len());
                return pkt
                    .vars
                    .iter()
                    .map(|(k, v)| (k.to_vec(), v.to_vec()))
                    .collect();
            }
            Status::Partial { needed } => assert!(needed > have),
        }
    }
    panic!("never complete");
}

proptest! {
    #[test]
    fn decode_inverts_encode(vars in arb_vars(), m1 in any::<u8>(), m2 in any::<u8>()) {
        let mut buf = Vec::new();
        encode_packet(Modifier1(m1), &vars, Modifier2(m2), &mut buf).unwrap();
        let (pkt, used) = decode(&buf, &Limits::DEFAULT).unwrap().complete().unwrap();
        prop_assert_eq!(used, buf.len());
        prop_assert_eq!(pkt.header.modifier1, Modifier1(m1));
        prop_assert_eq!(pkt.header.modifier2, Modifier2(m2));
        let got: Vec<_> = pkt.vars.iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect();
        prop_assert_eq!(got, vars);
    }

    #[test]
    fn split_feeding_equals_one_shot(vars in arb_vars(), cuts in prop::collection::vec(any::<usize>(), 0..6)) {
        let mut buf = Vec::new();
        encode_packet(Modifier1::WSGI, &vars, Modifier2(0), &mut buf).unwrap();
        prop_assert_eq!(feed(&buf, &cuts), vars);
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_reencode(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        if let Ok(Status::Complete((pkt, used))) = decode(&bytes, &Limits::DEFAULT) {
            let v: Vec<_> = pkt.vars.iter().collect();
            let mut out = Vec::new();
            encode_packet(pkt.header.modifier1, &v, pkt.header.modifier2, &mut out).unwrap();
            prop_assert_eq!(&out[..], &bytes[..used]);
        }
    }
}

#[test]
fn every_split_point_of_a_real_sized_packet() {
    let vars: Vec<(String, String)> = (0..30)
        .map(|i| (format!("HTTP_X_{i}"), "v".repeat(i)))
        .collect();
    let mut buf = Vec::new();
    encode_packet(Modifier1::WSGI, &vars, Modifier2(0), &mut buf).unwrap();
    let whole = feed(&buf, &[]);
    for cut in 0..=buf.len() {
        assert_eq!(feed(&buf, &[cut]), whole, "split at {cut}");
    }
}
