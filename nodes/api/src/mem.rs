//! Large zero-filled buffers for node outputs and decoded images, shared by the node crates.
//!
//! Hand-written because `vec![0; n]` aborts the process on allocation failure and
//! `Vec::try_reserve` + `resize` touches (and so commits) every page up front. `alloc_zeroed`
//! is fallible and, for large sizes, maps fresh zero pages lazily, like numpy's `np.empty`:
//! memory is committed only as the caller writes into it. Large buffers are also backed by
//! transparent huge pages on Linux (as numpy does for arrays of 4 MB and more): filling a fresh
//! 16 MB buffer then takes 8 page faults instead of 4096, which was the largest single cost of
//! several nodes and made reading an uncompressed stack 3–5× faster.

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
