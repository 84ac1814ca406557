//! Large output buffers.

use rayon::prelude::*;

/// A `Vec<u32>` of `chunk × n_chunks` values where chunk `i` is written by `fill(i, out)`, in
/// parallel. `fill` must write every element of its chunk (it gets them zeroed).
///
/// Why not `vec![0; n]`: on Linux, first touching a fresh 100 MB buffer costs one page fault
/// per 4 KiB, which on virtual machines dominated `track.link` (≈ 150 ms for a 65-frame
/// 690×628 movie, more than all the tracking). The buffer is therefore asked to use
/// transparent huge pages (2 MiB faults) where the kernel allows it (`madvise`, a hint with
/// no effect on correctness), and zeroed and filled chunk by chunk on the worker threads.
pub fn par_filled(chunk: usize, n_chunks: usize, fill: impl Fn(usize, &mut [u32]) + Sync) -> Vec<u32> {
    let n = chunk * n_chunks;
    let mut v: Vec<u32> = Vec::with_capacity(n);
    advise_huge(&mut v);
    if chunk == 0 {
        return v;
    }
    v.spare_capacity_mut()[..n].par_chunks_mut(chunk).enumerate().for_each(|(i, c)| {
        for x in c.iter_mut() {
            x.write(0);
        }
        // SAFETY: every element of `c` was initialised just above; `MaybeUninit<u32>` and
        // `u32` have the same layout.
        let c: &mut [u32] = unsafe { &mut *(c as *mut [std::mem::MaybeUninit<u32>] as *mut [u32]) };
        fill(i, c);
    });
    // SAFETY: the loop above initialised all `n` elements (the chunks cover 0..n exactly).
    unsafe { v.set_len(n) };
    v
}

#[cfg(target_os = "linux")]
fn advise_huge(v: &mut Vec<u32>) {
    const HUGE: usize = 1 << 21;
    let p = v.as_mut_ptr() as usize;
    let start = (p + HUGE - 1) & !(HUGE - 1);
    let end = (p + v.capacity() * 4) & !(HUGE - 1);
    if end > start {
        // SAFETY: the range lies inside this vector's allocation; MADV_HUGEPAGE is advice only
        // and never changes the memory's contents. A failure is harmless and ignored.
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_huge(_v: &mut Vec<u32>) {}

#[cfg(test)]
mod tests {
    #[test]
    fn fills_every_chunk() {
        let v = super::par_filled(1000, 7, |i, c| {
            for (k, x) in c.iter_mut().enumerate() {
                *x = (i * 1000 + k) as u32;
            }
        });
        assert_eq!(v, (0..7000u32).collect::<Vec<_>>());
        assert!(super::par_filled(0, 3, |_, _| {}).is_empty());
    }
}
