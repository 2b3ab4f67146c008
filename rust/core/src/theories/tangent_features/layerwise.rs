//! Network-structured adaptive tangent features: each dense layer's update is transformed on
//! both sides, `Theta_l = M2_l B_l M1_l^T` (`M1` on the layer's inputs, `M2` on its backprop
//! vectors, the authors' factorised model), with cost
//! `sum_l |B_l|_F^2 + lam (|M1_l - I|_F^2 + |M2_l - I|_F^2)` under `Phi theta = r`. A layer's
//! bias is its inputs' extra constant column (`[A, s_b 1]`, update `[Theta_W, b]`), so `M1` also
//! mixes the bias coordinate (the authors transform the bias by `M2` only).
//!
//! For fixed `Theta_l = V diag(sigma) U^T` (SVD) the cheapest transforms are aligned with it,
//! `M1 = I + U diag(z - 1) U^T`, `M2 = I + V diag(z - 1) V^T`, `z_j` from
//! [`super::penalty::two_sided`], so the problem is `min sum_l sum_j w2(sigma_j(Theta_l))`
//! (a Schatten-2/3-like, non-convex spectral penalty; digest §2.3). For fixed transforms the
//! update is kernel interpolation with `K = sum_l (A_l P_l A_l^T) ∘ (G_l Q_l G_l^T)`,
//! `P = M1 M1^T = I + U diag(z^2 - 1) U^T`, `Q = M2 M2^T` likewise, and
//! `Theta_l = Q_l G_l^T diag(alpha) A_l P_l`, `alpha = K^{-1} r`. Exact alternating minimisation
//! between the two steps never increases the objective; the transforms stay identity plus
//! rank <= min(n C, fan_in + 1, fan_out). Start: identity (the fixed tangent-feature model).
use super::penalty;
use crate::control::Control;
use crate::error::{AkError, Result};
use crate::finite::tangent::{block_outputs, expand_hadamard, BlockRef};
use crate::linalg::{cholesky, cholesky_solve_in_place};
use crate::solve::SolveReport;
use faer::{Accum, Mat, MatRef, Par};

/// A layer's transforms: `M1 = I + U_in diag(z - 1) U_in^T`, `M2 = I + U_out diag(z - 1) U_out^T`.
#[derive(Debug, Clone)]
pub struct LayerTransform {
    pub input_directions: Mat<f64>,
    pub output_directions: Mat<f64>,
    pub scales: Vec<f64>,
    /// Singular values of the layer's update along the directions.
    pub singular_values: Vec<f64>,
}

impl LayerTransform {
    fn identity(fan_in: usize, fan_out: usize) -> Self {
        LayerTransform {
            input_directions: Mat::zeros(fan_in, 0),
            output_directions: Mat::zeros(fan_out, 0),
            scales: Vec::new(),
            singular_values: Vec::new(),
        }
    }
}

/// Result of the layerwise solve.
#[derive(Debug, Clone)]
pub struct LayerwiseSolution {
    /// `K^{-1} r` with the kernel of the transforms the updates were computed with.
    pub alpha: Vec<f64>,
    /// Per layer `Theta_l` (fan_out x (fan_in [+ 1 bias column])).
    pub updates: Vec<Mat<f64>>,
    pub transforms: Vec<LayerTransform>,
    /// Anderson extrapolations taken (the report's `n_eval` counts the plain steps plus every
    /// extrapolation whose objective was evaluated).
    pub extrapolations: usize,
    pub objective: f64,
    pub objective_history: Vec<f64>,
    pub feasibility: f64,
    /// Initial tangent kernel and the adapted kernel `Phi M M^T Phi^T` of the final transforms.
    pub kernel: Mat<f64>,
    /// Per-layer initial tangent kernels `J_l J_l^T` (their sum, in layer order, is `kernel`).
    pub layer_kernels: Vec<Mat<f64>>,
    pub adapted_kernel: Mat<f64>,
    pub report: SolveReport,
}

/// Inputs with the bias column appended (when the layer has a bias).
fn augmented(b: &BlockRef<'_>) -> Mat<f64> {
    let (n, fi) = (b.inputs.nrows(), b.inputs.ncols());
    let extra = usize::from(b.b_offset.is_some());
    Mat::from_fn(n, fi + extra, |i, k| if k < fi { b.inputs[(i, k)] } else { b.bias_scale })
}

fn matmul(a: MatRef<'_, f64>, b: MatRef<'_, f64>, par: Par) -> Mat<f64> {
    let mut out = Mat::<f64>::zeros(a.nrows(), b.ncols());
    crate::linalg::matmul(out.as_mut(), Accum::Replace, a, b, 1.0, par);
    out
}

/// `F F^T + (F U) diag(d) (F U)^T`: the Gram `base = F F^T` plus a low-rank correction.
fn transformed_gram(base: &Mat<f64>, f: MatRef<'_, f64>, u: &Mat<f64>, d: &[f64], par: Par) -> Mat<f64> {
    let mut k = base.clone();
    if !d.is_empty() {
        let fu = matmul(f, u.as_ref(), par);
        let fud = Mat::from_fn(fu.nrows(), fu.ncols(), |i, j| fu[(i, j)] * d[j]);
        crate::linalg::matmul(k.as_mut(), Accum::Add, fud.as_ref(), fu.transpose(), 1.0, par);
    }
    k
}

/// Thin SVD `Theta = V diag(sigma) U^T` (V: fan_out side, U: fan_in side), singular values
/// descending, those below `1e-7 sigma_max` dropped (their transforms are the identity to
/// ~1e-14), from the symmetric eigendecomposition of the smaller Gram matrix (sequential, so
/// independent of the thread count).
fn svd(theta: &Mat<f64>, par: Par) -> Result<(Mat<f64>, Vec<f64>, Mat<f64>)> {
    let tall = theta.nrows() <= theta.ncols(); // Gram on the fan_out side
    let t = if tall { theta.as_ref() } else { theta.transpose() };
    let gram = matmul(t, t.transpose(), par);
    let gram = Mat::from_fn(gram.nrows(), gram.ncols(), |i, j| 0.5 * (gram[(i, j)] + gram[(j, i)]));
    let (w, vecs) = crate::linalg::symmetric_eigen("layer update", gram.as_ref(), par)?;
    let smax = w.last().copied().unwrap_or(0.0).max(0.0).sqrt();
    let keep: Vec<usize> = (0..w.len()).rev().filter(|&j| w[j] > 0.0 && w[j].sqrt() > 1e-7 * smax).collect();
    let sig: Vec<f64> = keep.iter().map(|&j| w[j].sqrt()).collect();
    let left = Mat::from_fn(t.nrows(), keep.len(), |i, j| vecs[(i, keep[j])]);
    let tl = matmul(t.transpose(), left.as_ref(), par);
    let right = Mat::from_fn(t.ncols(), keep.len(), |i, j| tl[(i, j)] / sig[j]);
    Ok(if tall { (left, sig, right) } else { (right, sig, left) })
}

/// `(I + U diag(d) U^T) S` (left) for a low-rank correction.
fn apply_left(u: &Mat<f64>, d: &[f64], s: &Mat<f64>, par: Par) -> Mat<f64> {
    let mut out = s.clone();
    if !d.is_empty() {
        let uts = matmul(u.transpose(), s.as_ref(), par);
        let ud = Mat::from_fn(u.nrows(), u.ncols(), |i, j| u[(i, j)] * d[j]);
        crate::linalg::matmul(out.as_mut(), Accum::Add, ud.as_ref(), uts.as_ref(), 1.0, par);
    }
    out
}

/// Gram matrices `A' A'^T` and `G G^T` of every layer (the identity transforms' factors).
type Grams = Vec<(Mat<f64>, Mat<f64>)>;

fn kernel_of(blocks: &[BlockRef<'_>], aug: &[Mat<f64>], grams: &Grams, tr: &[LayerTransform], par: Par) -> Mat<f64> {
    let rows = blocks[0].backprop.nrows();
    let mut k = Mat::<f64>::zeros(rows, rows);
    for (((b, a), (ga, gg)), t) in blocks.iter().zip(aug).zip(grams).zip(tr) {
        let d: Vec<f64> = t.scales.iter().map(|z| z * z - 1.0).collect();
        let ka = transformed_gram(ga, a.as_ref(), &t.input_directions, &d, par);
        let kg = transformed_gram(gg, b.backprop, &t.output_directions, &d, par);
        k += &expand_hadamard(&ka, kg, block_outputs(b));
    }
    k
}

/// Checks warm-start transforms (argument `init_transforms`) against the blocks.
fn check_init(blocks: &[BlockRef<'_>], aug: &[Mat<f64>], init: &[LayerTransform]) -> Result<()> {
    if init.len() != blocks.len() {
        return Err(crate::error::invalid("init_transforms", format!("needs one transform per layer ({})", blocks.len())));
    }
    for ((t, b), a) in init.iter().zip(blocks).zip(aug) {
        let k = t.scales.len();
        let ok = t.input_directions.nrows() == a.ncols()
            && t.output_directions.nrows() == b.backprop.ncols()
            && t.input_directions.ncols() == k
            && t.output_directions.ncols() == k
            && t.scales.iter().all(|z| z.is_finite() && *z > 0.0);
        if !ok {
            return Err(crate::error::invalid("init_transforms", "transforms of a different network, or scales not > 0"));
        }
        crate::validate::finite_mat("init_transforms", t.input_directions.as_ref())?;
        crate::validate::finite_mat("init_transforms", t.output_directions.as_ref())?;
    }
    Ok(())
}

/// Solves the layerwise problem on the training blocks for residual targets `r`, from the
/// identity transforms or from `init` (a warm start, e.g. the solution at a larger `reg`).
pub fn solve(
    blocks: &[BlockRef<'_>],
    r: &[f64],
    opts: &super::Options,
    init: Option<&[LayerTransform]>,
    ctl: &Control,
    par: Par,
) -> Result<LayerwiseSolution> {
    let lam = opts.reg;
    let pen = |s: f64| if lam.is_infinite() { (s * s, 1.0) } else { penalty::two_sided(s, lam) };
    let aug: Vec<Mat<f64>> = blocks.iter().map(augmented).collect();
    let mut tr: Vec<LayerTransform> =
        aug.iter().zip(blocks).map(|(a, b)| LayerTransform::identity(a.ncols(), b.backprop.ncols())).collect();
    let grams: Grams = blocks
        .iter()
        .zip(&aug)
        .map(|(b, a)| (matmul(a.as_ref(), a.transpose(), par), matmul(b.backprop, b.backprop.transpose(), par)))
        .collect();
    // the identity transforms' kernel, layer by layer (as `kernel_of` sums it)
    let layer_kernels: Vec<Mat<f64>> =
        blocks.iter().zip(&grams).map(|(b, (ga, gg))| expand_hadamard(ga, gg.clone(), block_outputs(b))).collect();
    let rows = blocks[0].backprop.nrows();
    let mut k0 = Mat::<f64>::zeros(rows, rows);
    for kl in &layer_kernels {
        k0 += kl;
    }
    let warm = init.is_some();
    if let Some(init) = init {
        check_init(blocks, &aug, init)?;
        tr = init.to_vec();
    }
    let (mut history, mut decreases): (Vec<f64>, Vec<f64>) = (Vec::new(), Vec::new());
    let (mut converged, mut n_iter) = (false, 0);
    // Anderson state: the update `x_k` whose SVD gave the current transforms (None: identity
    // or warm-start transforms, which no feasible update of this `reg` produced)
    let mut anderson = Anderson::new(opts.anderson);
    let mut state: Option<Vec<Mat<f64>>> = None;
    let (mut accepted, mut proposed) = (0usize, 0usize);
    loop {
        ctl.checkpoint()?;
        let k = if n_iter == 0 && !warm { k0.clone() } else { kernel_of(blocks, &aug, &grams, &tr, par) };
        let l = cholesky(k.as_ref()).ok_or_else(|| AkError::NotPositiveDefinite {
            name: "tangent kernel",
            msg: "the (transformed) tangent kernel is singular: the tangent features cannot interpolate the targets"
                .into(),
        })?;
        let mut rhs = Mat::from_fn(r.len(), 1, |i, _| r[i]);
        cholesky_solve_in_place(l.as_ref(), rhs.as_mut(), par)?;
        let alpha = rhs.col_as_slice(0).to_vec();
        let mut updates = Vec::with_capacity(blocks.len());
        for ((b, a), t) in blocks.iter().zip(&aug).zip(&tr) {
            let (c, n) = (block_outputs(b), b.inputs.nrows());
            let fo = b.backprop.ncols();
            let ga = Mat::from_fn(n, fo, |i, q| (0..c).map(|cc| alpha[i * c + cc] * b.backprop[(i * c + cc, q)]).sum::<f64>());
            let s = matmul(ga.transpose(), a.as_ref(), par); // G^T diag(alpha) A  (fan_out x fan_in')
            let d: Vec<f64> = t.scales.iter().map(|z| z * z - 1.0).collect();
            let qs = apply_left(&t.output_directions, &d, &s, par);
            let theta = apply_left(&t.input_directions, &d, &qs.transpose().to_owned(), par).transpose().to_owned();
            updates.push(theta);
        }
        let (next, obj) = transforms_of(&updates, &pen, par)?;
        if let Some(&prev) = history.last() {
            let dec = (prev - obj) / f64::abs(prev).max(f64::MIN_POSITIVE);
            decreases.push(dec);
            converged = dec <= opts.tol;
        }
        history.push(obj);
        if converged || n_iter >= opts.max_iter {
            let kfit: Vec<f64> = (0..r.len()).map(|i| (0..r.len()).map(|j| k[(i, j)] * alpha[j]).sum()).collect();
            let rn = r.iter().map(|x| x * x).sum::<f64>().sqrt().max(f64::MIN_POSITIVE);
            let feasibility = kfit.iter().zip(r).map(|(a, b)| (a - b).powi(2)).sum::<f64>().sqrt() / rn;
            let adapted = kernel_of(blocks, &aug, &grams, &next, par);
            let residual = decreases.last().copied().unwrap_or(0.0).abs();
            let method = if opts.anderson > 0 { "alternating+anderson" } else { "alternating" };
            let report = SolveReport::new(method, converged, n_iter, n_iter + 1 + proposed, residual, decreases);
            return Ok(LayerwiseSolution {
                alpha,
                updates,
                transforms: next,
                extrapolations: accepted,
                objective: obj,
                objective_history: history,
                feasibility,
                kernel: k0,
                layer_kernels,
                adapted_kernel: adapted,
                report,
            });
        }
        n_iter += 1;
        // Safeguarded Anderson extrapolation of the fixed-point map x -> G(x) = `updates`:
        // an affine combination of feasible updates is feasible, so its objective is exact and
        // the step is taken only when it beats the plain step (objective stays monotone, as
        // G never increases it: the two-sided quadratic majorises the penalty at any feasible x).
        let mut step = None;
        if let Some(x) = state.take() {
            anderson.push(&x, &updates);
            if let Some(xa) = anderson.extrapolate() {
                proposed += 1;
                let (ta, oa) = transforms_of(&xa, &pen, par)?;
                if oa < obj && oa.is_finite() {
                    step = Some((xa, ta));
                } else {
                    anderson.clear();
                }
            }
        }
        match step {
            Some((xa, ta)) => {
                accepted += 1;
                tr = ta;
                state = Some(xa);
            }
            None => {
                tr = next;
                state = if opts.anderson > 0 { Some(updates) } else { None };
            }
        }
    }
}

/// SVD-aligned optimal transforms of the updates `theta` and the objective `sum w2(sigma)`.
fn transforms_of(
    theta: &[Mat<f64>],
    pen: &impl Fn(f64) -> (f64, f64),
    par: Par,
) -> Result<(Vec<LayerTransform>, f64)> {
    let mut obj = 0.0;
    let mut out = Vec::with_capacity(theta.len());
    for th in theta {
        let (vout, sig, uin) = svd(th, par)?;
        obj += sig.iter().map(|&x| pen(x).0).sum::<f64>();
        out.push(LayerTransform {
            input_directions: uin,
            output_directions: vout,
            scales: sig.iter().map(|&x| pen(x).1).collect(),
            singular_values: sig,
        });
    }
    Ok((out, obj))
}

/// Anderson mixing (type II, memory `m`) on the per-layer updates, flattened: keeps the last
/// `m + 1` pairs `(g_i = G(x_i), f_i = g_i - x_i)` and proposes `sum_i c_i g_i` with
/// `sum c_i = 1` minimising `|sum_i c_i f_i|` (small ridge on the normal equations). Sums in a
/// fixed order, so the result does not depend on the thread count.
struct Anderson {
    m: usize,
    g: std::collections::VecDeque<Vec<f64>>,
    f: std::collections::VecDeque<Vec<f64>>,
    shapes: Vec<(usize, usize)>,
}

impl Anderson {
    fn new(m: usize) -> Self {
        Anderson { m, g: Default::default(), f: Default::default(), shapes: Vec::new() }
    }

    fn clear(&mut self) {
        self.g.clear();
        self.f.clear();
    }

    fn push(&mut self, x: &[Mat<f64>], gx: &[Mat<f64>]) {
        if self.m == 0 {
            return;
        }
        self.shapes = gx.iter().map(|t| (t.nrows(), t.ncols())).collect();
        let flat = |ms: &[Mat<f64>]| -> Vec<f64> {
            let mut v = Vec::new();
            for t in ms {
                for j in 0..t.ncols() {
                    v.extend_from_slice(t.col_as_slice(j));
                }
            }
            v
        };
        let g = flat(gx);
        let f: Vec<f64> = g.iter().zip(flat(x)).map(|(a, b)| a - b).collect();
        self.g.push_back(g);
        self.f.push_back(f);
        while self.g.len() > self.m + 1 {
            self.g.pop_front();
            self.f.pop_front();
        }
    }

    fn extrapolate(&self) -> Option<Vec<Mat<f64>>> {
        let h = self.g.len();
        if h < 2 {
            return None;
        }
        let (fk, gk) = (&self.f[h - 1], &self.g[h - 1]);
        // columns d_i = f_i - f_k (i < k): min |f_k + D gamma|
        let d: Vec<Vec<f64>> = (0..h - 1).map(|i| self.f[i].iter().zip(fk).map(|(a, b)| a - b).collect()).collect();
        let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
        let p = d.len();
        let mut a = Mat::from_fn(p, p, |i, j| dot(&d[i], &d[j]));
        let tr: f64 = (0..p).map(|i| a[(i, i)]).sum::<f64>();
        if tr <= 0.0 || !tr.is_finite() {
            return None;
        }
        for i in 0..p {
            a[(i, i)] += 1e-10 * tr;
        }
        let l = cholesky(a.as_ref())?;
        let mut b = Mat::from_fn(p, 1, |i, _| -dot(&d[i], fk));
        cholesky_solve_in_place(l.as_ref(), b.as_mut(), Par::Seq).ok()?;
        let gamma = b.col_as_slice(0);
        if gamma.iter().any(|x| !x.is_finite()) {
            return None;
        }
        let mut x = gk.clone();
        for (i, gi) in gamma.iter().enumerate() {
            for ((o, a), b) in x.iter_mut().zip(&self.g[i]).zip(gk) {
                *o += gi * (a - b);
            }
        }
        let mut out = Vec::with_capacity(self.shapes.len());
        let mut o = 0;
        for &(r, c) in &self.shapes {
            out.push(Mat::from_fn(r, c, |i, j| x[o + i + j * r]));
            o += r * c;
        }
        Some(out)
    }
}

/// The flat parameter vector of per-layer updates (weights, then the bias column when present).
pub fn flatten_updates(blocks: &[BlockRef<'_>], updates: &[Mat<f64>], n_params: usize) -> Vec<f64> {
    let mut out = vec![0.0; n_params];
    for (b, th) in blocks.iter().zip(updates) {
        let (fi, fo) = (b.inputs.ncols(), b.backprop.ncols());
        for k in 0..fi {
            for q in 0..fo {
                out[b.w_offset + q + k * fo] = th[(q, k)];
            }
        }
        if let Some(bo) = b.b_offset {
            for q in 0..fo {
                out[bo + q] = th[(q, fi)];
            }
        }
    }
    out
}
