//! Decoding allocates nothing: a counting global allocator watches a decode
//! of nginx's GET packet and a walk over its vars.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use rwsgi_proto::{Limits, decode};

struct Counting;

static ALLOCS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; the
// counter has no effect on the memory handed out.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::SeqCst);
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller upholds `GlobalAlloc::dealloc`'s contract.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn decode_does_not_allocate() {
    let hex = include_str!("testdata/nginx_get.hex").trim();
    let buf: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    let before = ALLOCS.load(Ordering::SeqCst);
    let (pkt, used) = decode(&buf, &Limits::DEFAULT).unwrap().complete().unwrap();
    let mut n = 0;
    for (k, v) in pkt.vars.iter() {
        n += k.len() + v.len();
    }
    let after = ALLOCS.load(Ordering::SeqCst);
    assert_eq!(used, 382);
    assert!(n > 0);
    assert_eq!(after - before, 0, "decode allocated");
}
