//! Compiling hot elementwise loops for the vector extensions the CPU has.

/// Runs `$body(args)` compiled for AVX-512F, for AVX2, or for the baseline, whichever the CPU
/// has (the same IEEE operations on every path: the same bits). `-> T` after the argument list
/// gives the body's return type.
macro_rules! simd_dispatch {
    ($body:ident($($arg:ident: $ty:ty),*) $(-> $ret:ty)?) => {{
        #[cfg(target_arch = "x86_64")]
        {
            #[target_feature(enable = "avx512f")]
            unsafe fn avx512($($arg: $ty),*) $(-> $ret)? { $body($($arg),*) }
            #[target_feature(enable = "avx2")]
            unsafe fn avx2($($arg: $ty),*) $(-> $ret)? { $body($($arg),*) }
            if std::arch::is_x86_feature_detected!("avx512f") {
                // SAFETY: the CPU supports AVX-512F (checked just above)
                return unsafe { avx512($($arg),*) };
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU supports AVX2 (checked just above)
                return unsafe { avx2($($arg),*) };
            }
        }
        $body($($arg),*)
    }};
}
pub(crate) use simd_dispatch;
