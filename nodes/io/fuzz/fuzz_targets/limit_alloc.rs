//! A global allocator that aborts (a crash libFuzzer records with its input) on any single
//! allocation above the documented bound, so the bound holds whatever sanitizer the target is
//! built with: libFuzzer's own `-malloc_limit_mb` needs a sanitizer's malloc hooks, and these
//! targets are run without AddressSanitizer for speed (see docs/reliability.md).

use std::alloc::{GlobalAlloc, Layout, System};

/// 4096-byte inputs × the largest codec expansion (ZSTD, 65536) = 256 MB of image, plus codec
/// state: see docs/reliability.md.
pub const LIMIT: usize = 320 << 20;

pub struct Limit;

fn check(size: usize) {
    if size > LIMIT {
        // No formatting: the allocator must not allocate.
        eprintln!("limit_alloc: an allocation exceeded the 320 MB bound");
        std::process::abort();
    }
}

// SAFETY: every call is forwarded unchanged to the system allocator after a size check.
unsafe impl GlobalAlloc for Limit {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        check(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        check(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        check(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}
