//! The process allocator of the server binary and the bundled plugins that install one: mimalloc,
//! entered by its plain `mi_malloc` / `mi_realloc` when the alignment asked is one every block
//! has anyway, by its aligned entries only otherwise. Owns nothing else.
//!
//! Why not `mimalloc::MiMalloc`: it calls `mi_malloc_aligned` for every allocation, and in
//! mimalloc v3 that entry's fast path works only while the size class's page has a free block
//! at hand; otherwise (every time the page's free list runs dry) it over-allocates a larger
//! block and marks the page as holding interior pointers, where `mi_malloc` would have
//! collected the page's freed blocks. Six allocations of every append took that path, about
//! 1,200 instructions per request (BENCHMARKS.md, per-request cost step 9).

use core::alloc::{GlobalAlloc, Layout};
use core::ffi::c_void;

use libmimalloc_sys as ffi;

/// Every mimalloc block is aligned to at least this (`MI_MAX_ALIGN_SIZE`) when its size is
/// at least this, and to its size when smaller and a power of two.
const MIN_ALIGN: usize = 16;

/// mimalloc as the global allocator.
pub struct Mimalloc;

/// Whether a block of `size` from the plain entry is aligned enough for `align`.
#[inline]
fn plain(size: usize, align: usize) -> bool {
    align <= MIN_ALIGN && align <= size
}

// SAFETY: each method forwards to mimalloc's matching entry; the plain entries are used only
// for alignments their blocks always have (see `MIN_ALIGN`), blocks are freed with `mi_free`
// whichever entry allocated them.
unsafe impl GlobalAlloc for Mimalloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: mimalloc's entries accept any size; a null return is passed on.
        unsafe {
            if plain(layout.size(), layout.align()) {
                ffi::mi_malloc(layout.size()) as *mut u8
            } else {
                ffi::mi_malloc_aligned(layout.size(), layout.align()) as *mut u8
            }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as `alloc`.
        unsafe {
            if plain(layout.size(), layout.align()) {
                ffi::mi_zalloc(layout.size()) as *mut u8
            } else {
                ffi::mi_zalloc_aligned(layout.size(), layout.align()) as *mut u8
            }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from this allocator (the GlobalAlloc contract).
        unsafe { ffi::mi_free(ptr as *mut c_void) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from this allocator with `layout` (the GlobalAlloc contract).
        unsafe {
            if plain(new_size, layout.align()) {
                ffi::mi_realloc(ptr as *mut c_void, new_size) as *mut u8
            } else {
                ffi::mi_realloc_aligned(ptr as *mut c_void, new_size, layout.align()) as *mut u8
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every size and alignment a program asks for comes back aligned, usable and freed.
    #[test]
    fn blocks_are_aligned_for_every_size_and_alignment() {
        let a = Mimalloc;
        for align in [1usize, 2, 4, 8, 16, 32, 64, 128, 4096] {
            for size in [1usize, 3, 7, 8, 12, 15, 16, 24, 31, 48, 100, 1000, 1025, 5000, 70_000] {
                let layout = Layout::from_size_align(size, align).unwrap();
                // SAFETY: a non-zero size; the block is written within its size and freed once.
                unsafe {
                    let p = a.alloc(layout);
                    assert!(!p.is_null());
                    assert_eq!(p as usize % align, 0, "size {size} align {align}");
                    p.write_bytes(0xab, size);
                    let z = a.alloc_zeroed(layout);
                    assert_eq!(z as usize % align, 0);
                    assert!(std::slice::from_raw_parts(z, size).iter().all(|&b| b == 0));
                    let q = a.realloc(p, layout, size * 3);
                    assert_eq!(q as usize % align, 0, "realloc size {size} align {align}");
                    assert!(std::slice::from_raw_parts(q, size).iter().all(|&b| b == 0xab));
                    a.dealloc(q, Layout::from_size_align(size * 3, align).unwrap());
                    a.dealloc(z, layout);
                }
            }
        }
    }

    /// The plain entry's blocks, many of each size (every position in their pages), carry the
    /// alignment the plain path is taken for.
    #[test]
    fn plain_blocks_carry_the_alignment_they_are_taken_for() {
        let a = Mimalloc;
        for size in (1usize..=300).chain([500, 1000, 1024, 1100, 4000, 9000]) {
            let align = [16usize, 8, 4, 2, 1].into_iter().find(|al| plain(size, *al)).unwrap();
            let layout = Layout::from_size_align(size, align).unwrap();
            // SAFETY: non-zero sizes, each block freed once with its layout.
            unsafe {
                let blocks: Vec<*mut u8> = (0..2000).map(|_| a.alloc(layout)).collect();
                for p in &blocks {
                    assert_eq!(*p as usize % align, 0, "size {size} align {align}");
                }
                for p in blocks {
                    a.dealloc(p, layout);
                }
            }
        }
    }
}
