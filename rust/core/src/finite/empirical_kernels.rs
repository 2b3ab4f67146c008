//! Cross kernels of a finite network between two sets of inputs `A` (rows `xa`) and `B` (rows
//! `xb`): feature kernels `Phi^l(A, B) = phi(h^l_A) phi(h^l_B)^T / N_l`, gradient kernels
//! `G^l(A, B) = s sum_i (df_A/dh^l_i)(df_B/dh^l_i)` and the empirical NTK
//! `s sum_theta df_A/dtheta df_B/dtheta` of output `c`, in the units of
//! [`FiniteMlp::gradient_kernels_and_ntk`] (`s = 1` standard, `s = gamma^2 N_L` mean field).
use crate::finite::network::{FiniteMlp, Forward, Parameterization};
use faer::{Accum, Mat, MatRef, Par};

/// Cross kernels between `xa` and `xb`: (feature kernels per layer, gradient kernels per layer,
/// NTK), each `P_A x P_B`.
pub struct CrossKernels {
    pub features: Vec<Mat<f64>>,
    pub gradients: Vec<Mat<f64>>,
    pub ntk: Mat<f64>,
}

fn ab_t(a: MatRef<'_, f64>, b: MatRef<'_, f64>, alpha: f64, par: Par) -> Mat<f64> {
    let mut k = Mat::<f64>::zeros(a.nrows(), b.nrows());
    crate::linalg::matmul(k.as_mut(), Accum::Replace, a, b.transpose(), alpha, par);
    k
}

/// `df/dh^L = so w_out[c] * phi'(h^L)` (P x N_L) from a forward pass.
pub(crate) fn readout_jacobian(net: &FiniteMlp, theta: &[f64], fw: &Forward, c: usize) -> Mat<f64> {
    let lay = net.layout();
    let depth = net.depth();
    let nl = net.widths[depth - 1];
    let so = net.out_scale();
    let wout = MatRef::from_column_major_slice(&theta[lay.w_out..lay.w_out + net.n_out * nl], net.n_out, nl);
    let h = &fw.h[depth - 1];
    Mat::from_fn(h.nrows(), nl, |i, j| so * wout[(c, j)] * net.activation.dphi(h[(i, j)]).unwrap())
}

/// Back-propagates `jac = df/dh^{l+1}` to `df/dh^l` through `W^l` (l >= 1).
pub(crate) fn backprop(net: &FiniteMlp, theta: &[f64], fw: &Forward, l: usize, jac: &Mat<f64>, par: Par) -> Mat<f64> {
    let (off, rows, cols) = net.layout().w[l];
    let alpha = net.sigma_w / (cols as f64).sqrt();
    let w = MatRef::from_column_major_slice(&theta[off..off + rows * cols], rows, cols);
    let mut next = Mat::<f64>::zeros(jac.nrows(), cols);
    crate::linalg::matmul(next.as_mut(), Accum::Replace, jac.as_ref(), w, alpha, par);
    let h = &fw.h[l - 1];
    for j in 0..cols {
        for i in 0..next.nrows() {
            next[(i, j)] *= net.activation.dphi(h[(i, j)]).unwrap();
        }
    }
    next
}

/// Cross kernels of output `c` between the rows of `xa` and `xb` (see the module docs).
pub fn cross_kernels(
    net: &FiniteMlp,
    theta: &[f64],
    xa: MatRef<'_, f64>,
    xb: MatRef<'_, f64>,
    c: usize,
    par: Par,
) -> CrossKernels {
    let lay = net.layout();
    let depth = net.depth();
    let (fa, fb) = (net.forward(theta, xa, par), net.forward(theta, xb, par));
    let features: Vec<Mat<f64>> = (0..depth)
        .map(|l| ab_t(fa.a[l].as_ref(), fb.a[l].as_ref(), 1.0 / net.widths[l] as f64, par))
        .collect();
    let units = match net.param {
        Parameterization::Standard { chi } => chi,
        Parameterization::MeanField { gamma } => gamma * gamma * net.widths[depth - 1] as f64,
    };
    let so = net.out_scale();
    let mut ntk = ab_t(fa.a[depth - 1].as_ref(), fb.a[depth - 1].as_ref(), so * so, par);
    if lay.b_out.is_some() {
        let bb = net.out_bias_scale() * net.out_bias_scale();
        ntk.col_iter_mut().for_each(|col| col.iter_mut().for_each(|v| *v += bb));
    }
    let (mut ja, mut jb) = (readout_jacobian(net, theta, &fa, c), readout_jacobian(net, theta, &fb, c));
    let mut gradients = vec![Mat::<f64>::zeros(0, 0); depth];
    for l in (0..depth).rev() {
        let g = ab_t(ja.as_ref(), jb.as_ref(), 1.0, par);
        let cols = lay.w[l].2;
        let alpha = net.sigma_w / (cols as f64).sqrt();
        let (ia, ib) = if l == 0 { (xa, xb) } else { (fa.a[l - 1].as_ref(), fb.a[l - 1].as_ref()) };
        let feat = ab_t(ia, ib, alpha * alpha, par);
        let bb = if lay.b[l].is_some() { net.sigma_b * net.sigma_b } else { 0.0 };
        for j in 0..ntk.ncols() {
            for i in 0..ntk.nrows() {
                ntk[(i, j)] += g[(i, j)] * (feat[(i, j)] + bb);
            }
        }
        if l > 0 {
            ja = backprop(net, theta, &fa, l, &ja, par);
            jb = backprop(net, theta, &fb, l, &jb, par);
        }
        gradients[l] = Mat::from_fn(g.nrows(), g.ncols(), |i, j| units * g[(i, j)]);
    }
    let ntk = Mat::from_fn(ntk.nrows(), ntk.ncols(), |i, j| units * ntk[(i, j)]);
    CrossKernels { features, gradients, ntk }
}
