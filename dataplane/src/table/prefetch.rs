//! A hint to the CPU to start loading a cache line that will be read soon.
//!
//! A lookup in a table far larger than the caches waits for memory once per dependent read
//! (bucket, then entry), ~170 ns each on the benchmark machine. Asking for a batch's lines first
//! and reading them after lets those misses be in flight together (VPP's and OVS's pattern,
//! bench/RESULTS.md "Batched lookups"). A prefetch changes no result: it never faults, whatever
//! the address, and the data is read again through ordinary (checked) loads.

/// Asks for the cache line holding `*value` to be brought into every cache level.
#[inline(always)]
pub(crate) fn prefetch<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `_mm_prefetch` needs SSE, part of the x86_64 baseline (every x86_64 CPU has it);
    // it is `unsafe` only for that target feature. A prefetch never faults and writes nothing,
    // and the pointer comes from a live reference.
    unsafe {
        use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>((value as *const T).cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}

/// Asks for every cache line `*value` spans (a value larger than a line, or straddling two).
#[inline(always)]
pub(crate) fn prefetch_all<T>(value: &T) {
    let start = value as *const T as usize;
    let end = start + std::mem::size_of::<T>();
    let mut line = start & !63;
    while line < end {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in `prefetch`; the address is within or just before `*value` (rounded down
        // to its line), and a prefetch never faults whatever the address.
        unsafe {
            use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            _mm_prefetch::<_MM_HINT_T0>(line as *const i8);
        }
        line += 64;
    }
}
