//! Activation functions and their bivariate Gaussian expectations
//! `E[phi(u) phi(v)]` and `E[phi'(u) phi'(v)]`, `(u, v) ~ N(0, [[a, c], [c, b]])`.
use crate::error::{AkError, Result};
use crate::kernels::quadrature::{correlation, PolarRule};
use std::f64::consts::{FRAC_1_SQRT_2, PI};
use std::sync::Arc;

mod erf;
mod relu;
use erf::{erf_batch, erf_closed, erf_closed_grad, erf_grad_batch};
use relu::{relu_batch, relu_closed};

/// A vectorised user function (e.g. a Python callable, through the binding).
pub trait ElementwiseFn: Send + Sync {
    /// `out[i] = phi(x[i])`.
    fn eval(&self, x: &[f64], out: &mut [f64]) -> std::result::Result<(), String>;
    /// `out[i] = phi'(x[i])`. Default: central difference with step `1e-5 max(1, |x|)`
    /// (truncation error ~1e-10 relative for smooth phi).
    fn eval_derivative(&self, x: &[f64], out: &mut [f64]) -> std::result::Result<(), String> {
        let h: Vec<f64> = x.iter().map(|x| 1e-5 * x.abs().max(1.0)).collect();
        let xp: Vec<f64> = x.iter().zip(&h).map(|(x, h)| x + h).collect();
        let xm: Vec<f64> = x.iter().zip(&h).map(|(x, h)| x - h).collect();
        let mut fp = vec![0.0; x.len()];
        self.eval(&xp, &mut fp)?;
        self.eval(&xm, out)?;
        for i in 0..x.len() {
            out[i] = (fp[i] - out[i]) / (2.0 * h[i]);
        }
        Ok(())
    }
}

#[derive(Clone)]
pub enum Activation {
    Linear,
    Relu,
    Erf,
    Tanh,
    Gelu,
    Softplus,
    Custom(Arc<dyn ElementwiseFn>),
}

impl std::fmt::Debug for Activation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Activation {
    pub fn from_name(name: &str) -> Result<Self> {
        Ok(match name {
            "linear" | "identity" => Activation::Linear,
            "relu" => Activation::Relu,
            "erf" => Activation::Erf,
            "tanh" => Activation::Tanh,
            "gelu" => Activation::Gelu,
            "softplus" => Activation::Softplus,
            other => {
                return Err(AkError::InvalidArgument {
                    name: "activation",
                    msg: format!(
                        "unknown activation {other:?}; expected one of 'linear', 'relu', 'erf', \
                         'tanh', 'gelu', 'softplus' or a callable"
                    ),
                })
            }
        })
    }

    pub fn name(&self) -> &'static str {
        match self {
            Activation::Linear => "linear",
            Activation::Relu => "relu",
            Activation::Erf => "erf",
            Activation::Tanh => "tanh",
            Activation::Gelu => "gelu",
            Activation::Softplus => "softplus",
            Activation::Custom(_) => "custom",
        }
    }

    /// Whether `E[phi phi]`/`E[phi' phi']` have a closed form (used with `Method::Auto`).
    pub fn has_closed_form(&self) -> bool {
        matches!(
            self,
            Activation::Linear | Activation::Relu | Activation::Erf
        )
    }

    /// phi(x) for the built-in activations (`None` for `Custom`).
    #[inline]
    pub fn phi(&self, x: f64) -> Option<f64> {
        Some(match self {
            Activation::Linear => x,
            Activation::Relu => x.max(0.0),
            Activation::Erf => libm::erf(x),
            Activation::Tanh => tanh(x),
            Activation::Gelu => x * normal_cdf(x),
            // log(1 + e^x), stable for large |x|
            Activation::Softplus => x.max(0.0) + libm::log1p(libm::exp(-x.abs())),
            Activation::Custom(_) => return None,
        })
    }

    /// phi'(x) for the built-in activations (`None` for `Custom`); relu'(0) = 0.
    #[inline]
    pub fn dphi(&self, x: f64) -> Option<f64> {
        Some(match self {
            Activation::Linear => 1.0,
            Activation::Relu => {
                if x > 0.0 {
                    1.0
                } else {
                    0.0
                }
            }
            Activation::Erf => 2.0 / PI.sqrt() * libm::exp(-x * x),
            Activation::Tanh => {
                let t = tanh(x);
                1.0 - t * t
            }
            Activation::Gelu => normal_cdf(x) + x * libm::exp(-0.5 * x * x) / (2.0 * PI).sqrt(),
            Activation::Softplus => sigmoid_from(x, libm::exp(-x.abs())),
            Activation::Custom(_) => return None,
        })
    }
}

impl Activation {
    /// `(phi(x), phi'(x), phi(-x), phi'(-x))` for the built-in activations from one
    /// evaluation, using their reflection identities: odd phi (linear, erf, tanh) have
    /// `phi(-x) = -phi(x)`, even phi'; gelu and softplus satisfy `phi(-x) = phi(x) - x` and
    /// `phi'(-x) = 1 - phi'(x)`. relu is evaluated directly. `None` for `Custom`.
    #[inline]
    pub fn phi_pm(&self, x: f64) -> Option<(f64, f64, f64, f64)> {
        Some(match self {
            Activation::Relu => (x.max(0.0), step(x), (-x).max(0.0), step(-x)),
            Activation::Linear => (x, 1.0, -x, 1.0),
            Activation::Tanh => {
                let t = tanh(x);
                let d = 1.0 - t * t;
                (t, d, -t, d)
            }
            Activation::Erf => {
                let e = libm::erf(x);
                let d = 2.0 / PI.sqrt() * libm::exp(-x * x);
                (e, d, -e, d)
            }
            Activation::Softplus => {
                let e = libm::exp(-x.abs());
                let (f, d) = (x.max(0.0) + libm::log1p(e), sigmoid_from(x, e));
                (f, d, f - x, 1.0 - d)
            }
            Activation::Gelu => {
                let (f, d) = (self.phi(x).unwrap(), self.dphi(x).unwrap());
                (f, d, f - x, 1.0 - d)
            }
            Activation::Custom(_) => return None,
        })
    }
}

impl Activation {
    /// phi''(x) for the smooth built-in activations (`None` for relu, whose phi'' is a delta,
    /// and for `Custom`). Used by the quadrature path of [`ExpectationGrad`].
    #[inline]
    pub fn ddphi(&self, x: f64) -> Option<f64> {
        Some(match self {
            Activation::Linear => 0.0,
            Activation::Erf => -4.0 / PI.sqrt() * x * libm::exp(-x * x),
            Activation::Tanh => {
                let t = tanh(x);
                -2.0 * t * (1.0 - t * t)
            }
            // gelu = x Phi(x): phi'' = pdf(x) (2 - x^2)
            Activation::Gelu => libm::exp(-0.5 * x * x) / (2.0 * PI).sqrt() * (2.0 - x * x),
            Activation::Softplus => {
                let s = sigmoid_from(x, libm::exp(-x.abs()));
                s * (1.0 - s)
            }
            Activation::Relu | Activation::Custom(_) => return None,
        })
    }
}

/// Closed-form `(E, dE/dc, dE/da, dE/db)` of `E(a, b, c) = E[phi(u) phi(v)]`,
/// `(u, v) ~ N(0, [[a, c], [c, b]])` (`dE/db(a, b, c) = dE/da(b, a, c)`).
///
/// `dE/dc = E[phi' phi']` (Price's theorem); `dE/da = E[phi''(u) phi(v)] / 2`:
/// relu `sin(theta) sqrt(b/a) / (4 pi)`, erf `-4c / (pi (1+2a) sqrt((1+2a)(1+2b) - 4c^2))`.
/// At `a = b = c = k` the sum `dE/dc + 2 dE/da` is the derivative of `E[phi(u)^2]`, u ~ N(0, k).
#[inline]
pub fn closed_form_grad(act: &Activation, a: f64, b: f64, c: f64) -> Option<(f64, f64, f64, f64)> {
    match act {
        Activation::Linear => Some((c, 1.0, 0.0, 0.0)),
        Activation::Relu => {
            let (e, dc) = closed_form(act, a, b, c)?;
            let rho = correlation(a, b, c);
            let sin = (1.0 - rho * rho).max(0.0).sqrt();
            let (da, db) = if a > 0.0 && b > 0.0 {
                let r = (b / a).sqrt();
                (sin * r / (4.0 * PI), sin / (r * 4.0 * PI))
            } else {
                (0.0, 0.0)
            };
            Some((e, dc, da, db))
        }
        Activation::Erf => Some(erf_closed_grad(a, b, c)),
        _ => None,
    }
}

/// Batched `(E, dE/dc, dE/da, dE/db)` (see [`closed_form_grad`]): closed forms for linear, relu and
/// erf whatever the method, the polar quadrature of `E[phi phi]`, `E[phi' phi']` and
/// `E[phi''(u) phi(v)] / 2` otherwise (phi'' by central differences of phi' for callables).
pub struct ExpectationGrad<'a> {
    pub act: &'a Activation,
    pub rule: &'a PolarRule,
}

impl ExpectationGrad<'_> {
    #[allow(clippy::too_many_arguments)]
    pub fn batch(
        &self,
        a: &[f64],
        b: &[f64],
        c: &[f64],
        e: &mut [f64],
        dc: &mut [f64],
        da: &mut [f64],
        mut db: Option<&mut [f64]>,
    ) -> Result<()> {
        let n = c.len();
        if matches!(self.act, Activation::Erf) {
            erf_grad_batch(&a[..n], &b[..n], c, &mut e[..n], &mut dc[..n], &mut da[..n], db.map(|d| &mut d[..n]));
            return Ok(());
        }
        if self.act.has_closed_form() {
            for k in 0..n {
                let (x, y, z, w) = closed_form_grad(self.act, a[k], b[k], c[k]).unwrap();
                e[k] = x;
                dc[k] = y;
                da[k] = z;
                if let Some(db) = db.as_deref_mut() {
                    db[k] = w;
                }
            }
            return Ok(());
        }
        if let Activation::Custom(f) = self.act {
            self.batch_custom(f.as_ref(), a, b, c, e, dc, da)?;
            if let Some(db) = db {
                // dE/db(a, b, c) = dE/da(b, a, c)
                let (mut e2, mut dc2) = (vec![0.0; n], vec![0.0; n]);
                self.batch_custom(f.as_ref(), b, a, c, &mut e2, &mut dc2, db)?;
            }
            return Ok(());
        }
        let act = self.act;
        for k in 0..n {
            let (mut s0, mut s1, mut s2, mut s3) = (0.0, 0.0, 0.0, 0.0);
            self.rule.for_each_node(a[k], b[k], c[k], |w, u, v| {
                let (fu, du, fmu, dmu) = act.phi_pm(u).unwrap();
                let (fv, dv, fmv, dmv) = act.phi_pm(v).unwrap();
                let (ddu, ddmu) = (act.ddphi(u).unwrap(), act.ddphi(-u).unwrap());
                let (ddv, ddmv) = (act.ddphi(v).unwrap(), act.ddphi(-v).unwrap());
                s0 += w * (fu * fv + fmu * fmv);
                s1 += w * (du * dv + dmu * dmv);
                s2 += w * (ddu * fv + ddmu * fmv);
                s3 += w * (fu * ddv + fmu * ddmv);
            });
            e[k] = s0;
            dc[k] = s1;
            da[k] = 0.5 * s2;
            if let Some(db) = db.as_deref_mut() {
                db[k] = 0.5 * s3;
            }
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn batch_custom(
        &self,
        f: &dyn ElementwiseFn,
        a: &[f64],
        b: &[f64],
        c: &[f64],
        e: &mut [f64],
        dc: &mut [f64],
        da: &mut [f64],
    ) -> Result<()> {
        let n = c.len();
        let (w, us, vs, counts) = quadrature_nodes(self.rule, a, b, c);
        let m = w.len();
        let cb = |r: std::result::Result<(), String>| r.map_err(AkError::Callback);
        let (mut fu, mut fv, mut du, mut dv) =
            (vec![0.0; m], vec![0.0; m], vec![0.0; m], vec![0.0; m]);
        cb(f.eval(&us, &mut fu))?;
        cb(f.eval(&vs, &mut fv))?;
        cb(f.eval_derivative(&us, &mut du))?;
        cb(f.eval_derivative(&vs, &mut dv))?;
        // phi''(u) by a central difference of phi' (step 1e-4 max(1, |u|): error ~1e-8 relative)
        let h: Vec<f64> = us.iter().map(|u| 1e-4 * u.abs().max(1.0)).collect();
        let up: Vec<f64> = us.iter().zip(&h).map(|(u, h)| u + h).collect();
        let um: Vec<f64> = us.iter().zip(&h).map(|(u, h)| u - h).collect();
        let (mut dp, mut dm) = (vec![0.0; m], vec![0.0; m]);
        cb(f.eval_derivative(&up, &mut dp))?;
        cb(f.eval_derivative(&um, &mut dm))?;
        let mut start = 0;
        for k in 0..n {
            let (mut s0, mut s1, mut s2) = (0.0, 0.0, 0.0);
            for i in start..start + counts[k] {
                s0 += w[i] * fu[i] * fv[i];
                s1 += w[i] * du[i] * dv[i];
                s2 += w[i] * (dp[i] - dm[i]) / (2.0 * h[i]) * fv[i];
            }
            if !(s0.is_finite() && s1.is_finite() && s2.is_finite()) {
                return Err(AkError::NonFinite {
                    name: "activation",
                    msg: "the callable returned non-finite values at Gaussian quadrature nodes"
                        .into(),
                });
            }
            e[k] = s0;
            dc[k] = s1;
            da[k] = 0.5 * s2;
            start += counts[k];
        }
        Ok(())
    }
}

// The transcendental functions come from the `libm` crate (musl): glibc's exp/acos/tanh take
// slow paths (errno wrappers, correctly-rounded fallbacks) for some arguments, measured here at
// 5-10x their usual cost inside the quadrature loop.
#[inline]
fn tanh(x: f64) -> f64 {
    libm::tanh(x)
}

/// Logistic sigmoid given `e = exp(-|x|)` (stable for all x).
#[inline]
fn sigmoid_from(x: f64, e: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + e)
    } else {
        e / (1.0 + e)
    }
}

#[inline]
fn step(x: f64) -> f64 {
    if x > 0.0 {
        1.0
    } else {
        0.0
    }
}

#[inline]
fn normal_cdf(x: f64) -> f64 {
    0.5 * libm::erfc(-x * FRAC_1_SQRT_2)
}

/// How Gaussian expectations are computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Closed forms where they exist (linear, relu, erf); otherwise the Hermite expansion in the
    /// lazy kernels ([`crate::kernels::net::Mlp::lazy_uses_hermite`]) and the polar quadrature
    /// elsewhere.
    Auto,
    /// Always the polar quadrature rule (for checking closed forms).
    Quadrature,
    /// Hermite (Mehler) expansions for every activation in the lazy kernels (per-point
    /// coefficients, polar quadrature where the error bound misses the target; see
    /// [`crate::kernels::hermite`]); elsewhere as `Quadrature`.
    Hermite,
}

impl Method {
    pub fn from_name(name: &str) -> Result<Self> {
        match name {
            "auto" | "closed_form" => Ok(Method::Auto),
            "quadrature" => Ok(Method::Quadrature),
            "hermite" => Ok(Method::Hermite),
            other => Err(AkError::InvalidArgument {
                name: "method",
                msg: format!("unknown method {other:?}; expected 'auto', 'quadrature' or 'hermite'"),
            }),
        }
    }
}

/// Closed-form `(E[phi phi], E[phi' phi'])`; `None` when the activation has none.
///
/// relu: arc-cosine kernels of degree 1 and 0 (Cho & Saul 2009);
/// erf: Williams 1997, `2/pi asin(2c / sqrt((1+2a)(1+2b)))` and its derivative kernel
/// `4/pi / sqrt((1+2a)(1+2b) - 4c^2)` (branch-free asin: [`erf::asin_select`]).
#[inline]
pub fn closed_form(act: &Activation, a: f64, b: f64, c: f64) -> Option<(f64, f64)> {
    match act {
        Activation::Linear => Some((c, 1.0)),
        Activation::Relu => Some(relu_closed(a, b, c)),
        Activation::Erf => Some(erf_closed(a, b, c)),
        _ => None,
    }
}

/// Evaluates the expectations for a batch of covariances `(a, b, c)`.
///
/// `out_e[k] = E[phi phi]`, and `out_d[k] = E[phi' phi']` when `out_d` is given. Custom
/// activations are called once per batch (the nodes of all entries concatenated), so a
/// Python callable pays its call overhead once per batch, not once per node.
pub struct Expectation<'a> {
    pub act: &'a Activation,
    pub method: Method,
    pub rule: &'a PolarRule,
}

impl Expectation<'_> {
    fn use_closed_form(&self) -> bool {
        self.method == Method::Auto && self.act.has_closed_form()
    }

    pub fn batch(
        &self,
        a: &[f64],
        b: &[f64],
        c: &[f64],
        out_e: &mut [f64],
        mut out_d: Option<&mut [f64]>,
    ) -> Result<()> {
        let n = c.len();
        if self.use_closed_form() {
            if matches!(self.act, Activation::Relu) {
                relu_batch(&a[..n], &b[..n], c, &mut out_e[..n], out_d.map(|d| &mut d[..n]));
                return Ok(());
            }
            if matches!(self.act, Activation::Erf) {
                erf_batch(&a[..n], &b[..n], c, &mut out_e[..n], out_d.map(|d| &mut d[..n]));
                return Ok(());
            }
            for k in 0..n {
                let (e, d) = closed_form(self.act, a[k], b[k], c[k]).unwrap();
                out_e[k] = e;
                if let Some(od) = out_d.as_deref_mut() {
                    od[k] = d;
                }
            }
            return Ok(());
        }
        match self.act {
            Activation::Custom(f) => self.batch_custom(f.as_ref(), a, b, c, out_e, out_d),
            act => {
                for k in 0..n {
                    let (mut e, mut d) = (0.0, 0.0);
                    self.rule.for_each_node(a[k], b[k], c[k], |w, u, v| {
                        let (fu, du, fmu, dmu) = act.phi_pm(u).unwrap();
                        let (fv, dv, fmv, dmv) = act.phi_pm(v).unwrap();
                        e += w * (fu * fv + fmu * fmv);
                        d += w * (du * dv + dmu * dmv);
                    });
                    out_e[k] = e;
                    if let Some(od) = out_d.as_deref_mut() {
                        od[k] = d;
                    }
                }
                Ok(())
            }
        }
    }

    fn batch_custom(
        &self,
        f: &dyn ElementwiseFn,
        a: &[f64],
        b: &[f64],
        c: &[f64],
        out_e: &mut [f64],
        mut out_d: Option<&mut [f64]>,
    ) -> Result<()> {
        // u's of all nodes, then v's
        let (w, mut uv, vs, counts) = quadrature_nodes(self.rule, a, b, c);
        let m = w.len();
        uv.extend_from_slice(&vs);
        drop(vs);
        let mut vals = vec![0.0; 2 * m];
        f.eval(&uv, &mut vals).map_err(AkError::Callback)?;
        reduce_pairs(&w, &vals, &counts, out_e, "activation")?;
        if let Some(od) = out_d.as_deref_mut() {
            f.eval_derivative(&uv, &mut vals)
                .map_err(AkError::Callback)?;
            reduce_pairs(&w, &vals, &counts, od, "activation_derivative")?;
        }
        Ok(())
    }
}

/// All polar-rule nodes of a batch of covariances `(a, b, c)`: weights, u's, v's, and the node
/// count of each entry. Both signs of the +- fold are separate nodes of weight w.
fn quadrature_nodes(
    rule: &PolarRule,
    a: &[f64],
    b: &[f64],
    c: &[f64],
) -> (Vec<f64>, Vec<f64>, Vec<f64>, Vec<usize>) {
    let (mut w, mut us, mut vs, mut counts) = (
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::with_capacity(c.len()),
    );
    for k in 0..c.len() {
        let before = w.len();
        rule.for_each_node(a[k], b[k], c[k], |wk, u, v| {
            w.extend_from_slice(&[wk, wk]);
            us.extend_from_slice(&[u, -u]);
            vs.extend_from_slice(&[v, -v]);
        });
        counts.push(w.len() - before);
    }
    (w, us, vs, counts)
}

fn reduce_pairs(
    w: &[f64],
    vals: &[f64],
    counts: &[usize],
    out: &mut [f64],
    name: &'static str,
) -> Result<()> {
    let m = w.len();
    let (fu, fv) = vals.split_at(m);
    let mut start = 0;
    for (k, &cnt) in counts.iter().enumerate() {
        let mut s = 0.0;
        for i in start..start + cnt {
            s += w[i] * fu[i] * fv[i];
        }
        if !s.is_finite() {
            return Err(AkError::NonFinite {
                name,
                msg: "the callable returned non-finite values at Gaussian quadrature nodes".into(),
            });
        }
        out[k] = s;
        start += cnt;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
