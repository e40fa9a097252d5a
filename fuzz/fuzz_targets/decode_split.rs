//! Feeding bytes in pieces, as a socket delivers them, gives the same result
//! as feeding them in one piece: the same error, or the same packet at the
//! first point where enough bytes are buffered.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rwsgi_proto::{Limits, Status, decode};

#[derive(Debug, arbitrary::Arbitrary)]
struct Input {
    cuts: Vec<u16>,
    data: Vec<u8>,
}

fuzz_target!(|input: Input| {
    let limits = Limits::DEFAULT;
    let data = &input.data;
    let whole = decode(data, &limits).map(|s| s.map_packet());
    let mut points: Vec<usize> = input
        .cuts
        .iter()
        .map(|&c| usize::from(c) % (data.len() + 1))
        .collect();
    points.push(data.len());
    points.sort_unstable();
    for have in points {
        match decode(&data[..have], &limits) {
            Ok(Status::Partial { needed }) => {
                assert!(needed > have, "partial must ask for more bytes");
                if have == data.len() {
                    assert_eq!(whole, Ok(Status::Partial { needed }));
                }
            }
            other => {
                // Once decided, the outcome is that of the whole buffer.
                assert_eq!(other.map(|s| s.map_packet()), whole);
                return;
            }
        }
    }
});

/// A comparable summary of a decode outcome: the header, the pairs, and the
/// bytes used.
trait Summary {
    fn map_packet(self) -> Status<(rwsgi_proto::Header, Vec<(Vec<u8>, Vec<u8>)>, usize)>;
}

impl Summary for Status<(rwsgi_proto::Packet<'_>, usize)> {
    fn map_packet(self) -> Status<(rwsgi_proto::Header, Vec<(Vec<u8>, Vec<u8>)>, usize)> {
        match self {
            Status::Complete((pkt, used)) => Status::Complete((
                pkt.header,
                pkt.vars.iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect(),
                used,
            )),
            Status::Partial { needed } => Status::Partial { needed },
        }
    }
}
