//! Large zero-filled buffers for node outputs and decoded images, shared by the node crates.
//!
//! Hand-written because `vec![0; n]` aborts the process on allocation failure and
//! `Vec::try_reserve` + `resize` touches (and so commits) every page up front. `alloc_zeroed`
//! is fallible and, for large sizes, maps fresh zero pages lazily, like numpy's `np.empty`:
//! memory is committed only as the caller writes into it. Large buffers are also backed by
//! transparent huge pages on Linux (as numpy does for arrays of 4 MB and more): filling a fresh
//! 16 MB buffer then takes 8 page faults instead of 4096, which was the largest single cost of
//! several nodes and made reading an uncompressed stack 3–5× faster. Buffers filled at once (a
//! decoded image) can ask for huge pages on every page, ends included: [`whole_huge_zeroed_vec`].

use bytemuck::Zeroable;
use rayon::prelude::*;

/// A zero-filled vector of `n` values, or an error (naming the size) when memory is short.
pub fn try_zeroed_vec<T: Zeroable>(n: usize) -> Result<Vec<T>, String> {
    let layout =
        std::alloc::Layout::array::<T>(n).map_err(|_| format!("{n} values are too many to address on this machine"))?;
    if layout.size() == 0 {
        return Ok(Vec::new());
    }
    // SAFETY: non-zero size; the pointer comes from the global allocator with exactly this
    // layout, so `Vec::from_raw_parts(ptr, n, n)` is sound, and all-zero bytes are a valid `T`
    // (`T: Zeroable`).
    unsafe {
        let ptr = std::alloc::alloc_zeroed(layout) as *mut T;
        if ptr.is_null() {
            return Err(format!("not enough memory ({:.1} GB)", layout.size() as f64 / 1e9));
        }
        advise_huge_pages(ptr as *mut u8, layout.size());
        Ok(Vec::from_raw_parts(ptr, n, n))
    }
}

/// [`try_zeroed_vec`] for sizes that come from existing stacks (an output as large as an
/// input): allocation failure ends the process like any `Vec` allocation.
pub fn zeroed_vec<T: Zeroable>(n: usize) -> Vec<T> {
    match try_zeroed_vec(n) {
        Ok(v) => v,
        Err(_) => match std::alloc::Layout::array::<T>(n) {
            Ok(layout) => std::alloc::handle_alloc_error(layout),
            Err(_) => panic!("{n} values are too many to address on this machine"),
        },
    }
}

/// A vector of `n` values `f(i)`, computed in parallel into a [`zeroed_vec`].
pub fn par_fill<T: Zeroable + Send>(n: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    const CHUNK: usize = 1 << 14;
    let mut v = zeroed_vec::<T>(n);
    v.par_chunks_mut(CHUNK).enumerate().for_each(|(c, ch)| {
        for (k, x) in ch.iter_mut().enumerate() {
            *x = f(c * CHUNK + k);
        }
    });
    v
}

/// A zero-filled vector of `n` values whose pages are all backed by transparent huge pages, for
/// buffers filled at once (a decoded image). `None` when `n` is small or the allocation fails
/// (the caller then takes the ordinary path, which reports the error).
///
/// Why: [`try_zeroed_vec`] advises huge pages for the 2 MB-aligned interior of a buffer only,
/// because the buffer's two ends share their 2 MB ranges with other memory. Those ends (up to
/// 2 MB each, 3.5 MB of an 8 MB stack in practice) were then faulted in 4 KB pages while the
/// file was copied in, ~2 µs each on this virtual machine: a quarter of the time of reading an
/// 8 MB stack. Here the allocation is sized so that both ends are whole huge pages: it asks for
/// a multiple of 2 MB minus glibc's chunk header, so that glibc maps exactly a multiple of 2 MB
/// for it and Linux (6.7 and later) places such a mapping on a 2 MB boundary; and it keeps 2 MB
/// of spare capacity past the pixels, so the last huge page the pixels touch lies inside the
/// allocation even when glibc serves it from the heap instead (below its mmap threshold, which
/// `petri` raises). Spare capacity is address space only: pages never touched are never
/// committed. All of this only changes how the kernel backs the pages; with another allocator
/// or kernel the buffer is an ordinary zeroed vector.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn whole_huge_zeroed_vec<P: Zeroable>(n: usize) -> Option<Vec<P>> {
    const HUGE: usize = 2 << 20;
    // glibc's header for a chunk it maps (two size fields), plus its 16-byte rounding.
    const GLIBC_OVERHEAD: usize = 24;
    let sz = std::mem::size_of::<P>();
    let bytes = n.checked_mul(sz)?;
    if bytes < 2 * HUGE || sz == 0 || !GLIBC_OVERHEAD.is_multiple_of(sz) {
        return None;
    }
    let request =
        (bytes.checked_add(GLIBC_OVERHEAD)?.checked_next_multiple_of(HUGE)?).checked_add(HUGE)? - GLIBC_OVERHEAD;
    let cap = request / sz;
    let layout = std::alloc::Layout::array::<P>(cap).ok()?;
    // SAFETY: non-zero size; the pointer comes from the global allocator with exactly the layout
    // of `Vec<P>` with capacity `cap`, so `Vec::from_raw_parts(ptr, n, cap)` with `n <= cap` is
    // sound, and all-zero bytes are a valid `P` (`P: Zeroable`). madvise only changes how the kernel
    // backs pages, never their content, so advising the partly shared pages at the two ends is
    // harmless to their other users.
    unsafe {
        let ptr = std::alloc::alloc_zeroed(layout) as *mut P;
        if ptr.is_null() {
            return None;
        }
        let page = 4096usize;
        let start = ptr as usize / page * page;
        let end = (ptr as usize + layout.size()).next_multiple_of(page);
        libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
        // glibc wrote its chunk header into the first page before the advice, so that page is
        // already an ordinary one and the first 2 MB would fault in 4 KB pages: when the
        // mapping starts on a 2 MB boundary (all of it ours), collapse that range into a huge
        // page now (Linux 6.1+; a failure leaves it as it was).
        if start.is_multiple_of(HUGE) && end - start >= HUGE {
            libc::madvise(start as *mut libc::c_void, HUGE, libc::MADV_COLLAPSE);
        }
        Some(Vec::from_raw_parts(ptr, n, cap))
    }
}

/// Elsewhere the ordinary path ([`try_zeroed_vec`]) is taken.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn whole_huge_zeroed_vec<P: Zeroable>(_n: usize) -> Option<Vec<P>> {
    None
}

/// Asks Linux to back the 2 MB-aligned interior of a large fresh allocation with huge pages.
/// Only changes how the kernel backs the pages, never their content; a no-op elsewhere and for
/// small buffers.
#[allow(unused_variables)]
fn advise_huge_pages(ptr: *mut u8, len: usize) {
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        if len < 2 * HUGE {
            return;
        }
        let start = (ptr as usize).next_multiple_of(HUGE);
        let end = (ptr as usize + len) / HUGE * HUGE;
        if end > start {
            // SAFETY: [start, end) lies inside the allocation we own; MADV_HUGEPAGE only changes
            // how the kernel backs those pages, never their content. Failure is harmless.
            unsafe {
                libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zeroed_and_fallible() {
        let v: Vec<u16> = try_zeroed_vec(1000).unwrap();
        assert!(v.len() == 1000 && v.iter().all(|&x| x == 0));
        let big: Vec<f32> = zeroed_vec(3 << 20);
        assert!(big.iter().all(|&x| x == 0.0));
        assert!(try_zeroed_vec::<u32>(usize::MAX / 2).is_err());
        assert!(try_zeroed_vec::<u8>(0).unwrap().is_empty());
        assert_eq!(par_fill(100_000, |i| i as u32)[99_999], 99_999);
    }

    #[test]
    fn whole_huge_pages_are_zeroed_and_sized() {
        // Below 4 MB: the ordinary path.
        assert!(whole_huge_zeroed_vec::<u16>(1 << 20).is_none());
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        for n in [(4 << 20) / 2, (8 << 20) / 2 - 7, 3 << 21] {
            let mut v: Vec<u16> = whole_huge_zeroed_vec(n).unwrap();
            assert_eq!(v.len(), n);
            // Room for the pixels and the whole last huge page they touch.
            assert!(v.capacity() * 2 >= (n * 2).next_multiple_of(2 << 20));
            assert!(v.iter().all(|&x| x == 0));
            v[n - 1] = 7;
            v.push(1);
            assert_eq!(v[n], 1);
        }
    }
}

/// Process-wide allocator tuning, called once at start by the `petri` binary (and by the
/// benchmark programs, so that they measure what `petri` runs).
///
/// Why: glibc serves every allocation above its mmap threshold (at most 32 MB) with a fresh
/// `mmap` and returns it to the kernel on free. A network's activations are tens of MB each and
/// are allocated and freed at every layer, so each one was page-faulted and zeroed by the kernel
/// again: that was a third of a U-Net inference and a quarter of a training step. Raising the
/// mmap and trim thresholds to 256 MB keeps such buffers in the heap for reuse; larger ones (whole
/// image stacks) still come from, and go back to, the kernel. A no-op outside Linux/glibc.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const LIMIT: libc::c_int = 256 << 20;
        // SAFETY: mallopt only changes allocator thresholds; called before any threads start.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, LIMIT);
            libc::mallopt(libc::M_TRIM_THRESHOLD, LIMIT);
        }
    }
}
