//! The matrix product every conv runs through, and `simd!`: the channel-wise loops of the
//! passes compiled for AVX2 + FMA as well as the baseline, picked at run time.

/// `dst(r, c) (+)= Σ_i lhs(r, i) · rhs(i, c)` with `m(r, c)` at `m[r·rs + c·cs]`.
#[allow(clippy::too_many_arguments)]
pub(super) fn mm(
    (m, n, k): (usize, usize, usize),
    dst: &mut [f32],
    (d_rs, d_cs): (usize, usize),
    accumulate: bool,
    lhs: &[f32],
    (l_rs, l_cs): (usize, usize),
    rhs: &[f32],
    (r_rs, r_cs): (usize, usize),
) {
    if m == 0 || n == 0 {
        return;
    }
    let last = |rows: usize, cols: usize, rs: usize, cs: usize| (rows - 1) * rs + (cols - 1) * cs;
    assert!(last(m, n, d_rs, d_cs) < dst.len(), "gemm: destination out of bounds");
    if k == 0 {
        if !accumulate {
            dst.fill(0.0);
        }
        return;
    }
    assert!(
        last(m, k, l_rs, l_cs) < lhs.len() && last(k, n, r_rs, r_cs) < rhs.len(),
        "gemm: operand out of bounds"
    );
    // Safety: every element addressed by (rows, cols, strides) is inside its slice (checked
    // above); `dst` does not alias the operands (it is a distinct `&mut`).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            d_cs as isize,
            d_rs as isize,
            accumulate,
            lhs.as_ptr(),
            l_cs as isize,
            l_rs as isize,
            rhs.as_ptr(),
            r_cs as isize,
            r_rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}

/// A function compiled twice, for the baseline x86-64 (SSE2) and for AVX2 + FMA, picked at
/// run time: the loops below vectorise across channels, and 8 lanes beat 4. (`gemm` does its
/// own dispatch.)
macro_rules! simd {
    ($(#[$m:meta])* fn $name:ident($($a:ident: $t:ty),* $(,)?) $body:block) => {
        $(#[$m])*
        #[allow(clippy::too_many_arguments)]
        fn $name($($a: $t),*) {
            #[inline(always)]
            #[allow(clippy::too_many_arguments)]
            fn imp($($a: $t),*) $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn fast($($a: $t),*) {
                    imp($($a),*)
                }
                if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                    // Safety: the CPU has the features `fast` is compiled for.
                    return unsafe { fast($($a),*) };
                }
            }
            imp($($a),*)
        }
    };
}

/// `y += a · x`.
#[inline(always)]
pub(super) fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
    for (y, x) in y.iter_mut().zip(x) {
        *y += a * x;
    }
}

pub(super) use simd;
