//! The architecture of an infinitely wide fully connected network ([`Mlp`]), row-major input
//! views ([`Rows`]), and the triangle mirrors of row-major symmetric buffers.
use crate::error::{invalid, shape, Result};
use crate::kernels::activation::{Activation, Expectation, Method};
use crate::kernels::quadrature::PolarRule;
use crate::validate;
use faer::MatRef;
use rayon::prelude::*;

/// An infinitely wide fully connected network (the architecture the lazy kernels describe).
#[derive(Debug, Clone)]
pub struct Mlp {
    pub depth: usize,
    pub activation: Activation,
    pub sigma_w: f64,
    pub sigma_b: f64,
    pub method: Method,
    pub quadrature_order: usize,
}

pub const MAX_QUADRATURE_ORDER: usize = 128;

impl Mlp {
    pub fn new(depth: usize, activation: Activation, sigma_w: f64, sigma_b: f64) -> Self {
        Mlp {
            depth,
            activation,
            sigma_w,
            sigma_b,
            method: Method::Auto,
            quadrature_order: 32,
        }
    }

    pub fn validate(&self) -> Result<()> {
        if !(self.sigma_w.is_finite() && self.sigma_w >= 0.0) {
            return Err(invalid(
                "sigma_w",
                format!("must be finite and >= 0, got {}", self.sigma_w),
            ));
        }
        if !(self.sigma_b.is_finite() && self.sigma_b >= 0.0) {
            return Err(invalid(
                "sigma_b",
                format!("must be finite and >= 0, got {}", self.sigma_b),
            ));
        }
        if self.quadrature_order < 2 || self.quadrature_order > MAX_QUADRATURE_ORDER {
            return Err(invalid(
                "quadrature_order",
                format!(
                    "must be in [2, {MAX_QUADRATURE_ORDER}], got {}",
                    self.quadrature_order
                ),
            ));
        }
        Ok(())
    }

    /// Whether the lazy kernels use the Hermite (Mehler) expansion
    /// ([`crate::kernels::lazy_hermite`]): always with `Method::Hermite`, and with `Method::Auto`
    /// for every activation without a closed form (tanh, gelu, softplus, callables).
    pub fn lazy_uses_hermite(&self) -> bool {
        self.depth > 0
            && match self.method {
                Method::Hermite => true,
                Method::Auto => !self.activation.has_closed_form(),
                Method::Quadrature => false,
            }
    }

    /// The polar rule of the entries that miss the Hermite expansion's error bound (|rho| -> 1):
    /// the graded rule for the built-in activations (the order-128 rule is ~1e-13 accurate for
    /// tanh at variance 2 but 3e-7 at 10 and 3e-4 at 50; an expansion/quadrature switch must not
    /// make the kernel jump by more than the expansion's own error); the rule of
    /// `quadrature_order` for callables (a non-smooth callable sends every entry there, as with
    /// "quadrature", and its transitions need not lie at 0).
    pub fn hermite_fallback_rule(&self) -> PolarRule {
        match self.activation {
            Activation::Custom(_) => PolarRule::new(self.quadrature_order),
            _ => PolarRule::graded(),
        }
    }

    pub(crate) fn expectation<'a>(&'a self, rule: &'a PolarRule) -> Expectation<'a> {
        Expectation {
            act: &self.activation,
            method: self.method,
            rule,
        }
    }
}

/// Row-major input matrix `(rows, cols)` borrowed from a slice.
#[derive(Debug, Clone, Copy)]
pub struct Rows<'a> {
    pub data: &'a [f64],
    pub rows: usize,
    pub cols: usize,
}

impl<'a> Rows<'a> {
    pub fn new(name: &'static str, data: &'a [f64], rows: usize, cols: usize) -> Result<Self> {
        if rows == 0 || cols == 0 {
            return Err(shape(
                name,
                format!("must be a non-empty 2-D array, got shape ({rows}, {cols})"),
            ));
        }
        if data.len() != rows * cols {
            return Err(shape(
                name,
                format!(
                    "buffer of {} values does not match shape ({rows}, {cols})",
                    data.len()
                ),
            ));
        }
        validate::finite(name, data)?;
        Ok(Rows { data, rows, cols })
    }
    pub fn mat(&self) -> MatRef<'a, f64> {
        MatRef::from_row_major_slice(self.data, self.rows, self.cols)
    }
    pub(crate) fn row(&self, i: usize) -> &'a [f64] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }
}

/// Copies the strict lower triangle of a row-major square matrix onto the upper one.
///
/// Rows are processed in 64-row blocks in parallel (on the caller's Rayon pool), each block
/// reading its columns tile by tile; a pure copy, so the result does not depend on threads.
pub fn mirror_lower(a: &mut [f64], n: usize) {
    mirror(a, n, true)
}

/// Copies the strict upper triangle of a row-major square matrix onto the lower one.
pub fn mirror_upper(a: &mut [f64], n: usize) {
    mirror(a, n, false)
}

const MIRROR_BLOCK: usize = 64;

#[derive(Clone, Copy)]
struct SharedPtr(*mut f64);
// SAFETY: see `mirror`: tasks write disjoint entries and read only entries nobody writes.
unsafe impl Send for SharedPtr {}
unsafe impl Sync for SharedPtr {}

fn mirror(a: &mut [f64], n: usize, from_lower: bool) {
    assert!(a.len() >= n * n, "mirror: buffer too small");
    let ptr = SharedPtr(a.as_mut_ptr());
    (0..n.div_ceil(MIRROR_BLOCK))
        .into_par_iter()
        .for_each(|bi| {
            let ptr = ptr;
            let (i0, i1) = (bi * MIRROR_BLOCK, ((bi + 1) * MIRROR_BLOCK).min(n));
            // Block bi writes only rows i0..i1: entries (i, j) with j > i (from_lower) or j < i
            // (from upper), reading their mirror images (j, i), which lie in the other triangle
            // and are never written. Hence no two tasks touch the same entry mutably.
            let cols: Vec<(usize, usize)> = if from_lower {
                (i0..n)
                    .step_by(MIRROR_BLOCK)
                    .map(|j0| (j0, (j0 + MIRROR_BLOCK).min(n)))
                    .collect()
            } else {
                (0..i1)
                    .step_by(MIRROR_BLOCK)
                    .map(|j0| (j0, (j0 + MIRROR_BLOCK).min(i1)))
                    .collect()
            };
            for (j0, j1) in cols {
                for i in i0..i1 {
                    let (lo, hi) = if from_lower {
                        (j0.max(i + 1), j1)
                    } else {
                        (j0, j1.min(i))
                    };
                    for j in lo..hi {
                        unsafe { *ptr.0.add(i * n + j) = *ptr.0.add(j * n + i) };
                    }
                }
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirrors_fill_the_other_triangle() {
        for n in [1usize, 5, 64, 65, 130] {
            let src: Vec<f64> = (0..n * n).map(|k| k as f64).collect();
            let (mut lo, mut up) = (src.clone(), src.clone());
            crate::threads::with_threads(2, |_| {
                mirror_lower(&mut lo, n);
                mirror_upper(&mut up, n);
            });
            for i in 0..n {
                for j in 0..n {
                    let (a, b) = (i.max(j), i.min(j));
                    assert_eq!(lo[i * n + j], src[a * n + b]);
                    assert_eq!(up[i * n + j], src[b * n + a]);
                }
            }
        }
    }
}
