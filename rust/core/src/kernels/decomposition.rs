//! Decomposition of a kernel into its initial-kernel part, a target part and the rest, as
//! LeJeune & Alemohammad analyse trained and path-averaged tangent kernels (digest §5.6):
//! `K = c0 K0 + c1 Ky + K_rest` with `(c0, c1)` the least-squares projection of `K` onto
//! `span{K0, Ky}` in the Frobenius inner product, i.e. the 2 x 2 normal equations
//! `[<K0,K0> <K0,Ky>; <Ky,K0> <Ky,Ky>] c = [<K,K0>; <K,Ky>]`; `K_rest` is Frobenius-orthogonal
//! to both `K0` and `Ky`.
use crate::error::{invalid, shape, Result};
use faer::{Mat, MatRef};

/// `(c0, c1, K_rest)`.
#[derive(Debug, Clone)]
pub struct Decomposition {
    pub c0: f64,
    pub c1: f64,
    pub rest: Mat<f64>,
}

fn inner(a: MatRef<'_, f64>, b: MatRef<'_, f64>) -> f64 {
    let mut s = 0.0;
    for j in 0..a.ncols() {
        for i in 0..a.nrows() {
            s += a[(i, j)] * b[(i, j)];
        }
    }
    s
}

/// The decomposition of `k` against `k0` and `ky` (all square, same size, finite).
pub fn kernel_decomposition(k: MatRef<'_, f64>, k0: MatRef<'_, f64>, ky: MatRef<'_, f64>) -> Result<Decomposition> {
    let n = k.nrows();
    for (name, m) in [("K", k), ("K0", k0), ("Ky", ky)] {
        if m.nrows() != n || m.ncols() != n || n == 0 {
            return Err(shape(name, format!("must be square and match K ({n} x {n}), got {} x {}", m.nrows(), m.ncols())));
        }
        crate::validate::finite_mat(name, m)?;
    }
    let (a, b, d) = (inner(k0, k0), inner(k0, ky), inner(ky, ky));
    let (p, q) = (inner(k, k0), inner(k, ky));
    let det = a * d - b * b;
    if det.is_nan() || det <= 1e-14 * a * d {
        return Err(invalid("Ky", "is (numerically) a multiple of K0 or zero: the decomposition is not unique"));
    }
    let c0 = (d * p - b * q) / det;
    let c1 = (a * q - b * p) / det;
    let rest = Mat::from_fn(n, n, |i, j| k[(i, j)] - c0 * k0[(i, j)] - c1 * ky[(i, j)]);
    Ok(Decomposition { c0, c1, rest })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_a_known_combination() {
        let k0 = Mat::from_fn(4, 4, |i, j| ((i + 1) * (j + 1)) as f64 + if i == j { 1.0 } else { 0.0 });
        let y = [1.0, -1.0, 0.5, 2.0];
        let ky = Mat::from_fn(4, 4, |i, j| y[i] * y[j]);
        let k = Mat::from_fn(4, 4, |i, j| 2.0 * k0[(i, j)] - 0.5 * ky[(i, j)]);
        let d = kernel_decomposition(k.as_ref(), k0.as_ref(), ky.as_ref()).unwrap();
        assert!((d.c0 - 2.0).abs() < 1e-12 && (d.c1 + 0.5).abs() < 1e-12 && d.rest.norm_max() < 1e-12);
        assert!(kernel_decomposition(k.as_ref(), k0.as_ref(), k0.as_ref()).is_err());
    }
}
