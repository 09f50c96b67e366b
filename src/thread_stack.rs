//! Giving back the stack pages a thread touched once and no longer needs.
//!
//! A worker's stack is reserved whole (256 KiB) but costs memory only for
//! the pages touched, and a page once touched stays with the thread. An
//! answer runs deep (routing, the cache, a backend's connection, the log's
//! record: 10 KiB and more below the wait for the next request), so after
//! one request every idle keep-alive connection would hold those pages for
//! as long as it stays open, though its wait needs only the top few. A
//! connection that has waited a while gives them back (see
//! `Client::read_head`), as does a worker idle in `accept`: the next deep
//! call finds zeroed pages, as a new thread's stack is.

#[cfg(target_os = "linux")]
use std::cell::Cell;

/// Left below the caller's frame: this function's own frame and the
/// `madvise` call's, which run there while it is given back.
#[cfg(target_os = "linux")]
const MARGIN: usize = 1024;

#[cfg(target_os = "linux")]
thread_local! {
    /// The lowest address of this thread's stack (past its guard page);
    /// 0 until asked for.
    static LOWEST: Cell<usize> = const { Cell::new(0) };
}

/// Gives back the pages of the calling thread's stack below its caller's
/// frame: what lies there is garbage of calls returned from. A page
/// touched again comes back zeroed, at the cost of a page fault. Nothing
/// happens where the system cannot say where the stack is.
#[inline(never)]
pub fn release_below() {
    #[cfg(target_os = "linux")]
    {
        let marker = 0u8;
        let here = std::hint::black_box(&marker) as *const u8 as usize;
        let page = page_size();
        let (Some(lowest), Some(top)) = (lowest_address(), here.checked_sub(MARGIN)) else {
            return;
        };
        let start = lowest.next_multiple_of(page);
        let end = top / page * page;
        if end > start {
            // SAFETY: [start, end) lies within this thread's stack, below
            // every live frame (the caller's and this one's are above
            // `top`, and `madvise` runs within MARGIN of here). Dropping
            // private anonymous pages leaves their addresses valid: they
            // read as zeros when next touched.
            unsafe {
                libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED);
            }
        }
    }
}

#[cfg(target_os = "linux")]
fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size).unwrap_or(4096).max(4096)
}

/// This thread's lowest stack address, asked of the system once.
#[cfg(target_os = "linux")]
fn lowest_address() -> Option<usize> {
    let known = LOWEST.get();
    if known != 0 {
        return Some(known);
    }
    let mut attr = std::mem::MaybeUninit::<libc::pthread_attr_t>::uninit();
    let mut addr: *mut libc::c_void = std::ptr::null_mut();
    let mut size: libc::size_t = 0;
    // SAFETY: `attr` is initialised by pthread_getattr_np before it is
    // read, and destroyed only then; `addr` and `size` are plain out
    // parameters.
    let lowest = unsafe {
        if libc::pthread_getattr_np(libc::pthread_self(), attr.as_mut_ptr()) != 0 {
            return None;
        }
        let got = libc::pthread_attr_getstack(attr.as_ptr(), &mut addr, &mut size);
        libc::pthread_attr_destroy(attr.as_mut_ptr());
        (got == 0 && size > 0).then_some(addr as usize)
    }?;
    LOWEST.set(lowest);
    Some(lowest)
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// Resident pages of `[start, start + len)`, from `mincore`.
    fn resident(start: usize, len: usize) -> usize {
        let page = page_size();
        let mut pages = vec![0u8; len.div_ceil(page)];
        // SAFETY: the range is mapped (this thread's stack) and `pages`
        // has a byte per page of it.
        let ok = unsafe { libc::mincore(start as *mut libc::c_void, len, pages.as_mut_ptr()) == 0 };
        assert!(ok, "mincore: {}", std::io::Error::last_os_error());
        pages.iter().filter(|&&p| p & 1 == 1).count()
    }

    /// Touches `depth` bytes of stack below the caller, then returns.
    #[inline(never)]
    fn go_deep(depth: usize) -> u8 {
        let mut block = [0u8; 4096];
        std::hint::black_box(&mut block);
        if depth > 4096 {
            go_deep(depth - 4096).wrapping_add(block[7])
        } else {
            block[7]
        }
    }

    #[test]
    fn the_pages_below_the_caller_are_given_back_and_usable_again() {
        let spawned = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(|| {
                let lowest = lowest_address().expect("a thread knows its stack");
                let marker = 0u8;
                let here = std::hint::black_box(&marker) as *const u8 as usize;
                assert!(lowest < here && here - lowest <= 256 * 1024 + 64 * 1024);
                let page = page_size();
                let start = lowest.next_multiple_of(page);
                // The region a deep call touches, well below this frame.
                let below = (here - 16 * page) / page * page;
                go_deep(128 * 1024);
                let touched = resident(below - 8 * page, 8 * page);
                release_below();
                let after = resident(below - 8 * page, 8 * page);
                // Deep again: the zeroed pages serve as before.
                go_deep(128 * 1024);
                (touched, after, resident(start, below - start))
            });
        let (touched, after, again) = spawned.unwrap().join().unwrap();
        assert_eq!(touched, 8, "the deep call touched every page");
        assert_eq!(after, 0, "all of them given back");
        assert!(again >= 8, "touched again: {again} pages resident");
    }
}
