//! The input-layer kernel `K^0(x, x') = sigma_w^2 x.x' / d + sigma_b^2` (d the input dimension),
//! the first layer of every kernel in the library.
//!
//! One kernel, three evaluation orders, each kept bit for bit where it is used: a dense
//! `K^0(A, B)` (faer GEMM accumulated onto `sigma_b^2`, the mean-field theories), a symmetric
//! row-major `K^0(X, X)` (scaled lower-triangular product, then mirrored: kernel
//! renormalization), and the Gram product `X1 X2^T` mapped entrywise by [`InputKernel`] (the lazy
//! kernels, which fuse the map into their layer pass).
use crate::kernels::net::mirror_lower;
use crate::linalg::matmul;
use faer::linalg::matmul::triangular::{self, BlockStructure};
use faer::{Accum, Mat, MatMut, MatRef, Par};

/// `K^0(A, B) = sigma_w^2 A B^T / d + sigma_b^2` (the library's input kernel).
pub fn input_kernel(
    a: MatRef<'_, f64>,
    b: MatRef<'_, f64>,
    sigma_w: f64,
    sigma_b: f64,
    par: Par,
) -> Mat<f64> {
    let mut k = Mat::from_fn(a.nrows(), b.nrows(), |_, _| sigma_b * sigma_b);
    matmul(
        k.as_mut(),
        Accum::Add,
        a,
        b.transpose(),
        sigma_w * sigma_w / a.ncols() as f64,
        par,
    );
    k
}

/// The diagonal `K^0(a, a)` of the rows of `a` (the order of [`input_kernel`]'s scalars).
pub fn input_kernel_diag(a: MatRef<'_, f64>, sigma_w: f64, sigma_b: f64) -> Vec<f64> {
    let d = a.ncols() as f64;
    (0..a.nrows())
        .map(|i| {
            sigma_w * sigma_w * (0..a.ncols()).map(|k| a[(i, k)] * a[(i, k)]).sum::<f64>() / d
                + sigma_b * sigma_b
        })
        .collect()
}

/// `K^0(X, X)` (P x P, row-major, exactly symmetric) into `out`: the lower triangle of
/// `(sigma_w^2 / d) X X^T`, plus `sigma_b^2`, mirrored.
pub fn input_kernel_symmetric(
    x: MatRef<'_, f64>,
    sigma_w: f64,
    sigma_b: f64,
    out: &mut [f64],
    par: Par,
) {
    let (p, d) = (x.nrows(), x.ncols());
    let (s2w, s2b) = (sigma_w * sigma_w, sigma_b * sigma_b);
    let dst = MatMut::from_row_major_slice_mut(&mut *out, p, p);
    triangular::matmul(
        dst,
        BlockStructure::TriangularLower,
        Accum::Replace,
        x,
        BlockStructure::Rectangular,
        x.transpose(),
        BlockStructure::Rectangular,
        s2w / d as f64,
        par,
    );
    for i in 0..p {
        for j in 0..=i {
            out[i * p + j] += s2b;
        }
    }
    mirror_lower(out, p);
}

/// The Gram product `G = X1 X2^T` into the row-major `out` (P1 x P2; only the lower triangle
/// when `lower_only`, for `X2 = X1`).
pub fn gram_into(
    x1: MatRef<'_, f64>,
    x2: MatRef<'_, f64>,
    lower_only: bool,
    out: &mut [f64],
    par: Par,
) {
    let dst = MatMut::from_row_major_slice_mut(out, x1.nrows(), x2.nrows());
    let structure = if lower_only {
        BlockStructure::TriangularLower
    } else {
        BlockStructure::Rectangular
    };
    triangular::matmul(
        dst,
        structure,
        Accum::Replace,
        x1,
        BlockStructure::Rectangular,
        x2.transpose(),
        BlockStructure::Rectangular,
        1.0,
        par,
    );
}

/// The entrywise map from a Gram entry `g = x.x'` to `K^0 = (sigma_w^2 / d) g + sigma_b^2`.
#[derive(Debug, Clone, Copy)]
pub struct InputKernel {
    alpha: f64,
    s2b: f64,
}

impl InputKernel {
    pub fn new(sigma_w: f64, sigma_b: f64, d: usize) -> Self {
        InputKernel {
            alpha: sigma_w * sigma_w / d as f64,
            s2b: sigma_b * sigma_b,
        }
    }

    /// `K^0` from a Gram entry.
    #[inline]
    pub fn of_gram(&self, g: f64) -> f64 {
        self.alpha * g + self.s2b
    }

    /// `K^0(x, x)` of one row (O(d)).
    pub fn of_row(&self, x: &[f64]) -> f64 {
        self.of_gram(x.iter().map(|v| v * v).sum())
    }
}
