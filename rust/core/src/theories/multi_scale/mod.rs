//! Multi-scale adaptive theory (Rubin, Fischer, Lindner, Dahmen, Seroussi, Ringel, Krämer,
//! Helias, ICML 2025), reconstructed: *linear* networks, no bias, one or `L >= 2` hidden layers.
//!
//! Convention (one knob `chi` for the continuum from standard to mean-field scaling): first
//! layer `h = sigma_w W x / sqrt(d)`, readout `f = sigma_w v . h / sqrt(chi N)`, posterior
//! `∝ exp(-chi sum (f - y)^2 / (2T) - |theta|^2 / 2)`. Given `v`, `f ~ GP(0, u K0)` with
//! `K0 = sigma_w^2 X X^T / d`, `u = sigma_w^2 |v|^2 / (chi N)` (prior mean `c = sigma_w^2 / chi`),
//! noise `kappa = T / chi`. Everything below is written in NNGP units: the scale
//! `Q = u / c`, the NNGP kernel `Kn = sigma_w^2 K0`, `G(Q) = Q Kn + T I` (so that
//! `u K0 + kappa I = G / chi`), `b = G^{-1} y`, and the training discrepancy `t = y - Q Kn b = T b`.
//! With `Kn = V diag(lam) V^T`, `yk = V^T y`, `g_k = Q lam_k + T`:
//!
//! * action (minus the log evidence at the saddle, constants dropped)
//!   (1) `S(Q) = N/2 (Q - ln Q) + chi/2 y^T G^{-1} y + [corrected] 1/2 ln det G`;
//! * stationarity divided by `N/2 * 1/Q` — the scalar root solved here —
//!   (2) `F(Q) = (Q - 1) - (chi Q / N) sum yk^2 lam / g^2 + [corrected] (Q / N) sum lam / g = 0`.
//!   `order = Tree` is the tree level of the digest (the per-neuron tilted measure
//!   `p(w) ∝ N(w; 0, I) exp[(a / 2) (t^T X w)^2]`, `a = sigma_w^4 chi / (N T^2 d)`, whose
//!   rank-one adapted kernel `Kn + eps Q Kn t t^T Kn`, `eps = chi / (N T^2)`, gives the mean
//!   `Q Kn G^{-1} y` exactly, with `Q = 1 / (1 - eps t^T Kn t)`, which is (2) without the trace);
//!   `order = Corrected` adds the trace term, the standard-scaling correction. At `chi = 1`
//!   (1)-(2) are the kernel-renormalization action and its stationarity (Li & Sompolinsky).
//! * predictor: GP with kernel `kernel = Q Kn` (corrected) or the adapted rank-one kernel
//!   (tree), noise `T`; the mean is `Q Kn G^{-1} y` at both orders; the variance of `f` is the
//!   GP variance divided by `chi`, plus for `Corrected` the Laplace term of the scale mode
//!   (3) `(d f / dQ)^2 / S''(Q)`, `d f / dQ = T k*^T G^{-2} y`,
//!   `S'' = N / (2 Q^2) + chi sum yk^2 lam^2 / g^3 - [corrected] 1/2 sum lam^2 / g^2`;
//! * first-layer weight covariance `E[W^T W] / N` (d x d; prior `I`):
//!   (4) `Sigma_W = I + (sigma_w^4 Q / (N d)) X^T (chi b b^T - [corrected] G^{-1}) X`
//!   (tree: the tilted measure's covariance `(I - a X^T t t^T X)^{-1}`, the same spike
//!   `a Q X^T t t^T X`; corrected: the exact conditional formula at `u = u*`, with the
//!   shrinkage `-G^{-1}` in the data subspace).
//!
//! `width = inf` pins `Q = 1` (the NNGP GP, for every `chi`).
//!
//! # Deep linear nets (`L >= 2` hidden layers of width `N`)
//! Hidden layers `h^{l+1} = sigma_w W^l h^l / sqrt(N)`. Given the weights above layer `l`, the
//! readout's pull-back onto layer `l` has squared norm `Q_l` times the one above, with `N Q_l`
//! a chi-square with `N` degrees of freedom (Li & Sompolinsky's backward integration), so `f` is
//! exactly a GP with kernel `U Kn / chi`, `U = Q_1 ... Q_L`, `Kn = sigma_w^{2L} K0` (the NNGP
//! readout kernel), noise `T / chi`. The action is (1) with `N/2 (Q - ln Q)` summed over the
//! layers and `G = U Kn + T I`; stationarity gives the same `N (Q_l - 1)` for every layer, so
//! `Q_l = Q`, `U = Q^L`, and (2) becomes
//!   (2L) `F(Q) = (Q - 1) - (chi U / N) sum yk^2 lam / g^2 + [corrected] (U / N) sum lam / g`,
//! `g = U lam + T`. Tree level: this is exactly `N` times the deep-linear mean-field action
//! `F1` of `theories::mean_field::linear` at `gamma = sqrt(chi / N) / sigma_w`, temperature
//! `T / sigma_w^2`, `kappa = 1 - 1/Q` (so `Q` is its closed form's `1 / (1 - kappa)`); with the
//! trace term, at `chi = 1`, it is the deep-linear kernel-renormalization action. For `L >= 2`
//! the action can have several minima (first-order transitions in `chi`): the solver takes the
//! global minimum ([`root::solve_global`]) at every point, not the branch continued from the
//! previous one, and lists every minimum. Kernel: `U Kn` (corrected) or the tree level's rank-one
//! adapted kernel `Kn + (U - 1) (Kn t)(Kn t)^T / (t^T Kn t)` (its mean is again `U Kn G^{-1} y`);
//! Laplace term (3) in `U`, with the layer scales integrated out ([`root::curvature`]).
//! First-layer weight covariance: (4) with `sigma_w^4 Q` replaced by `sigma_w^{2L+2} U` (the
//! first layer enters `f` only through its pull-back `m^T W^0`, so the conditional argument of
//! `L = 1` carries over); its spike is the layer scale `Q`, not `U`. Deeper layers carry no
//! direction: the posterior is invariant under rotations of every hidden layer, so
//! `E[W^l^T W^l] / N = (1 + (Q_l - 1) / N) I` for `l >= 1` (the readout: `E[v v^T] = Q I`).
//! As `chi` grows at fixed `N`, `T` the data term grows like `chi` and the trace term saturates
//! at `rank / N`: with `Kn` invertible `Q - 1 ~ (chi y^T Kn^{-1} y / N)^{1/(L+1)}`, so the two
//! orders merge with a relative gap in `Q` of order `chi^{-1/(L+1)}`.
use crate::control::Control;
use crate::error::{invalid, AkError, Result};
use crate::kernels::input::input_kernel;
use crate::kernels::net::Mlp;
use crate::linalg::{matmul, symmetric_eigen};
use crate::solve::path::Path;
use crate::solve::report::SolveReport;
use crate::threads::with_threads;
use crate::validate;
use faer::{Accum, Mat, MatRef, Par};

mod root;
#[cfg(test)]
mod tests;

/// Order of the expansion: the saddle point alone, or with the standard-scaling correction;
/// `Auto` (the default) is the most accurate order the solver implements: `Corrected` for the
/// closed form (linear nets), `Tree` for the sampled tree level (nonlinear nets, whose
/// standard-scaling correction is not implemented).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Auto,
    Tree,
    Corrected,
}

impl Order {
    pub fn name(self) -> &'static str {
        match self {
            Order::Auto => "auto",
            Order::Tree => "tree",
            Order::Corrected => "corrected",
        }
    }

    pub fn from_name(name: &str) -> Result<Self> {
        match name {
            "auto" => Ok(Order::Auto),
            "tree" => Ok(Order::Tree),
            "corrected" => Ok(Order::Corrected),
            other => Err(invalid(
                "order",
                format!("expected 'auto', 'corrected' or 'tree', got {other:?}"),
            )),
        }
    }

    /// The order actually solved: `Auto` becomes `Tree` on the sampled tree level (`sampled`)
    /// and `Corrected` on the closed form; `Tree` and `Corrected` stay.
    pub fn resolve(self, sampled: bool) -> Order {
        match self {
            Order::Auto if sampled => Order::Tree,
            Order::Auto => Order::Corrected,
            o => o,
        }
    }
}

/// Options of [`solve_path`] (the only place their defaults live).
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub order: Order,
    /// Convergence when `|F(Q)| < tol` (eq. (2), dimensionless).
    pub tol: f64,
    /// Safeguarded Newton iterations of the scalar root.
    pub max_iter: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            order: Order::Auto,
            tol: 1e-12,
            max_iter: 200,
        }
    }
}

impl Options {
    fn validate(&self) -> Result<()> {
        validate::tol(self.tol)?;
        if self.max_iter == 0 {
            return Err(invalid("max_iter", "must be >= 1"));
        }
        Ok(())
    }
}

/// One point of a path.
#[derive(Debug, Clone, Copy)]
pub struct Point {
    pub width: f64,
    pub temperature: f64,
    pub chi: f64,
}

/// The data of a fit: `Kn` and its eigendecomposition, `X`, `Y` (P x C).
#[derive(Debug)]
pub struct Problem<'a> {
    pub x: MatRef<'a, f64>,
    pub y: Mat<f64>,
    pub sigma_w: f64,
    /// Number of hidden layers `L`.
    pub depth: usize,
    /// NNGP readout kernel `Kn = sigma_w^{2L+2} X X^T / d` (P x P).
    pub kn: Mat<f64>,
    pub(crate) lam: Vec<f64>,
    pub(crate) v: Mat<f64>,
    /// `V^T Y` (P x C) and its squared row norms `r_k` (what the root needs).
    pub(crate) yk: Mat<f64>,
    pub(crate) r: Vec<f64>,
}

/// The solution at one point (NNGP units, module docs). Matrices with a column per output.
#[derive(Debug, Clone)]
pub struct Solution {
    /// The kernel scale `U = Q^L` (`Q = u / c` for one hidden layer).
    pub scale: f64,
    /// The scale of each hidden layer, `Q` (equal to `scale` for one hidden layer).
    pub layer_scale: f64,
    /// Every minimum `(Q, S(Q))` of the action found (deep nets; the solution is the lowest);
    /// one hidden layer: the solution only.
    pub minima: Vec<(f64, f64)>,
    /// `S(Q)` (eq. (1)).
    pub action: f64,
    /// `S''(Q)` (eq. (3)), the precision of the Laplace approximation of the scale mode.
    pub curvature: f64,
    /// Readout kernel of the predictor on the training points (P x P).
    pub kernel: Mat<f64>,
    /// `B = G^{-1} Y`, `G^{-1} B` (for `d f / dQ` at test points), the discrepancy `T B`,
    /// the training mean `Y - T B` and the variance of `f` on the training points.
    pub dual: Mat<f64>,
    pub dual2: Mat<f64>,
    pub discrepancy: Mat<f64>,
    pub train_mean: Mat<f64>,
    pub train_var: Mat<f64>,
    /// Eigenvalues of `Sigma_W` (eq. (4)), descending, and `|cos|` of the top eigenvector
    /// with `X^T t` (one output only; empty / NaN otherwise).
    pub weight_eigenvalues: Vec<f64>,
    pub weight_overlap: f64,
    /// `Sigma_W` itself (d x d; 0 x 0 with several outputs).
    pub weight_covariance: Mat<f64>,
    /// Tree level, one output: the rank-one coefficient `eps Q` of the adapted kernel
    /// `Kn + eps Q w w^T`, `w = Kn t` (0 otherwise: the kernel is `Q Kn`).
    pub rank_one: f64,
    pub report: SolveReport,
}

impl<'a> Problem<'a> {
    pub fn new(net: &Mlp, x: MatRef<'a, f64>, y: MatRef<'_, f64>, par: Par) -> Result<Self> {
        validate::multi_scale(net, 1.0, 1.0, 1.0)?;
        let depth = net.depth;
        validate::finite_mat("X", x)?;
        validate::targets(y, x.nrows())?;
        // the kernel, its eigenvectors and faer's eigensolver workspace (linalg::EIGEN_MATRICES)
        validate::dense_memory(
            "X",
            "the kernel and its eigendecomposition",
            1.0 + crate::linalg::EIGEN_MATRICES,
            x.nrows(),
            x.nrows(),
            "use fewer samples",
        )?;
        let s2 = (net.sigma_w * net.sigma_w).powi(depth as i32);
        let mut kn = input_kernel(x, x, net.sigma_w, 0.0, par);
        kn.col_iter_mut()
            .for_each(|c| c.iter_mut().for_each(|v| *v *= s2));
        crate::kernels::lazy::check_overflow("X", kn.as_ref())?;
        let (lam, v) = symmetric_eigen("K", kn.as_ref(), par)?;
        let lam: Vec<f64> = lam.into_iter().map(|l| l.max(0.0)).collect();
        let mut yk = Mat::<f64>::zeros(lam.len(), y.ncols());
        matmul(yk.as_mut(), Accum::Replace, v.transpose(), y, 1.0, par);
        let r = (0..lam.len())
            .map(|k| (0..y.ncols()).map(|c| yk[(k, c)] * yk[(k, c)]).sum())
            .collect();
        Ok(Problem {
            x,
            y: y.to_owned(),
            sigma_w: net.sigma_w,
            depth,
            kn,
            lam,
            v,
            yk,
            r,
        })
    }

    /// `V diag(f) V^T Y`: `V (f * yk)`.
    fn spectral(&self, f: impl Fn(usize) -> f64, par: Par) -> Mat<f64> {
        let scaled = Mat::from_fn(self.yk.nrows(), self.yk.ncols(), |k, c| {
            f(k) * self.yk[(k, c)]
        });
        let mut out = Mat::<f64>::zeros(self.v.nrows(), self.yk.ncols());
        matmul(
            out.as_mut(),
            Accum::Replace,
            self.v.as_ref(),
            scaled.as_ref(),
            1.0,
            par,
        );
        out
    }

    /// The spectral data of eq. (1)-(3) at `pt`.
    fn spec(&self, pt: &Point, order: Order) -> root::Spec<'_> {
        root::Spec {
            lam: &self.lam,
            r: &self.r,
            nc: self.y.ncols(),
            t: pt.temperature,
            chi: pt.chi,
            n: pt.width,
            corr: order == Order::Corrected,
            depth: self.depth,
        }
    }

    /// The full solution at layer scale `q` (module docs; `width` may be inf).
    pub fn solution(
        &self,
        q: f64,
        pt: &Point,
        order: Order,
        report: SolveReport,
        par: Par,
    ) -> Solution {
        let (t, chi, n) = (pt.temperature, pt.chi, pt.width);
        let layer_scale = q;
        // the kernel scale U = Q^L (Q itself for one hidden layer); below `q` is U
        let q = q.powi(self.depth as i32);
        let (p, nc) = (self.y.nrows(), self.y.ncols());
        let corr = order == Order::Corrected;
        let g: Vec<f64> = self.lam.iter().map(|l| q * l + t).collect();
        let dual = self.spectral(|k| 1.0 / g[k], par);
        let dual2 = self.spectral(|k| 1.0 / (g[k] * g[k]), par);
        let discrepancy = Mat::from_fn(p, nc, |i, c| t * dual[(i, c)]);
        let train_mean = Mat::from_fn(p, nc, |i, c| self.y[(i, c)] - discrepancy[(i, c)]);
        let sp = self.spec(pt, order);
        let action = root::action(&sp, layer_scale);
        let curvature = root::curvature(&sp, layer_scale);
        let v2 = |i: usize, k: usize| self.v[(i, k)] * self.v[(i, k)];
        let tree1 = !corr && nc == 1 && n.is_finite();
        let (kernel, rank_one, train_var) = if !tree1 {
            let kernel = Mat::from_fn(p, p, |i, j| q * self.kn[(i, j)]);
            // GP part T sum_k V_ik^2 Q lam_k / g_k (/ chi); Laplace part (3), corrected only
            let df = self.spectral(|k| t * self.lam[k] / (g[k] * g[k]), par);
            let lap = corr && n.is_finite() && curvature > 0.0;
            let gp: Vec<f64> = (0..p)
                .map(|i| {
                    (0..p)
                        .map(|k| v2(i, k) * q * self.lam[k] * t / g[k])
                        .sum::<f64>()
                        / chi
                })
                .collect();
            let var = Mat::from_fn(p, nc, |i, c| {
                gp[i]
                    + if lap {
                        df[(i, c)] * df[(i, c)] / curvature
                    } else {
                        0.0
                    }
            });
            (kernel, 0.0, var)
        } else {
            // chi U / (N T^2) (U - 1) / (Q - 1), i.e. (U - 1) / (t^T Kn t) at the root
            let geo: f64 = (0..self.depth).map(|j| layer_scale.powi(j as i32)).sum();
            let eff = chi / (n * t * t) * q * geo;
            let w: Vec<f64> = (0..p)
                .map(|i| (0..p).map(|j| self.kn[(i, j)] * discrepancy[(j, 0)]).sum())
                .collect();
            let kernel = Mat::from_fn(p, p, |i, j| self.kn[(i, j)] + eff * w[i] * w[j]);
            // (K + T)^{-1} = A - eff a a^T / (1 + eff w.a), A = (Kn + T)^{-1}, a = A w
            let wk: Vec<f64> = (0..p)
                .map(|k| (0..p).map(|i| self.v[(i, k)] * w[i]).sum())
                .collect();
            let a: Vec<f64> = (0..p)
                .map(|i| {
                    (0..p)
                        .map(|k| self.v[(i, k)] * wk[k] / (self.lam[k] + t))
                        .sum()
                })
                .collect();
            let wa: f64 = w.iter().zip(&a).map(|(w, a)| w * a).sum();
            let var = Mat::from_fn(p, 1, |i, _| {
                let aii: f64 = (0..p).map(|k| v2(i, k) / (self.lam[k] + t)).sum();
                let inv = aii - eff * a[i] * a[i] / (1.0 + eff * wa);
                (t - t * t * inv) / chi
            });
            (kernel, eff, var)
        };
        let (weight_covariance, weight_eigenvalues, weight_overlap) = if nc == 1 {
            self.weight_covariance(
                q,
                pt,
                corr,
                dual.col(0).try_as_col_major().unwrap().as_slice(),
                discrepancy.col(0).try_as_col_major().unwrap().as_slice(),
                par,
            )
        } else {
            (Mat::zeros(0, 0), Vec::new(), f64::NAN)
        };
        Solution {
            scale: q,
            layer_scale,
            minima: vec![(layer_scale, action)],
            action,
            curvature,
            kernel,
            dual,
            dual2,
            discrepancy,
            train_mean,
            train_var,
            weight_eigenvalues,
            weight_overlap,
            weight_covariance,
            rank_one,
            report,
        }
    }

    /// Eq. (4), its spectrum (descending) and the top eigenvector's `|cos|` with `X^T t`.
    fn weight_covariance(
        &self,
        q: f64,
        pt: &Point,
        corr: bool,
        b: &[f64],
        t: &[f64],
        par: Par,
    ) -> (Mat<f64>, Vec<f64>, f64) {
        let (p, d) = (self.x.nrows(), self.x.ncols());
        let n = pt.width;
        let mut m = Mat::<f64>::zeros(p, p);
        if n.is_finite() {
            let coef = self.sigma_w.powi(2 * self.depth as i32 + 2) * q / (n * d as f64);
            for j in 0..p {
                for i in 0..p {
                    m[(i, j)] = coef * pt.chi * b[i] * b[j];
                }
            }
            if corr {
                // G^{-1} = V diag(1/g) V^T
                let vs = Mat::from_fn(p, p, |i, k| {
                    self.v[(i, k)] / (q * self.lam[k] + pt.temperature)
                });
                matmul(
                    m.as_mut(),
                    Accum::Add,
                    vs.as_ref(),
                    self.v.transpose(),
                    -coef,
                    par,
                );
            }
        }
        let mut mx = Mat::<f64>::zeros(p, d);
        matmul(mx.as_mut(), Accum::Replace, m.as_ref(), self.x, 1.0, par);
        let mut sw = Mat::<f64>::identity(d, d);
        matmul(
            sw.as_mut(),
            Accum::Add,
            self.x.transpose(),
            mx.as_ref(),
            1.0,
            par,
        );
        for j in 0..d {
            for i in 0..j {
                let s = 0.5 * (sw[(i, j)] + sw[(j, i)]);
                sw[(i, j)] = s;
                sw[(j, i)] = s;
            }
        }
        let xt: Vec<f64> = (0..d)
            .map(|j| (0..p).map(|i| self.x[(i, j)] * t[i]).sum())
            .collect();
        let (eig, vecs) = match symmetric_eigen("weight_covariance", sw.as_ref(), par) {
            Ok(r) => r,
            Err(_) => return (sw, vec![f64::NAN; d], f64::NAN),
        };
        // symmetric_eigen returns ascending eigenvalues
        let top = d - 1;
        let nx = xt.iter().map(|v| v * v).sum::<f64>().sqrt();
        let dot: f64 = (0..d).map(|i| vecs[(i, top)] * xt[i]).sum();
        let overlap = if nx > 0.0 { (dot / nx).abs() } else { f64::NAN };
        (sw, eig.into_iter().rev().collect(), overlap)
    }
}

fn check(points: &[Point], net: &Mlp, opts: &Options) -> Result<()> {
    opts.validate()?;
    for pt in points {
        validate::multi_scale(net, pt.width, pt.temperature, pt.chi)?;
    }
    Ok(())
}

/// Solutions along `points` in order (Algorithm 1 of the paper when the points are a grid in
/// `chi`): the first from the NNGP (`Q = 1`), each next one warm-started from the previous
/// scale. `q0` overrides the first start.
pub fn solve_path(
    prob: &Problem<'_>,
    net: &Mlp,
    points: &[Point],
    opts: &Options,
    q0: Option<f64>,
    n_threads: usize,
    ctl: &Control,
) -> Result<Path<Solution>> {
    check(points, net, opts)?;
    // this solver is the closed form (linear nets)
    let order = opts.order.resolve(false);
    if let Some(q) = q0 {
        if !(q.is_finite() && q > 0.0) {
            return Err(invalid("Q0", format!("must be finite and > 0, got {q}")));
        }
    }
    with_threads(n_threads, |par| {
        Path::walk(points, |pt, done: &[Solution]| {
            ctl.checkpoint()?;
            let start = done.last().map(|s| s.layer_scale).or(q0).unwrap_or(1.0);
            let mut minima = None;
            let (q, report) = if pt.width.is_infinite() {
                (1.0, SolveReport::new("nngp", true, 0, 0, 0.0, vec![0.0]))
            } else if prob.depth == 1 {
                root::solve(&prob.spec(pt, order), opts, start)?
            } else {
                let (q, rep, m) = root::solve_global(&prob.spec(pt, order), opts)?;
                minima = Some(m);
                (q, rep)
            };
            if !q.is_finite() {
                return Err(AkError::NonFinite {
                    name: "scale",
                    msg: format!("the scalar root diverged at chi = {}", pt.chi),
                });
            }
            let mut report = report;
            report.stages = vec![pt.chi];
            let mut s = prob.solution(q, pt, order, report, par);
            if let Some(m) = minima {
                s.minima = m;
            }
            ctl.advance(1); // one point solved
            Ok(s)
        })
    })
}
