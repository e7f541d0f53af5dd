//! Transparent huge pages for the big tables.
//!
//! A lookup in a table of a million entries lands on a random page of the index and then of the
//! slab. With 4 KiB pages each is a TLB miss too, and in a VM a page walk costs several memory
//! reads: on the benchmark machine a dependent load over 192 MiB costs 216-336 ns with 4 KiB
//! pages and 163-171 ns with 2 MiB pages (bench/RESULTS.md). So the tables' big allocations ask the kernel
//! for huge pages, which it gives when `/sys/kernel/mm/transparent_hugepage/enabled` is `always`
//! or `madvise` (as on the benchmark machine). The cost: a touched huge page is resident whole,
//! so a large table holding few entries may have up to 2 MiB more resident per page it touched.

/// Asks the kernel to back the whole 2 MiB pages inside `v`'s allocation (its capacity, used or
/// not) with transparent huge pages. Best effort: the answer is ignored (without THP the pages
/// stay small), and an allocation smaller than two huge pages mostly is left as it is.
pub(super) fn advise_huge_pages<T>(v: &Vec<T>) {
    const HUGE: usize = 2 << 20;
    let start = v.as_ptr() as usize;
    let end = start + v.capacity() * std::mem::size_of::<T>();
    let (first, last) = (start.next_multiple_of(HUGE), end / HUGE * HUGE);
    if last > first {
        // SAFETY: [first, last) lies inside `v`'s own allocation, which lives across the call;
        // MADV_HUGEPAGE only changes how the kernel backs those pages, never their contents.
        unsafe {
            libc::madvise(
                first as *mut libc::c_void,
                last - first,
                libc::MADV_HUGEPAGE,
            );
        }
    }
}
