//! Decoding the 382-byte GET packet nginx sends for a typical request
//! (`reference/uwsgi-spec.md` §1.8): framing, validation of all 16 vars, and
//! one pass over them, as the server does when it builds the environ.
//!
//! Run with `cargo bench -p rwsgi-proto`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rwsgi_proto::{Limits, decode};

fn nginx_get() -> Vec<u8> {
    let hex = include_str!("../tests/testdata/nginx_get.hex").trim();
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect()
}

fn bench_decode(c: &mut Criterion) {
    let buf = nginx_get();
    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Bytes(buf.len() as u64));
    group.bench_function("nginx_get_382_bytes", |b| {
        b.iter(|| {
            let status = decode(black_box(&buf), &Limits::DEFAULT).expect("valid");
            let (pkt, used) = status.complete().expect("complete");
            let mut total = used;
            for (k, v) in pkt.vars.iter() {
                total += k.len() + v.len();
            }
            black_box(total)
        })
    });
    group.finish();
}

criterion_group!(benches, bench_decode);
criterion_main!(benches);
