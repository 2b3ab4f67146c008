//! Finite-width fully connected networks: parameters, forward pass, potential and gradient.
//!
//! All parameters are standard normal a priori; scales are explicit (NNGP-style
//! parameterization, as in Lee et al. 2018 and the digests' `Norm(sqrt N)` layers):
//! `h^1 = sigma_w W^0 x / sqrt(d) + sigma_b b^0`,
//! `h^{l+1} = sigma_w W^l phi(h^l) / sqrt(N_l) + sigma_b b^l`,
//! readout, standard with scale `chi` (default 1):
//! `f = (sigma_w w . phi(h^L) / sqrt(N_L) + sigma_b b_out) / sqrt(chi)`;
//! readout, mean field / muP with richness gamma: `f = w . phi(h^L) / (gamma N_L)` (no bias).
//!
//! The potential is `U = (beta/2) sum_{mu,c} (f_{mu c} - y_{mu c})^2 + (decay/2) |theta|^2`,
//! with (beta, decay) = (chi/T, 1) for the Bayesian posterior in standard scaling (chi = 1 is
//! the usual standard scaling; chi = N gamma^2 with sigma_w = 1 is the mean-field scaling below),
//! (N_L gamma^2 / T, 1) in mean-field scaling (Lauditi, Bordelon, Pehlevan 2025), and
//! (1, lambda) or (N_L gamma^2, lambda) for gradient descent with weight decay.
use crate::kernels::activation::Activation;
use crate::error::{invalid, shape, AkError, Result};
use faer::{Accum, Mat, MatMut, MatRef, Par};

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Parameterization {
    /// Standard scaling with the readout (and noise) divided by `chi` (1 = usual).
    Standard { chi: f64 },
    MeanField { gamma: f64 },
}

/// A finite MLP: input dimension `d`, hidden widths `widths` (L >= 1), `n_out` outputs.
#[derive(Debug, Clone)]
pub struct FiniteMlp {
    pub d: usize,
    pub widths: Vec<usize>,
    pub n_out: usize,
    pub activation: Activation,
    pub sigma_w: f64,
    pub sigma_b: f64,
    pub param: Parameterization,
}

/// Offsets of each block in the flat parameter vector (all column-major).
#[derive(Debug, Clone)]
pub struct Layout {
    /// (offset, rows, cols) of W^l, l = 0..L-1 (rows = N_{l+1}, cols = fan-in).
    pub w: Vec<(usize, usize, usize)>,
    /// offset of b^l (length N_{l+1}); present only when sigma_b > 0.
    pub b: Vec<Option<usize>>,
    /// (offset) of the readout w_out (n_out x N_L).
    pub w_out: usize,
    /// offset of the readout bias (standard scaling with sigma_b > 0).
    pub b_out: Option<usize>,
    pub len: usize,
}

/// Activations of one forward pass: `h[l]` (P x N_{l+1}) pre-activations, `a[l] = phi(h[l])`,
/// and the outputs `f` (P x n_out).
pub struct Forward {
    pub h: Vec<Mat<f64>>,
    pub a: Vec<Mat<f64>>,
    pub f: Mat<f64>,
}

impl FiniteMlp {
    /// Refuses a simulation whose buffers (per chain or ensemble member) exceed the available
    /// memory: `copies` parameter vectors, the forward activations on `p` points, and
    /// `p x p` kernels (`kernels` of them) and `N_L x N_L` / `d x d` weight moments if stored.
    pub fn check_memory(&self, members: usize, copies: usize, p: usize, kernels: usize, moments: bool) -> Result<()> {
        let n_params = self.n_params_f64();
        let acts = 4.0 * p as f64 * self.widths.iter().sum::<usize>() as f64;
        let mut per = copies as f64 * n_params + acts + kernels as f64 * (p * p) as f64;
        if moments {
            let nl = *self.widths.last().unwrap_or(&0) as f64;
            per += nl * nl + (self.d * self.d) as f64;
        }
        crate::validate::memory(
            "width",
            "the network's parameters, activations and stored kernels",
            8.0 * members as f64 * per,
            "use narrower layers (width; n_particles of a gradient-flow fixed point), fewer inputs or outputs (n_features / n_out, the columns of X and y), fewer \
             chains or ensemble members (n_chains, n_ensemble), or store_kernels=False, store_weights=False",
        )
    }

    /// The number of parameters, in f64 (no usize overflow for absurd widths).
    fn n_params_f64(&self) -> f64 {
        self.d as f64 * self.widths[0] as f64
            + self.widths.windows(2).map(|w| w[0] as f64 * w[1] as f64).sum::<f64>()
            + (*self.widths.last().unwrap_or(&0)) as f64 * self.n_out as f64
            + self.widths.iter().map(|&w| w as f64).sum::<f64>()
    }

    pub fn validate(&self) -> Result<()> {
        if self.widths.is_empty() {
            return Err(invalid("net", "finite-width simulations need depth >= 1"));
        }
        if self.widths.iter().any(|&n| n == 0) {
            return Err(invalid("width", "every width must be >= 1"));
        }
        if matches!(self.activation, Activation::Custom(_)) {
            return Err(invalid(
                "net",
                "finite-width simulations need a built-in activation",
            ));
        }
        if !(self.sigma_w.is_finite() && self.sigma_w > 0.0) {
            return Err(invalid("sigma_w", "must be finite and > 0"));
        }
        if !(self.sigma_b.is_finite() && self.sigma_b >= 0.0) {
            return Err(invalid("sigma_b", "must be finite and >= 0"));
        }
        if let Parameterization::Standard { chi } = self.param {
            crate::validate::chi(chi)?;
        }
        if let Parameterization::MeanField { gamma } = self.param {
            if !(gamma.is_finite() && gamma > 0.0) {
                return Err(invalid(
                    "gamma",
                    format!("must be finite and > 0, got {gamma}"),
                ));
            }
            crate::validate::scale("gamma", gamma)?;
        }
        if self.n_out == 0 || self.d == 0 {
            return Err(shape("y", "need at least one output and one input feature"));
        }
        // A parameter vector must fit (and its length must not overflow `layout`'s usize
        // arithmetic) before anything sizes a buffer from the layout; small nets skip the check
        // (it keeps a per-thread reserve that a tight address-space cap would exhaust).
        if self.n_params_f64() > (1u64 << 25) as f64 {
            self.check_memory(1, 1, 0, 0, false)?;
        }
        Ok(())
    }

    pub fn depth(&self) -> usize {
        self.widths.len()
    }

    fn fan_in(&self, l: usize) -> usize {
        if l == 0 {
            self.d
        } else {
            self.widths[l - 1]
        }
    }

    pub fn layout(&self) -> Layout {
        let mut off = 0;
        let (mut w, mut b) = (Vec::new(), Vec::new());
        let bias = self.sigma_b > 0.0;
        for l in 0..self.depth() {
            let (r, c) = (self.widths[l], self.fan_in(l));
            w.push((off, r, c));
            off += r * c;
            if bias {
                b.push(Some(off));
                off += r;
            } else {
                b.push(None);
            }
        }
        let w_out = off;
        off += self.n_out * self.widths[self.depth() - 1];
        let b_out = if bias && matches!(self.param, Parameterization::Standard { .. }) {
            let o = off;
            off += self.n_out;
            Some(o)
        } else {
            None
        };
        Layout {
            w,
            b,
            w_out,
            b_out,
            len: off,
        }
    }

    /// Readout scale: `sigma_w / sqrt(chi N_L)` (standard) or `1 / (gamma N_L)` (mean field).
    pub fn out_scale(&self) -> f64 {
        let n = *self.widths.last().unwrap() as f64;
        match self.param {
            Parameterization::Standard { chi } => self.sigma_w / (chi * n).sqrt(),
            Parameterization::MeanField { gamma } => 1.0 / (gamma * n),
        }
    }

    /// Likelihood precision multiplier `beta` at temperature `t` (see the module docs).
    pub fn loss_scale(&self, temperature: f64) -> f64 {
        let n = *self.widths.last().unwrap() as f64;
        match self.param {
            Parameterization::Standard { chi } => chi / temperature,
            Parameterization::MeanField { gamma } => n * gamma * gamma / temperature,
        }
    }

    /// Scale of the readout bias: `sigma_b / sqrt(chi)` (standard; there is no bias otherwise).
    pub fn out_bias_scale(&self) -> f64 {
        match self.param {
            Parameterization::Standard { chi } => self.sigma_b / chi.sqrt(),
            Parameterization::MeanField { .. } => self.sigma_b,
        }
    }

    /// `phi` applied elementwise, column by column (contiguous slices, no per-entry indexing).
    fn phi_mat(&self, h: &Mat<f64>) -> Mat<f64> {
        let mut out = Mat::<f64>::zeros(h.nrows(), h.ncols());
        for j in 0..h.ncols() {
            let (src, dst) = (h.col_as_slice(j), out.col_as_slice_mut(j));
            match self.activation {
                Activation::Relu => dst.iter_mut().zip(src).for_each(|(d, &x)| *d = x.max(0.0)),
                Activation::Linear => dst.copy_from_slice(src),
                ref act => dst
                    .iter_mut()
                    .zip(src)
                    .for_each(|(d, &x)| *d = act.phi(x).unwrap()),
            }
        }
        out
    }

    /// `delta *= phi'(h)` elementwise, column by column.
    fn mul_dphi(&self, delta: &mut Mat<f64>, h: &Mat<f64>) {
        for j in 0..h.ncols() {
            let (src, dst) = (h.col_as_slice(j), delta.col_as_slice_mut(j));
            match self.activation {
                Activation::Relu => dst.iter_mut().zip(src).for_each(|(d, &x)| {
                    if x <= 0.0 {
                        *d = 0.0
                    }
                }),
                Activation::Linear => {}
                ref act => dst
                    .iter_mut()
                    .zip(src)
                    .for_each(|(d, &x)| *d *= act.dphi(x).unwrap()),
            }
        }
    }

    /// Forward pass on the rows of `x` (P x d).
    pub fn forward(&self, theta: &[f64], x: MatRef<'_, f64>, par: Par) -> Forward {
        let lay = self.layout();
        let p = x.nrows();
        let mut h = Vec::with_capacity(self.depth());
        let mut a: Vec<Mat<f64>> = Vec::with_capacity(self.depth());
        for l in 0..self.depth() {
            let (off, r, c) = lay.w[l];
            let w = MatRef::from_column_major_slice(&theta[off..off + r * c], r, c);
            let inp = if l == 0 { x } else { a[l - 1].as_ref() };
            let mut hl = Mat::<f64>::zeros(p, r);
            let alpha = self.sigma_w / (c as f64).sqrt();
            crate::linalg::matmul(
                hl.as_mut(),
                Accum::Replace,
                inp,
                w.transpose(),
                alpha,
                par,
            );
            if let Some(bo) = lay.b[l] {
                let b = &theta[bo..bo + r];
                for j in 0..r {
                    let bj = self.sigma_b * b[j];
                    for i in 0..p {
                        hl[(i, j)] += bj;
                    }
                }
            }
            a.push(self.phi_mat(&hl));
            h.push(hl);
        }
        let nl = *self.widths.last().unwrap();
        let wout = MatRef::from_column_major_slice(
            &theta[lay.w_out..lay.w_out + self.n_out * nl],
            self.n_out,
            nl,
        );
        let mut f = Mat::<f64>::zeros(p, self.n_out);
        crate::linalg::matmul(
            f.as_mut(),
            Accum::Replace,
            a[self.depth() - 1].as_ref(),
            wout.transpose(),
            self.out_scale(),
            par,
        );
        if let Some(bo) = lay.b_out {
            for c in 0..self.n_out {
                for i in 0..p {
                    f[(i, c)] += self.out_bias_scale() * theta[bo + c];
                }
            }
        }
        Forward { h, a, f }
    }

    /// Potential `U(theta)` and its gradient (written into `grad`); also returns the
    /// half sum of squared residuals `1/2 sum (f - y)^2` and the forward pass.
    pub fn potential_and_gradient(
        &self,
        theta: &[f64],
        x: MatRef<'_, f64>,
        y: MatRef<'_, f64>,
        beta: f64,
        decay: f64,
        grad: &mut [f64],
        par: Par,
    ) -> (f64, f64, Forward) {
        let lay = self.layout();
        let fw = self.forward(theta, x, par);
        let p = x.nrows();
        // r = beta (f - y)
        let mut r = Mat::<f64>::zeros(p, self.n_out);
        let mut sse = 0.0;
        for c in 0..self.n_out {
            for i in 0..p {
                let e = fw.f[(i, c)] - y[(i, c)];
                sse += e * e;
                r[(i, c)] = beta * e;
            }
        }
        let norm2: f64 = theta.iter().map(|t| t * t).sum();
        let u = 0.5 * beta * sse + 0.5 * decay * norm2;
        for (g, t) in grad.iter_mut().zip(theta) {
            *g = decay * t;
        }
        let depth = self.depth();
        let nl = self.widths[depth - 1];
        let so = self.out_scale();
        // readout: dU/dw_out = so r^T a^L (+ decay w_out)
        {
            let g = MatMut::from_column_major_slice_mut(
                &mut grad[lay.w_out..lay.w_out + self.n_out * nl],
                self.n_out,
                nl,
            );
            crate::linalg::matmul(
                g,
                Accum::Add,
                r.transpose(),
                fw.a[depth - 1].as_ref(),
                so,
                par,
            );
        }
        if let Some(bo) = lay.b_out {
            for c in 0..self.n_out {
                grad[bo + c] += self.out_bias_scale() * (0..p).map(|i| r[(i, c)]).sum::<f64>();
            }
        }
        // delta = dU/dh^L = so (r w_out) * phi'(h^L)
        let wout = MatRef::from_column_major_slice(
            &theta[lay.w_out..lay.w_out + self.n_out * nl],
            self.n_out,
            nl,
        );
        let mut delta = Mat::<f64>::zeros(p, nl);
        crate::linalg::matmul(delta.as_mut(), Accum::Replace, r.as_ref(), wout, so, par);
        for l in (0..depth).rev() {
            self.mul_dphi(&mut delta, &fw.h[l]);
            let (off, rows, cols) = lay.w[l];
            let alpha = self.sigma_w / (cols as f64).sqrt();
            let inp = if l == 0 { x } else { fw.a[l - 1].as_ref() };
            {
                let g = MatMut::from_column_major_slice_mut(
                    &mut grad[off..off + rows * cols],
                    rows,
                    cols,
                );
                crate::linalg::matmul(g, Accum::Add, delta.transpose(), inp, alpha, par);
            }
            if let Some(bo) = lay.b[l] {
                for j in 0..rows {
                    grad[bo + j] += self.sigma_b * (0..p).map(|i| delta[(i, j)]).sum::<f64>();
                }
            }
            if l > 0 {
                let w = MatRef::from_column_major_slice(&theta[off..off + rows * cols], rows, cols);
                let mut next = Mat::<f64>::zeros(p, cols);
                crate::linalg::matmul(
                    next.as_mut(),
                    Accum::Replace,
                    delta.as_ref(),
                    w,
                    alpha,
                    par,
                );
                delta = next;
            }
        }
        (u, 0.5 * sse, fw)
    }

    /// Per-layer feature kernels `Phi^l = phi(h^l) phi(h^l)^T / N_l` (P x P each).
    pub fn feature_kernels(&self, fw: &Forward, par: Par) -> Vec<Mat<f64>> {
        fw.a.iter()
            .map(|a| {
                let mut k = Mat::<f64>::zeros(a.nrows(), a.nrows());
                crate::linalg::matmul(
                    k.as_mut(),
                    Accum::Replace,
                    a.as_ref(),
                    a.transpose(),
                    1.0 / a.ncols() as f64,
                    par,
                );
                k
            })
            .collect()
    }

    /// Gradient kernels `G^l_{mu nu} = s sum_i (df_mu/dh^l_i)(df_nu/dh^l_i)` of output `c`
    /// (s = 1 standard, s = gamma^2 N_L mean field, so both are O(1)), and the empirical NTK
    /// `sum_theta df_mu/dtheta df_nu/dtheta` in the same units (the training-set block of
    /// [`cross_kernels`](crate::finite::empirical_kernels::cross_kernels)).
    pub fn gradient_kernels_and_ntk(
        &self,
        theta: &[f64],
        x: MatRef<'_, f64>,
        c: usize,
        par: Par,
    ) -> (Vec<Mat<f64>>, Mat<f64>) {
        let k = crate::finite::empirical_kernels::cross_kernels(self, theta, x, x, c, par);
        (k.gradients, k.ntk)
    }
}

/// Checks the data for a finite-width run: x (P x d), y (P x C) finite, matching rows.
pub fn check_data(x: MatRef<'_, f64>, y: MatRef<'_, f64>) -> Result<()> {
    if x.nrows() == 0 || x.ncols() == 0 {
        return Err(shape("X", "must be non-empty"));
    }
    if y.nrows() != x.nrows() || y.ncols() == 0 {
        return Err(shape(
            "y",
            format!(
                "must have {} rows (one per sample), got {}",
                x.nrows(),
                y.nrows()
            ),
        ));
    }
    for (name, m) in [("X", x), ("y", y)] {
        for j in 0..m.ncols() {
            for i in 0..m.nrows() {
                if !m[(i, j)].is_finite() {
                    return Err(AkError::InvalidArgument {
                        name,
                        msg: "contains NaN or inf".into(),
                    });
                }
            }
        }
    }
    Ok(())
}
