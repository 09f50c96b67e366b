//! Spare buffers: storage given back by connections that went idle, kept
//! for busy ones.

use parking_lot::Mutex;

/// Buffers given back by connections that went idle, kept for the next
/// busy one: reusing them spares zeroing fresh memory on every request,
/// while idle connections still hold none.
static SPARE: Mutex<Vec<Vec<u8>>> = parking_lot::const_mutex(Vec::new());
/// Most spare buffers kept (a few MiB at the sizes we use).
const MAX_SPARE: usize = 64;

pub(in crate::http) fn take_buffer(size: usize) -> Vec<u8> {
    let mut spare = SPARE.lock();
    match spare.iter().rposition(|b| b.len() == size) {
        Some(i) => spare.swap_remove(i),
        None => {
            drop(spare);
            vec![0; size]
        }
    }
}

pub(in crate::http) fn give_buffer(buf: Vec<u8>) {
    let mut spare = SPARE.lock();
    if spare.len() < MAX_SPARE {
        spare.push(buf);
    }
}
