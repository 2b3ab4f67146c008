//! The Cholesky evaluator of the action: `K^0`, the entrywise layer maps on the training points
//! with their derivatives, and `(S, dS/dQ)` by reverse accumulation (module docs of [`super`]).
use super::Problem;
use crate::control::Control;
use crate::error::{invalid, shape, AkError, Result};
use crate::kernels::activation::{Activation, Expectation, ExpectationGrad};
use crate::kernels::hermite::grad::{grad_row, value_row, GradTable};
use crate::kernels::hermite::HermiteTable;
use crate::kernels::input::input_kernel_symmetric;
use crate::kernels::net::{mirror_lower, mirror_upper, Mlp, Rows};
use crate::kernels::quadrature::PolarRule;
use crate::linalg::{
    cholesky_scaled_with_jitter, cholesky_solve_in_place, solve_lower_triangular_in_place, BufferPool,
};
use crate::threads::with_threads;
use crate::validate;
use faer::linalg::matmul::triangular::{self, BlockStructure};
use faer::linalg::triangular_inverse::invert_lower_triangular;
use faer::{Accum, Mat, MatRef, Par};
use rayon::prelude::*;

impl<'a> Problem<'a> {
    /// Builds `K^0` of the training inputs `x` (P x d) for targets `y` (P x C) and the first
    /// layer map (`ctl` cancels it).
    pub fn new(
        net: &'a Mlp,
        x: Rows<'_>,
        y: MatRef<'a, f64>,
        n_threads: usize,
        ctl: &Control,
    ) -> Result<Self> {
        net.validate()?;
        if net.depth == 0 {
            return Err(invalid(
                "net",
                "kernel renormalization needs at least one hidden layer (depth >= 1)",
            ));
        }
        let (p, d) = (x.rows, x.cols);
        if p == 0 || d == 0 {
            return Err(shape("X", format!("must be non-empty, got ({p}, {d})")));
        }
        // Peak P x P buffers of a fit (measured: benches/README.md, bench_large_p.py). One
        // hidden layer: M^1 and the factor of A (tr A^{-1} by blocks), then the predictor's K^L
        // and factor after M^1 is freed: 2 (+ P x 256). Deeper: M^1, per layer >= 2 its map and
        // two derivative buffers, then A's factor, its inverse, G and the reverse pass: ~3L.
        // Paths add their own check (solve_path_then).
        let count = if net.depth == 1 { 2.5 } else { (3 * net.depth + 1) as f64 };
        validate::dense_memory(
            "X",
            "kernel renormalization's P x P matrices",
            count,
            p,
            p,
            "use fewer training points",
        )?;
        validate::finite("X", x.data)?;
        validate::targets(y, p)?;
        let mut k0 = vec![0.0; p * p];
        with_threads(n_threads, |par| {
            input_kernel_symmetric(x.mat(), net.sigma_w, net.sigma_b, &mut k0, par)
        });
        let mut prob = Problem {
            net,
            p,
            c: y.ncols(),
            y,
            // with the expansions, the quadrature only computes the entries that miss its bound
            rule: PolarRule::new(net.quadrature_order),
            m1: Vec::new(),
            pool: BufferPool::new(p * p),
        };
        if prob.uses_hermite() {
            prob.rule = net.hermite_fallback_rule();
        }
        // K^0 is not kept: only M^1 depends on it (and the readout kernels are rebuilt from X)
        prob.m1 = with_threads(n_threads, |_| prob.layer_map(&k0, 1.0, false, ctl))?.0;
        prob.pool.give(k0);
        Ok(prob)
    }

    /// Whether `K^L(Q) = (prod_l Q_l) K^L(1)` exactly.
    pub fn spectral_applies(&self) -> bool {
        self.net.depth == 1
            || (matches!(self.net.activation, crate::kernels::activation::Activation::Linear)
                && self.net.sigma_b == 0.0)
    }

    /// Whether the layer maps use the Hermite expansions ([`crate::kernels::hermite::grad`]):
    /// with `method = "auto"` or `"hermite"` for the smooth built-in activations (closed forms
    /// stay closed forms; callables keep the quadrature, whose phi'' is a difference quotient).
    /// Entries that miss the series' error bound (|rho| -> 1) take the 1-D rule (collinear) or
    /// the order-128 polar rule.
    pub fn uses_hermite(&self) -> bool {
        use crate::kernels::activation::Method;
        matches!(self.net.method, Method::Hermite | Method::Auto)
            && !self.net.activation.has_closed_form()
            && !matches!(self.net.activation, Activation::Custom(_))
    }

    /// One layer map on the training points: `M = sigma_w^2 E[phi phi](K_prev) + sigma_b^2` with
    /// `K_prev = scale * kprev` (scaled row by row, never stored)
    /// (full, symmetric) and, with `grads`, `(Dc, D)`: `Dc_ij = dE_ij/dK_ij` (symmetric) and
    /// `D_ij = dE_ij/dK_ii` (not symmetric; entry (i, j) of the lower triangle holds dE/da,
    /// the mirrored entry (j, i) dE/db of the same pair). `ctl` is checked before every row
    /// (a quadrature layer map of a few hundred points takes seconds).
    #[allow(clippy::type_complexity)]
    fn layer_map(
        &self,
        kprev: &[f64],
        scale: f64,
        grads: bool,
        ctl: &Control,
    ) -> Result<(Vec<f64>, Option<(Vec<f64>, Vec<f64>)>)> {
        let p = self.p;
        let (s2w, s2b) = (
            self.net.sigma_w * self.net.sigma_w,
            self.net.sigma_b * self.net.sigma_b,
        );
        let diag: Vec<f64> = (0..p).map(|j| scale * kprev[j * p + j]).collect();
        let scaled_row = |i: usize, n: usize| -> Vec<f64> { kprev[i * p..i * p + n].iter().map(|v| scale * v).collect() };
        // every entry of the pooled buffers is written below (rows' lower triangles, then mirrors)
        let mut m = self.pool.take();
        let out = if grads {
            let eg = ExpectationGrad {
                act: &self.net.activation,
                rule: &self.rule,
            };
            let table = if self.uses_hermite() {
                Some(GradTable::new(&self.net.activation, &diag)?)
            } else {
                None
            };
            let (mut dc, mut da, mut db) = (self.pool.take(), self.pool.take(), self.pool.take());
            m.par_chunks_mut(p)
                .zip(dc.par_chunks_mut(p))
                .zip(da.par_chunks_mut(p).zip(db.par_chunks_mut(p)))
                .enumerate()
                .try_for_each(|(i, ((mr, dcr), (dar, dbr)))| -> Result<()> {
                    ctl.checkpoint()?;
                    let n = i + 1;
                    let a = vec![diag[i]; n];
                    let mut e = vec![0.0; n];
                    let krow = &scaled_row(i, n);
                    if let Some(t) = &table {
                        let (dcr, dar, dbr) = (&mut dcr[..n], &mut dar[..n], &mut dbr[..n]);
                        grad_row(t, i, &diag, krow, &mut e, dcr, dar, dbr, &eg)?;
                    } else {
                        let (dcr, dar, dbr) = (&mut dcr[..n], &mut dar[..n], Some(&mut dbr[..n]));
                        eg.batch(&a, &diag[..n], krow, &mut e, dcr, dar, dbr)?;
                    }
                    for j in 0..n {
                        mr[j] = s2w * e[j] + s2b;
                    }
                    Ok(())
                })?;
            mirror_lower(&mut dc, p);
            // upper triangle of D: D_ji = dE_ij/dK_jj, the lower triangle of db transposed (in
            // TILE x TILE tiles: a row of D reads a column of db)
            const TILE: usize = 64;
            da.par_chunks_mut(p * TILE).enumerate().for_each(|(b, rows)| {
                let j0 = b * TILE;
                for i0 in (j0..p).step_by(TILE) {
                    for (jj, row) in rows.chunks_mut(p).enumerate() {
                        let j = j0 + jj;
                        for i in i0.max(j + 1)..(i0 + TILE).min(p) {
                            row[i] = db[i * p + j];
                        }
                    }
                }
            });
            self.pool.give(db);
            Some((dc, da))
        } else {
            let ex = Expectation {
                act: &self.net.activation,
                method: self.net.method,
                rule: &self.rule,
            };
            let table = if self.uses_hermite() {
                Some(HermiteTable::new(&self.net.activation, &diag, false)?)
            } else {
                None
            };
            m.par_chunks_mut(p)
                .enumerate()
                .try_for_each(|(i, mr)| -> Result<()> {
                    ctl.checkpoint()?;
                    let n = i + 1;
                    let a = vec![diag[i]; n];
                    let mut e = vec![0.0; n];
                    let krow = &scaled_row(i, n);
                    match &table {
                        Some(t) => value_row(t, i, &diag, krow, &mut e, &ex)?,
                        None => ex.batch(&a, &diag[..n], krow, &mut e, None)?,
                    }
                    for j in 0..n {
                        mr[j] = s2w * e[j] + s2b;
                    }
                    Ok(())
                })?;
            None
        };
        mirror_lower(&mut m, p);
        if m.iter().any(|v| !v.is_finite()) {
            return Err(AkError::NonFinite {
                name: "X",
                msg: "a renormalized layer kernel overflowed".into(),
            });
        }
        Ok((m, out))
    }

    /// The renormalized readout kernel `K^L(q)` of the training points (P x P row-major).
    pub fn readout_kernel(&self, q: &[f64], ctl: &Control) -> Result<Vec<f64>> {
        let mut k: Option<Vec<f64>> = None; // K^l / Q_l (None: M^1)
        for l in 1..q.len() {
            ctl.checkpoint()?;
            let (m, _) = self.layer_map(k.as_deref().unwrap_or(&self.m1), q[l - 1], false, ctl)?;
            if let Some(old) = k.replace(m) {
                self.pool.give(old);
            }
        }
        let ql = q[q.len() - 1];
        Ok(match k {
            Some(mut m) => {
                m.par_iter_mut().for_each(|v| *v *= ql);
                m
            }
            None => self.scaled(&self.m1, ql),
        })
    }

    /// `s * m` in a pooled buffer.
    fn scaled(&self, m: &[f64], s: f64) -> Vec<f64> {
        let mut out = self.pool.take();
        out.par_iter_mut().zip(m.par_iter()).for_each(|(o, v)| *o = s * v);
        out
    }

    /// Returns the buffers of an evaluation to the pool.
    fn recycle(&self, ms: Vec<Vec<f64>>, derivs: Vec<(Vec<f64>, Vec<f64>)>) {
        for m in ms {
            self.pool.give(m);
        }
        for (dc, d) in derivs {
            self.pool.give(dc);
            self.pool.give(d);
        }
    }

    /// `(S(Q), dS/dQ)` at a user-given `q` (validated: `Q`, `width`, `temperature`) with the
    /// Cholesky evaluator, to inspect the landscape.
    pub fn action(
        &self,
        widths: &[f64],
        t: f64,
        q: &[f64],
        n_threads: usize,
        ctl: &Control,
    ) -> Result<(f64, Vec<f64>)> {
        let depth = self.net.depth;
        crate::validate::layer_scales("Q", q, depth)?;
        crate::validate::widths(widths, depth)?;
        crate::validate::temperature(t)?;
        crate::threads::with_threads(n_threads, |par| self.action_and_gradient(widths, t, q, par, ctl))
            .map(|(s, g, _)| (s, g))
    }

    /// `(S, dS/dQ, jitter)` at `q` with the Cholesky evaluator. Layers of infinite width add
    /// no prior term (their `Q` is pinned to 1 by the caller).
    pub fn action_and_gradient(
        &self,
        widths: &[f64],
        t: f64,
        q: &[f64],
        par: Par,
        ctl: &Control,
    ) -> Result<(f64, Vec<f64>, f64)> {
        let (p, c, depth) = (self.p, self.c, self.net.depth);
        // Forward: M^1 is fixed (K^0 does not depend on Q); layers l >= 2 also keep the
        // derivatives of their map for the reverse pass. K^l = Q_l M^l is never stored (the maps
        // scale their input rows): A = Q_L M^L + T I is factored straight from M^L.
        let mut ms: Vec<Vec<f64>> = Vec::with_capacity(depth);
        let mut derivs = Vec::with_capacity(depth.saturating_sub(1));
        for l in 1..depth {
            ctl.checkpoint()?;
            // K^l = Q_l M^l, scaled inside the map
            let mprev: &[f64] = if l == 1 { &self.m1 } else { &ms[l - 2] };
            let (m, d) = self.layer_map(mprev, q[l - 1], true, ctl)?;
            ms.push(m);
            derivs.push(d.unwrap());
        }
        let ml: &[f64] = if depth == 1 { &self.m1 } else { &ms[depth - 2] };
        // Cholesky of A = Q_L M^L + T I (column-major view of the symmetric M^L: the
        // factorization copies contiguous columns, scaled)
        // (the factorization writes every entry of the pooled buffer: L and zeros above)
        let mut lbuf = self.pool.take();
        let info = cholesky_scaled_with_jitter(
            "A",
            MatRef::from_column_major_slice(ml, p, p),
            q[depth - 1],
            t,
            faer::MatMut::from_column_major_slice_mut(&mut lbuf, p, p),
            par,
        )?;
        ctl.checkpoint()?;
        let lf = MatRef::from_column_major_slice(&lbuf, p, p);
        let mut z = self.y.to_owned();
        cholesky_solve_in_place(lf, z.as_mut(), par)?;
        let (mut data, mut zz) = (0.0, 0.0);
        for j in 0..c {
            for i in 0..p {
                data += self.y[(i, j)] * z[(i, j)];
                zz += z[(i, j)] * z[(i, j)];
            }
        }
        let yz = data;
        let logdet: f64 = 2.0 * (0..p).map(|i| lf[(i, i)].ln()).sum::<f64>();
        data += c as f64 * logdet;
        let s2w = self.net.sigma_w * self.net.sigma_w;
        let mut grad = vec![0.0; depth];
        if depth == 1 {
            // dS_data/dQ = 1/2 tr(G M^1) with G = C A^{-1} - Z Z^T needs no P x P buffer beyond
            // the factor: A = Q M^1 + t' I (t' = T + jitter) gives tr(A^{-1} M^1) =
            // (P - t' tr A^{-1}) / Q and tr(Z^T M^1 Z) = (tr(Y^T Z) - t' |Z|^2) / Q, with
            // tr A^{-1} = |L^{-1}|_F^2 (block triangular solves).
            let tp = t + info.jitter;
            let tr_inv = inverse_frobenius2(lf, par);
            self.pool.give(lbuf);
            grad[0] = 0.5 * (c as f64 * (p as f64 - tp * tr_inv) - (yz - tp * zz)) / q[0];
        } else {
            self.reverse(&mut grad, lbuf, &z, &ms, &derivs, q, s2w, par, ctl)?;
            self.recycle(ms, derivs);
        }
        let mut s = 0.5 * data;
        for l in 0..depth {
            if widths[l].is_finite() {
                s += 0.5 * widths[l] * (q[l] - q[l].ln());
                grad[l] += 0.5 * widths[l] * (1.0 - 1.0 / q[l]);
            } else {
                grad[l] = 0.0;
            }
        }
        if !s.is_finite() || grad.iter().any(|g| !g.is_finite()) {
            return Err(AkError::NonFinite {
                name: "action",
                msg: format!("non-finite action or gradient at Q = {q:?}"),
            });
        }
        Ok((s, grad, info.jitter))
    }

    /// The reverse pass of a deep net (depth >= 2): `grad[l-1] = 1/2 tr(G_l M^l)` from the
    /// factor `lf` of `A` and `Z = A^{-1} Y`.
    #[allow(clippy::too_many_arguments)]
    fn reverse(
        &self,
        grad: &mut [f64],
        lbuf: Vec<f64>,
        z: &Mat<f64>,
        ms: &[Vec<f64>],
        derivs: &[(Vec<f64>, Vec<f64>)],
        q: &[f64],
        s2w: f64,
        par: Par,
        ctl: &Control,
    ) -> Result<()> {
        let (p, c, depth) = (self.p, self.c, self.net.depth);
        // A^{-1} = L^{-T} L^{-1}: triangular inverse, then a triangular product (P^3 / 3 each).
        // W = L^{-1}: only its lower triangle is written, and only that one is read below
        let mut wbuf = self.pool.take();
        invert_lower_triangular(
            faer::MatMut::from_column_major_slice_mut(&mut wbuf, p, p),
            MatRef::from_column_major_slice(&lbuf, p, p),
            par,
        );
        self.pool.give(lbuf);
        let w = MatRef::from_column_major_slice(&wbuf, p, p);
        ctl.checkpoint()?;
        // G = C A^{-1} - Z Z^T: its lower triangle in column-major order is the upper triangle
        // of the row-major buffer `gbar` (= dS_data/dK^L, symmetric), completed by a mirror.
        // the triangular product writes the lower triangle (column-major), the mirror the rest
        let mut gbar = self.pool.take();
        {
            let mut g = faer::MatMut::from_column_major_slice_mut(&mut gbar, p, p);
            triangular::matmul(
                g.as_mut(),
                BlockStructure::TriangularLower,
                Accum::Replace,
                w.transpose(),
                BlockStructure::TriangularUpper,
                w,
                BlockStructure::TriangularLower,
                c as f64,
                par,
            );
            triangular::matmul(
                g.as_mut(),
                BlockStructure::TriangularLower,
                Accum::Add,
                z.as_ref(),
                BlockStructure::Rectangular,
                z.transpose(),
                BlockStructure::Rectangular,
                -1.0,
                par,
            );
        }
        self.pool.give(wbuf);
        mirror_upper(&mut gbar, p);
        // Reverse accumulation (with the 1/2 of the action): dS/dQ_l = 1/2 tr(G_l M^l).
        for l in (1..=depth).rev() {
            ctl.checkpoint()?;
            let ml: &[f64] = if l == 1 { &self.m1 } else { &ms[l - 2] };
            if l == 2 {
                // the last step fused: G_1 (below) is never stored, tr(G_1 M^1) is summed row by
                // row in the same order (the same bits as forming it)
                let (dc, d) = &derivs[0];
                let scale = q[1] * s2w;
                let m1 = &self.m1;
                let rows: Vec<(f64, f64)> = (0..p)
                    .into_par_iter()
                    .map(|i| {
                        let r = i * p..(i + 1) * p;
                        let (gr, mr, dcr, dr, m1r) = (&gbar[r.clone()], &ml[r.clone()], &dc[r.clone()], &d[r.clone()], &m1[r]);
                        let s2 = gr.iter().zip(mr).map(|(g, m)| g * m).sum::<f64>();
                        let mut diag = 0.0;
                        for j in 0..p {
                            diag += gr[j] * dr[j];
                        }
                        let gii = scale * (gr[i] * (dcr[i] + 2.0 * dr[i]) + 2.0 * (diag - gr[i] * dr[i]));
                        let mut s1 = 0.0;
                        for j in 0..p {
                            let g1 = if j == i { gii } else { scale * gr[j] * dcr[j] };
                            s1 += g1 * m1r[j];
                        }
                        (s2, s1)
                    })
                    .collect();
                grad[1] = 0.5 * rows.iter().map(|r| r.0).sum::<f64>();
                grad[0] = 0.5 * rows.iter().map(|r| r.1).sum::<f64>();
                break;
            }
            let rows: Vec<f64> = gbar
                .par_chunks(p)
                .zip(ml.par_chunks(p))
                .map(|(gr, mr)| gr.iter().zip(mr).map(|(g, m)| g * m).sum::<f64>())
                .collect();
            grad[l - 1] = 0.5 * rows.iter().sum::<f64>();
            if l == 1 {
                break;
            }
            // G_{l-1} = Q_l sigma_w^2 J^T G_l: off-diagonal entries through dE/dc, the diagonal
            // through its own total derivative plus dE/da of every entry of its row.
            let (dc, d) = &derivs[l - 2];
            let scale = q[l - 1] * s2w;
            let mut next = self.pool.take(); // every entry written
            next.par_chunks_mut(p).enumerate().for_each(|(i, out)| {
                let (gr, dcr, dr) = (
                    &gbar[i * p..(i + 1) * p],
                    &dc[i * p..(i + 1) * p],
                    &d[i * p..(i + 1) * p],
                );
                let mut diag = 0.0;
                for j in 0..p {
                    out[j] = scale * gr[j] * dcr[j];
                    diag += gr[j] * dr[j];
                }
                // entry (i, i): its total derivative dc + 2 da (D_ii = da), plus 2 sum_{j != i} G_ij D_ij
                out[i] = scale * (gr[i] * (dcr[i] + 2.0 * dr[i]) + 2.0 * (diag - gr[i] * dr[i]));
            });
            self.pool.give(std::mem::replace(&mut gbar, next));
        }
        self.pool.give(gbar);
        Ok(())
    }
}

/// `|L^{-1}|_F^2 = tr (L L^T)^{-1}` for a lower-triangular `l`, by triangular solves on blocks
/// of 256 columns of the identity (column j of `L^{-1}` vanishes above row j: each block is
/// solved with the trailing submatrix only, P^3 / 3 flops in all), P x 256 of memory per
/// thread. Blocks run in parallel (each solve sequential) and their sums are added in block
/// order: the result does not depend on the number of threads.
fn inverse_frobenius2(l: MatRef<'_, f64>, par: Par) -> f64 {
    const B: usize = 256;
    let p = l.nrows();
    let block = |j0: usize| -> f64 {
        let (n, w) = (p - j0, B.min(p - j0));
        let mut blk = Mat::<f64>::zeros(n, w);
        for k in 0..w {
            blk[(k, k)] = 1.0;
        }
        solve_lower_triangular_in_place(l.submatrix(j0, j0, n, n), blk.as_mut(), Par::Seq);
        (0..w).map(|j| blk.col(j).iter().map(|v| v * v).sum::<f64>()).sum()
    };
    let starts: Vec<usize> = (0..p).step_by(B).collect();
    let sums: Vec<f64> = match par {
        Par::Seq => starts.iter().map(|&j0| block(j0)).collect(),
        _ => starts.par_iter().map(|&j0| block(j0)).collect(),
    };
    sums.iter().sum()
}
