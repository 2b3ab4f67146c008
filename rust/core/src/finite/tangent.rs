//! Structured tangent features of a finite MLP (the Jacobian of its outputs with respect to the
//! flat parameter vector `theta` of [`FiniteMlp::layout`]) without forming the Jacobian.
//!
//! Every dense layer (the hidden layers and the readout) is one block: its *inputs*
//! `A` (n x fan_in, already multiplied by the layer's weight scale `sigma_w / sqrt(fan_in)`, or
//! by the readout scale), a bias scale `s_b` (`sigma_b` when the layer has a bias, else 0) and
//! its *backprop vectors* `G` (nC x fan_out): row `i C + c` is `d f_c(x_i) / d h` at the
//! layer's pre-activation (for the readout, the unit vector `e_c`). Multi-output networks stack
//! (sample, output) pairs as rows, sample-major. Then
//! `d f_c(x_i) / d W[r, k] = G[(i, c), r] A[i, k]`, `d f_c(x_i) / d b[r] = s_b G[(i, c), r]`,
//! and the tangent kernel is a sum over blocks of Hadamard products of Gram matrices,
//! `K0[(i,c), (j,c')] = sum_l (A_l A_l'^T + s_b^2)[i, j] (G_l G_l'^T)[(i,c), (j,c')]`,
//! in O(n^2 (fan_in + C fan_out)) per block instead of O(n^2 C^2 n_params).
//! One forward pass stores the inputs, one backward pass per output the backprop vectors.
use crate::finite::empirical_kernels::{backprop, readout_jacobian};
use crate::finite::network::FiniteMlp;
use crate::error::{invalid, shape, Result};
use faer::{Accum, Mat, MatMut, MatRef, Par};

/// One dense layer's factors (see the module docs); offsets index the flat parameter vector.
#[derive(Debug, Clone)]
pub struct TangentBlock {
    pub inputs: Mat<f64>,
    pub backprop: Mat<f64>,
    pub bias_scale: f64,
    /// Offset of the weight matrix (fan_out x fan_in, column-major) in `theta`.
    pub w_offset: usize,
    /// Offset of the bias (length fan_out) in `theta`, when the layer has one.
    pub b_offset: Option<usize>,
}

/// Borrowed view of a block (so that factors held by Python can be used without copies).
#[derive(Debug, Clone, Copy)]
pub struct BlockRef<'a> {
    pub inputs: MatRef<'a, f64>,
    pub backprop: MatRef<'a, f64>,
    pub bias_scale: f64,
    pub w_offset: usize,
    pub b_offset: Option<usize>,
}

impl TangentBlock {
    pub fn as_ref(&self) -> BlockRef<'_> {
        BlockRef {
            inputs: self.inputs.as_ref(),
            backprop: self.backprop.as_ref(),
            bias_scale: self.bias_scale,
            w_offset: self.w_offset,
            b_offset: self.b_offset,
        }
    }
}

impl BlockRef<'_> {
    /// Number of parameters of the block (weights and bias).
    pub fn n_params(&self) -> usize {
        let (fi, fo) = (self.inputs.ncols(), self.backprop.ncols());
        fi * fo + if self.b_offset.is_some() { fo } else { 0 }
    }
}

/// Tangent features on n points: outputs `f0` (n x C) and one block per layer.
#[derive(Debug, Clone)]
pub struct TangentFeatures {
    pub f0: Mat<f64>,
    pub blocks: Vec<TangentBlock>,
    pub n_params: usize,
}

impl TangentFeatures {
    pub fn block_refs(&self) -> Vec<BlockRef<'_>> {
        self.blocks.iter().map(|b| b.as_ref()).collect()
    }
}

fn gram(a: MatRef<'_, f64>, b: MatRef<'_, f64>, par: Par) -> Mat<f64> {
    let mut k = Mat::<f64>::zeros(a.nrows(), b.nrows());
    crate::linalg::matmul(k.as_mut(), Accum::Replace, a, b.transpose(), 1.0, par);
    k
}

impl FiniteMlp {
    /// Tangent features of the network at `theta` on the rows of `x` (module docs).
    pub fn tangent_features(&self, theta: &[f64], x: MatRef<'_, f64>, par: Par) -> TangentFeatures {
        let lay = self.layout();
        let fw = self.forward(theta, x, par);
        let (n, c_out, depth) = (x.nrows(), self.n_out, self.depth());
        let nl = self.widths[depth - 1];
        // backprop vectors per layer, rows (i, c) sample-major
        let mut back: Vec<Mat<f64>> = (0..depth).map(|l| Mat::zeros(n * c_out, self.widths[l])).collect();
        for c in 0..c_out {
            let mut jac = readout_jacobian(self, theta, &fw, c);
            for l in (0..depth).rev() {
                let dst = &mut back[l];
                for j in 0..jac.ncols() {
                    for i in 0..n {
                        dst[(i * c_out + c, j)] = jac[(i, j)];
                    }
                }
                if l > 0 {
                    jac = backprop(self, theta, &fw, l, &jac, par);
                }
            }
        }
        let mut blocks = Vec::with_capacity(depth + 1);
        for (l, g) in back.into_iter().enumerate() {
            let (off, _, cols) = lay.w[l];
            let alpha = self.sigma_w / (cols as f64).sqrt();
            let inp = if l == 0 { x } else { fw.a[l - 1].as_ref() };
            blocks.push(TangentBlock {
                inputs: Mat::from_fn(n, cols, |i, k| alpha * inp[(i, k)]),
                backprop: g,
                bias_scale: if lay.b[l].is_some() { self.sigma_b } else { 0.0 },
                w_offset: off,
                b_offset: lay.b[l],
            });
        }
        let so = self.out_scale();
        let last = &fw.a[depth - 1];
        blocks.push(TangentBlock {
            inputs: Mat::from_fn(n, nl, |i, k| so * last[(i, k)]),
            backprop: Mat::from_fn(n * c_out, c_out, |r, c| if r % c_out == c { 1.0 } else { 0.0 }),
            // the readout bias enters as `out_bias_scale() b_out` (`sigma_b / sqrt(chi)` standard)
            bias_scale: if lay.b_out.is_some() { self.out_bias_scale() } else { 0.0 },
            w_offset: lay.w_out,
            b_offset: lay.b_out,
        });
        TangentFeatures { f0: fw.f, blocks, n_params: lay.len }
    }
}

/// Checks blocks handed in from outside (argument `name`): at least one block, every block with
/// the same n samples and nC rows, its parameters inside `n_params`, finite entries.
pub fn check_blocks(name: &'static str, blocks: &[BlockRef<'_>], n_params: usize) -> Result<()> {
    let first = blocks.first().ok_or_else(|| invalid(name, "has no layers"))?;
    let (n, rows) = (first.inputs.nrows(), first.backprop.nrows());
    if n == 0 || rows == 0 || rows % n != 0 {
        return Err(shape(name, format!("backprop vectors must have n * n_out rows, got {rows} for n = {n}")));
    }
    for b in blocks {
        if b.inputs.nrows() != n || b.backprop.nrows() != rows {
            return Err(shape(name, "every layer must have the same samples and outputs"));
        }
        let end = b.w_offset + b.inputs.ncols() * b.backprop.ncols();
        let bend = b.b_offset.map_or(0, |o| o + b.backprop.ncols());
        if end.max(bend) > n_params {
            return Err(shape(name, format!("layer parameters exceed n_params = {n_params}")));
        }
        crate::validate::finite_mat(name, b.inputs)?;
        crate::validate::finite_mat(name, b.backprop)?;
        if !b.bias_scale.is_finite() {
            return Err(invalid(name, "bias scale is not finite"));
        }
    }
    Ok(())
}

/// Refuses (before allocating) the per-layer kernels between `a` and `b` plus `extra` more
/// matrices of that size (a solve's work matrices) when they do not fit in memory.
pub fn check_kernel_memory(name: &'static str, a: &[BlockRef<'_>], b: &[BlockRef<'_>], extra: usize) -> Result<()> {
    let (ra, rb) = (a.first().map_or(0, |x| x.backprop.nrows()), b.first().map_or(0, |x| x.backprop.nrows()));
    // one kernel per layer, and the Gram pair of the layer being formed
    let count = (a.len() + 2 + extra) as f64;
    crate::validate::dense_memory(name, "storing the per-layer tangent kernels", count, ra, rb, "use fewer samples")
}

/// Checks that two sets of blocks (argument `name` against the training set) come from the same
/// network: same layers, fan-ins, fan-outs and number of outputs.
pub fn check_compatible(name: &'static str, a: &[BlockRef<'_>], b: &[BlockRef<'_>]) -> Result<()> {
    let same = a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.inputs.ncols() == y.inputs.ncols()
                && x.backprop.ncols() == y.backprop.ncols()
                && n_outputs(x) == n_outputs(y)
                && x.bias_scale == y.bias_scale
        });
    if same {
        Ok(())
    } else {
        Err(shape(name, "tangent features of a different network (layers, widths or outputs differ)"))
    }
}

/// Number of outputs C of a block from its row counts.
fn n_outputs(b: &BlockRef<'_>) -> usize {
    b.backprop.nrows() / b.inputs.nrows().max(1)
}

/// Cross tangent kernel of one block between point sets `a` and `b`: (n_a C) x (n_b C).
pub fn block_kernel(a: &BlockRef<'_>, b: &BlockRef<'_>, par: Par) -> Mat<f64> {
    let mut ka = gram(a.inputs, b.inputs, par);
    let bb = a.bias_scale * b.bias_scale;
    ka.col_iter_mut().for_each(|col| col.iter_mut().for_each(|v| *v += bb));
    expand_hadamard(&ka, gram(a.backprop, b.backprop, par), n_outputs(a))
}

/// `kg ∘ (ka ⊗ 1 1^T)`: the sample Gram `ka` (n_a x n_b) repeated over the C x C output pairs
/// of the (sample, output) Gram `kg` (n_a C x n_b C), multiplied in place.
pub fn expand_hadamard(ka: &Mat<f64>, mut kg: Mat<f64>, c: usize) -> Mat<f64> {
    for j in 0..kg.ncols() {
        let col = kg.col_as_slice_mut(j);
        let jj = j / c;
        for (i, v) in col.iter_mut().enumerate() {
            *v *= ka[(i / c, jj)];
        }
    }
    kg
}

/// Number of outputs C of a block (rows of its backprop vectors per sample).
pub fn block_outputs(b: &BlockRef<'_>) -> usize {
    n_outputs(b)
}

/// Per-block cross kernels (the groups of the adaptive problem); their sum is the tangent kernel.
pub fn block_kernels(a: &[BlockRef<'_>], b: &[BlockRef<'_>], par: Par) -> Vec<Mat<f64>> {
    a.iter().zip(b).map(|(x, y)| block_kernel(x, y, par)).collect()
}

/// Tangent kernel `J_a J_b^T` between two point sets.
pub fn kernel(a: &[BlockRef<'_>], b: &[BlockRef<'_>], par: Par) -> Mat<f64> {
    let mut out = Mat::<f64>::zeros(a[0].backprop.nrows(), b[0].backprop.nrows());
    for k in block_kernels(a, b, par) {
        out += &k;
    }
    out
}

/// Dense Jacobian (nC x n_params) in the layout of `theta`.
pub fn jacobian(blocks: &[BlockRef<'_>], n_params: usize) -> Mat<f64> {
    let rows = blocks[0].backprop.nrows();
    let mut j = Mat::<f64>::zeros(rows, n_params);
    for b in blocks {
        let c = n_outputs(b);
        let (fi, fo) = (b.inputs.ncols(), b.backprop.ncols());
        for k in 0..fi {
            for r in 0..fo {
                let col = j.col_as_slice_mut(b.w_offset + r + k * fo);
                for (row, v) in col.iter_mut().enumerate() {
                    *v = b.backprop[(row, r)] * b.inputs[(row / c, k)];
                }
            }
        }
        if let Some(bo) = b.b_offset {
            for r in 0..fo {
                let col = j.col_as_slice_mut(bo + r);
                for (row, v) in col.iter_mut().enumerate() {
                    *v = b.bias_scale * b.backprop[(row, r)];
                }
            }
        }
    }
    j
}

/// `J^T v` of one block, written into `out` (the flat parameter vector; other entries
/// untouched): weight update `G^T diag(v) A` (per sample, summed over outputs), bias `s_b G^T v`.
pub fn block_jt_vec(b: &BlockRef<'_>, v: &[f64], out: &mut [f64], par: Par) {
    let c = n_outputs(b);
    let n = b.inputs.nrows();
    let (fi, fo) = (b.inputs.ncols(), b.backprop.ncols());
    // weighted backprop summed over outputs per sample: S[i, r] = sum_c v[(i,c)] G[(i,c), r]
    let s = Mat::from_fn(n, fo, |i, r| (0..c).map(|cc| v[i * c + cc] * b.backprop[(i * c + cc, r)]).sum::<f64>());
    let w = MatMut::from_column_major_slice_mut(&mut out[b.w_offset..b.w_offset + fi * fo], fo, fi);
    crate::linalg::matmul(w, Accum::Replace, s.transpose(), b.inputs, 1.0, par);
    if let Some(bo) = b.b_offset {
        for r in 0..fo {
            out[bo + r] = b.bias_scale * (0..n).map(|i| s[(i, r)]).sum::<f64>();
        }
    }
}

/// `sum_l weights[l] J_l^T v` (the flat parameter vector, length `n_params`).
pub fn vjp(blocks: &[BlockRef<'_>], v: &[f64], weights: &[f64], n_params: usize, par: Par) -> Result<Vec<f64>> {
    if v.len() != blocks[0].backprop.nrows() {
        return Err(shape("v", format!("needs one entry per (sample, output) row, {}", blocks[0].backprop.nrows())));
    }
    if weights.len() != blocks.len() {
        return Err(shape("layer_weights", format!("needs one weight per layer, {}", blocks.len())));
    }
    crate::validate::finite("v", v)?;
    let mut out = vec![0.0; n_params];
    for (b, w) in blocks.iter().zip(weights) {
        let wv: Vec<f64> = v.iter().map(|x| w * x).collect();
        block_jt_vec(b, &wv, &mut out, par);
    }
    Ok(out)
}

/// `J theta` (length nC) for a flat parameter vector `theta` (length `n_params`).
pub fn jvp(blocks: &[BlockRef<'_>], theta: &[f64], n_params: usize, par: Par) -> Result<Vec<f64>> {
    if theta.len() != n_params {
        return Err(shape("theta", format!("has {} entries, the net (at this width and n_out, with the number of columns of X) has {n_params} parameters", theta.len())));
    }
    crate::validate::finite("theta", theta)?;
    let mut out = vec![0.0; blocks[0].backprop.nrows()];
    for b in blocks {
        for (o, x) in out.iter_mut().zip(block_j_vec(b, theta, par)) {
            *o += x;
        }
    }
    Ok(out)
}

/// `J theta` restricted to one block's parameters (length nC).
pub fn block_j_vec(b: &BlockRef<'_>, theta: &[f64], par: Par) -> Vec<f64> {
    let c = n_outputs(b);
    let n = b.inputs.nrows();
    let (fi, fo) = (b.inputs.ncols(), b.backprop.ncols());
    let w = MatRef::from_column_major_slice(&theta[b.w_offset..b.w_offset + fi * fo], fo, fi);
    let mut h = Mat::<f64>::zeros(n, fo); // A W^T (+ s_b b)
    crate::linalg::matmul(h.as_mut(), Accum::Replace, b.inputs, w.transpose(), 1.0, par);
    if let Some(bo) = b.b_offset {
        for r in 0..fo {
            let add = b.bias_scale * theta[bo + r];
            h.col_as_slice_mut(r).iter_mut().for_each(|x| *x += add);
        }
    }
    (0..n * c).map(|row| (0..fo).map(|r| b.backprop[(row, r)] * h[(row / c, r)]).sum()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finite::network::Parameterization;
    use crate::kernels::activation::Activation;

    fn net(n_out: usize, sigma_b: f64) -> FiniteMlp {
        FiniteMlp {
            d: 3,
            widths: vec![4, 5],
            n_out,
            activation: Activation::Tanh,
            sigma_w: 1.3,
            sigma_b,
            param: Parameterization::Standard { chi: 1.0 },
        }
    }

    #[test]
    fn jacobian_matches_finite_differences_and_kernel() {
        for (c, sb) in [(1, 0.0), (2, 0.4)] {
            let net = net(c, sb);
            let n_par = net.layout().len;
            let theta: Vec<f64> = (0..n_par).map(|i| ((i * 7919) % 13) as f64 / 6.0 - 1.0).collect();
            let x = Mat::from_fn(4, 3, |i, j| ((i + 2 * j) as f64).sin());
            let tf = net.tangent_features(&theta, x.as_ref(), Par::Seq);
            let refs = tf.block_refs();
            let jac = jacobian(&refs, tf.n_params);
            let h = 1e-6;
            for p in 0..n_par {
                let (mut tp, mut tm) = (theta.clone(), theta.clone());
                tp[p] += h;
                tm[p] -= h;
                let (fp, fm) = (net.forward(&tp, x.as_ref(), Par::Seq).f, net.forward(&tm, x.as_ref(), Par::Seq).f);
                for i in 0..4 {
                    for cc in 0..c {
                        let fd = (fp[(i, cc)] - fm[(i, cc)]) / (2.0 * h);
                        assert!((fd - jac[(i * c + cc, p)]).abs() < 1e-7, "param {p}");
                    }
                }
            }
            let k = kernel(&refs, &refs, Par::Seq);
            let jj = &jac * jac.transpose();
            assert!((&k - &jj).norm_max() < 1e-12);
            // J^T v and J theta per block agree with the dense Jacobian
            let v: Vec<f64> = (0..4 * c).map(|i| (i as f64).cos()).collect();
            let mut jt = vec![0.0; n_par];
            for b in &refs {
                block_jt_vec(b, &v, &mut jt, Par::Seq);
            }
            let mut jv = vec![0.0; 4 * c];
            for b in &refs {
                for (o, x) in jv.iter_mut().zip(block_j_vec(b, &theta, Par::Seq)) {
                    *o += x;
                }
            }
            for p in 0..n_par {
                let d: f64 = (0..4 * c).map(|r| jac[(r, p)] * v[r]).sum();
                assert!((d - jt[p]).abs() < 1e-12);
            }
            for r in 0..4 * c {
                let d: f64 = (0..n_par).map(|p| jac[(r, p)] * theta[p]).sum();
                assert!((d - jv[r]).abs() < 1e-12);
            }
        }
    }
}
