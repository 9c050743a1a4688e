//! What the CPU offers beyond the portable baseline: a cache prefetch hint, and code
//! compiled for AVX2 where the CPU has it. Both change how fast code runs, never what it
//! computes: integer results are exact at any vector width, and no float operation is
//! fused or reordered by enabling AVX2 (FMA is not enabled).

/// Hints that `x` will be read soon, so its cache line is loaded meanwhile. It does
/// nothing where no such hint is available.
#[inline(always)]
pub fn prefetch<T>(x: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint: it never faults and writes nothing, and SSE is part
    // of the x86_64 baseline.
    unsafe {
        use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>((x as *const T).cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = x;
}

/// Hints that every cache line of `xs` will be read soon (see [`prefetch`]).
#[inline(always)]
pub fn prefetch_slice<T>(xs: &[T]) {
    const LINE: usize = 64;
    let step = (LINE / std::mem::size_of::<T>().max(1)).max(1);
    for x in xs.iter().step_by(step) {
        prefetch(x);
    }
    if let Some(last) = xs.last() {
        prefetch(last);
    }
}

/// Calls `f` compiled with AVX2 enabled when this CPU has AVX2, else as it is. `f` and
/// what it calls must be inlined into it (`#[inline(always)]` on the loop) for the wider
/// vectors to be used.
#[inline(always)]
pub fn with_avx2<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx2")]
        fn avx2<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: this CPU has AVX2, checked just above.
            return unsafe { avx2(f) };
        }
    }
    f()
}
