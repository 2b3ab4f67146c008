//! Hermite (Mehler) expansions of the bivariate Gaussian expectations.
//!
//! With `u = sqrt(a) x`, `v = sqrt(b) y`, `(x, y)` standard normals of correlation
//! `rho = c / sqrt(ab)`, Mehler's formula gives
//!
//! `E[phi(u) phi(v)] = sum_n c_n(a) c_n(b) rho^n`, `c_n(s) = E[phi(sqrt(s) z) He_n(z)] / sqrt(n!)`
//!
//! (probabilists' Hermite polynomials, `z ~ N(0, 1)`), and likewise `E[phi'(u) phi'(v)]` with
//! the coefficients `d_n(s)` of `phi'`. The coefficients depend on the variance, so they are
//! computed exactly per point: one vector per point and layer, up to order [`MAX_ORDER`], by the
//! mesh rule ([`mesh`]: composite Gauss-Legendre graded towards the activation's transition, for
//! the built-in activations at variances above 1), a symmetric Gauss-Hermite rule of [`GH_NODES`]
//! nodes for callables and for the built-ins at variances up to 1 (exact to rounding there),
//! closed forms for relu. An entry is then a polynomial in `rho` (Horner,
//! no transcendental functions). Entries that miss the bound below take the graded polar rule
//! ([`crate::kernels::quadrature::PolarRule::graded`]; callables: the polar rule of their order).
//!
//! Error bound: with `T(N) = E[phi^2] - sum_{n<=N} c_n^2` (the tail, computed without
//! cancellation as the rule's mean square of the residual, [`residual_tails`]), Cauchy-Schwarz and
//! `|rho| <= 1` bound the truncation error of an entry by `|rho|^{N+1} sqrt(T_a(N) T_b(N))`.
//! An entry is accepted when this is at most [`TOL`] `sqrt(E[phi(u)^2] E[phi(v)^2])` (and the same
//! for phi' when the derivative kernel is wanted); otherwise (|rho| -> 1 with slowly decaying
//! coefficients, e.g. kinks or large variances) the caller falls back to the polar quadrature.
//! The truncation order N of a table is the smallest one whose relative tails are below `TOL`
//! for all its points (then every entry is accepted), else `MAX_ORDER`. Entries with `rho = 1`
//! and equal variances are `E[phi(u)^2]` from the 1-D rule itself.
//!
//! The 1-D rule's own error is not part of the bound. The mesh rule is accurate to ~5e-16 for
//! the built-in activations at any variance (tested); for callables, a point whose `E[phi^2]`
//! from the [`GH_NODES`]-node rule and from a [`GH_CHECK_NODES`]-node rule differ by more than
//! `1e-8 E[phi^2]` (or `c_0`, `c_1` by more than `1e-8 sqrt(E[phi^2])`; the check rule's own error) (non-smooth callables, very large variances) has an infinite tail, so all its
//! entries use the quadrature.
use crate::error::{AkError, Result};
use crate::kernels::activation::{Activation, ElementwiseFn};
use crate::kernels::quadrature::correlation;
use rayon::prelude::*;

/// Largest expansion order.
pub const MAX_ORDER: usize = 128;
/// Accepted truncation error of an entry, relative to `sqrt(E[phi(u)^2] E[phi(v)^2])`.
pub const TOL: f64 = 1e-12;
/// Nodes of the Gauss-Hermite rule of the coefficients, and of the rule that checks it.
pub const GH_NODES: usize = 400;
pub const GH_CHECK_NODES: usize = 320;
/// Accepted difference between the two rules: of `E[phi^2]` relative to itself, of `c_0`, `c_1`
/// relative to `sqrt(E[phi^2])`. The difference is the check rule's error, ~100x the main
/// rule's (tanh' at variance 3.3: 5e-10 against 2e-12), so it is compared with 1e-8: kinks differ
/// by ~1e-5. (At 1e-12 every point of a moderate-variance tanh layer was "unreliable" and all
/// entries went to the order-128 quadrature: 300x slower.)
const RULE_CHECK: f64 = 1e-8;
/// Disagreement of the two rules' `E[phi^2]` (relative) taken for rounding: below it the
/// relative tails have no floor (see [`residual_tails`]).
const ROUNDING: f64 = 1e-13;

/// Per-point Hermite coefficients of phi (and phi') at one layer's variances.
#[derive(Debug, Clone)]
pub struct HermiteTable {
    /// Number of points.
    pub p: usize,
    /// Truncation order N of the table (of phi), and of phi' (0 without phi').
    pub order: usize,
    pub d_order: usize,
    /// Coefficients `c_n(s_i)` at `c[n * p + i]`, n = 0..=MAX_ORDER.
    pub c: Vec<f64>,
    /// `E[phi(sqrt(s_i) z)^2]`.
    pub m0: Vec<f64>,
    /// `sqrt(T_i(N) / E[phi^2])` (0 where `E[phi^2] = 0`, infinite where the rule is unreliable).
    pub rt: Vec<f64>,
    /// The same for phi' (when the derivative kernel is wanted).
    pub d: Option<(Vec<f64>, Vec<f64>, Vec<f64>)>,
    /// Parities of n with nonzero coefficients (bit 0 even, bit 1 odd), of phi and of phi'.
    pub parity: u8,
    pub d_parity: u8,
}

/// Coefficients, second moment and tails of one function at one variance.
#[derive(Clone)]
pub(crate) struct PointCoeffs {
    pub(crate) c: Vec<f64>,
    pub(crate) m0: f64,
    pub(crate) tails: Vec<f64>,
}

/// Coefficients from the values at `+- sqrt(s) z_k` of the main rule (`fp`, `fm`), and the
/// second moment from the check rule's values (`gp`, `gm`).
fn coeffs_from_values(fp: &[f64], fm: &[f64], gp: &[f64], gm: &[f64]) -> PointCoeffs {
    let r = rules();
    let k = fp.len();
    let even: Vec<f64> = fp.iter().zip(fm).map(|(a, b)| a + b).collect();
    let odd: Vec<f64> = fp.iter().zip(fm).map(|(a, b)| a - b).collect();
    let mut c = vec![0.0; MAX_ORDER + 1];
    for (n, cn) in c.iter_mut().enumerate() {
        let f = if n % 2 == 0 { &even } else { &odd };
        *cn = dot(&r.hw[n * k..(n + 1) * k], f);
    }
    let sq = |w: &[f64], a: &[f64], b: &[f64]| -> f64 {
        w.iter().zip(a.iter().zip(b)).map(|(w, (a, b))| w * (a * a + b * b)).sum()
    };
    let m0 = sq(&r.main.w, fp, fm);
    let m0_check = sq(&r.check.w, gp, gm);
    // c_0 and c_1 by the check rule too: E[phi^2] alone misses kinks whose square is smooth
    // (relu: relu(x)^2 + relu(-x)^2 = x^2, the step's sum is 1)
    let c0_check: f64 = r.check.w.iter().zip(gp.iter().zip(gm)).map(|(w, (a, b))| w * (a + b)).sum();
    let c1_check: f64 = (r.check.w.iter().zip(&r.check.z))
        .zip(gp.iter().zip(gm))
        .map(|((w, z), (a, b))| w * z * (a - b))
        .sum();
    let finite = m0.is_finite() && c.iter().all(|v| v.is_finite());
    let reliable = finite
        && (m0 - m0_check).abs() <= RULE_CHECK * m0
        && (c[0] - c0_check).abs() <= RULE_CHECK * m0.sqrt()
        && (c[1] - c1_check).abs() <= RULE_CHECK * m0.sqrt();
    let mut tails = vec![f64::INFINITY; MAX_ORDER + 1];
    if reliable {
        residual_tails(&c, m0, fp, fm, &mut tails);
        // the tails are the rule's: where the two rules disagree beyond rounding, the main rule's
        // own error (about the size of the disagreement) bounds how far they can be trusted
        let excess = ((m0 - m0_check).abs() - ROUNDING * m0).max(0.0);
        let floor = if m0 > 0.0 { (excess / m0).sqrt() } else { 0.0 };
        tails.iter_mut().for_each(|t| *t = t.max(floor));
    }
    PointCoeffs { c, m0, tails }
}

/// Relative tails `sqrt(T(N) / E[phi^2])` for N = 0..=MAX_ORDER of the main Gauss-Hermite rule's
/// values `fp`, `fm` at its nodes `+-z_k` ([`residual_ms`], [`suffix_tails`]).
fn residual_tails(c: &[f64], m0: f64, fp: &[f64], fm: &[f64], tails: &mut [f64]) {
    let r = rules();
    let t_max = residual_ms(c, &r.h, &r.main.w, fp, fm);
    tails.copy_from_slice(&suffix_tails(c, m0, t_max));
}

/// A rule's mean square of the residual `f - sum_{n<=MAX_ORDER} c_n h_n` (positive nodes `z_k`,
/// weights `w`, `h[n * k + q] = h_n(z_q)`, values `fp`, `fm` of f at `+-z_k`): the even and odd
/// parts of the truncated series at every node (`h_n(-z) = (-1)^n h_n(z)`), then the residuals.
pub(crate) fn residual_ms(c: &[f64], h: &[f64], w: &[f64], fp: &[f64], fm: &[f64]) -> f64 {
    crate::kernels::simd::simd_dispatch!(residual_ms_body(c: &[f64], h: &[f64], w: &[f64], fp: &[f64], fm: &[f64]) -> f64)
}

#[inline(always)]
fn residual_ms_body(c: &[f64], h: &[f64], w: &[f64], fp: &[f64], fm: &[f64]) -> f64 {
    let k = w.len();
    let (mut even, mut odd) = (vec![0.0; k], vec![0.0; k]);
    for (n, &cn) in c.iter().enumerate() {
        let acc = if n % 2 == 0 { &mut even } else { &mut odd };
        for (a, &hn) in acc.iter_mut().zip(&h[n * k..(n + 1) * k]) {
            *a += cn * hn;
        }
    }
    (0..k)
        .map(|q| {
            let (rp, rm) = (fp[q] - even[q] - odd[q], fm[q] - even[q] + odd[q]);
            w[q] * (rp * rp + rm * rm)
        })
        .sum()
}

/// Relative tails `sqrt(T(N) / E[phi^2])`, N = 0..=MAX_ORDER, from `t_max = T(MAX_ORDER)`, the
/// rule's mean square of the full residual ([`residual_ms`]), and `T(N) = T(MAX_ORDER) +
/// sum_{N<n<=MAX_ORDER} c_n^2`: the rule's mean square of the residual after N terms, by its
/// discrete orthogonality (exact for Gauss-Hermite at these orders, ~3e-15 for the mesh rule),
/// and a sum of positive terms. The difference `E[phi^2] - sum_{n<=N} c_n^2` would not do: its
/// cancellation cannot resolve tails below ~1e-16 E[phi^2] (relative tails ~1e-8), so entries with
/// |rho| above ~0.91 would miss the bound where the series has converged to machine precision.
pub(crate) fn suffix_tails(c: &[f64], m0: f64, t_max: f64) -> Vec<f64> {
    let mut t = vec![0.0; MAX_ORDER + 1];
    t[MAX_ORDER] = t_max;
    for n in (0..MAX_ORDER).rev() {
        t[n] = t[n + 1] + c[n + 1] * c[n + 1];
    }
    t.iter().map(|&t| if m0 > 0.0 { (t / m0).sqrt() } else { 0.0 }).collect()
}

/// Dot product with four accumulators (fixed order: independent of threads).
#[inline]
fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut s = [0.0; 4];
    let n4 = a.len() / 4 * 4;
    for i in (0..n4).step_by(4) {
        for l in 0..4 {
            s[l] += a[i + l] * b[i + l];
        }
    }
    let mut t = (s[0] + s[1]) + (s[2] + s[3]);
    for i in n4..a.len() {
        t += a[i] * b[i];
    }
    t
}

/// relu coefficients in closed form: `c_0 = sqrt(s) phi(0)`, `c_1 = sqrt(s)/2`,
/// `c_n = sqrt(s) phi(0) (-1)^{n/2+1} (n-3)!! / sqrt(n!)` (even n >= 2); step: `d_0 = 1/2`,
/// `d_n = phi(0) He_{n-1}(0) / sqrt(n!)`.
fn relu_coeffs(s: f64, derivative: bool) -> PointCoeffs {
    let pdf0 = 1.0 / (2.0 * std::f64::consts::PI).sqrt();
    let sq = s.max(0.0).sqrt();
    let mut c = vec![0.0; MAX_ORDER + 1];
    // g_n = He_n(0)/sqrt(n!) for even n: g_n = -g_{n-2} sqrt((n-1)/n)
    let mut g = vec![0.0; MAX_ORDER + 1];
    g[0] = 1.0;
    for n in (2..=MAX_ORDER).step_by(2) {
        g[n] = -g[n - 2] * ((n - 1) as f64 / n as f64).sqrt();
    }
    let m0;
    if derivative {
        c[0] = 0.5;
        for n in (1..=MAX_ORDER).step_by(2) {
            // He_{n-1}(0)/sqrt(n!) = g_{n-1} / sqrt(n)
            c[n] = pdf0 * g[n - 1] / (n as f64).sqrt();
        }
        m0 = 0.5;
    } else {
        c[0] = sq * pdf0;
        c[1] = 0.5 * sq;
        for n in (2..=MAX_ORDER).step_by(2) {
            // (He_n(0) + n He_{n-2}(0)) / sqrt(n!) = g_n + sqrt(n/(n-1)) g_{n-2} ... written via g
            c[n] = sq * pdf0 * (g[n] + (n as f64).sqrt() / ((n - 1) as f64).sqrt() * g[n - 2]);
        }
        m0 = 0.5 * s.max(0.0);
    }
    let mut tails = vec![0.0; MAX_ORDER + 1];
    let mut acc = 0.0;
    for n in 0..=MAX_ORDER {
        acc += c[n] * c[n];
        tails[n] = if m0 > 0.0 { ((m0 - acc).max(0.0) / m0).sqrt() } else { 0.0 };
    }
    PointCoeffs { c, m0, tails }
}

/// Points per call of a user callable (bounds its node buffer).
const CUSTOM_CHUNK: usize = 512;

/// Coefficients of phi (`derivative = false`) or phi' at the variances `s`.
fn point_coeffs(act: &Activation, s: &[f64], derivative: bool) -> Result<Vec<PointCoeffs>> {
    point_coeffs_k(act, s, derivative as u8)
}

/// `Some(s)` when `act`'s `k`-th derivative satisfies `f(-x) = s f(x)` bitwise, so that the
/// values at the negative nodes need not be evaluated: tanh (musl's tanh works on |x| and
/// applies the sign last; phi' = 1 - t^2 and phi'' = -2 t (1 - t^2) keep the parity exactly).
#[inline]
pub(crate) fn exact_parity(act: &Activation, k: u8) -> Option<f64> {
    match act {
        Activation::Tanh => Some(if k == 1 { 1.0 } else { -1.0 }),
        _ => None,
    }
}

/// `act`'s `k`-th derivative (k <= 2; phi'' only for the smooth built-ins) at `x`.
#[inline]
pub(crate) fn derivative_k(act: &Activation, x: f64, k: u8) -> f64 {
    match k {
        0 => act.phi(x).unwrap(),
        1 => act.dphi(x).unwrap(),
        _ => act.ddphi(x).unwrap(),
    }
}

/// Variances within this relative distance of the smallest one of their group share its
/// coefficients (see [`variance_groups`]).
pub const VARIANCE_MERGE: f64 = 1e-13;

/// Groups of (nearly) equal variances: `(representatives, group of each point)`. Sorted
/// ascending, a group starts at a variance `s0` and takes every following `s <= s0 (1 +`
/// [`VARIANCE_MERGE`]`)`; its representative is `s0`. Rows normalized to a common norm give
/// one group per layer (variances equal up to rounding), so the tables cost one point instead
/// of P. Replacing `s` by `s0` changes an entry by about `|dE/da| s VARIANCE_MERGE`, ~1e-13 of
/// its scale (`dE/da = E[phi''(u) phi(v)] / 2`). Deterministic: independent of threads.
pub(crate) fn variance_groups(s: &[f64]) -> (Vec<f64>, Vec<usize>) {
    let mut idx: Vec<usize> = (0..s.len()).collect();
    idx.sort_by(|&i, &j| s[i].total_cmp(&s[j]).then(i.cmp(&j)));
    let (mut reps, mut group) = (Vec::new(), vec![0; s.len()]);
    for &i in &idx {
        let start = reps.last().copied();
        match start {
            Some(s0) if s[i] <= s0 + VARIANCE_MERGE * f64::abs(s0) => {}
            _ => reps.push(s[i]),
        }
        group[i] = reps.len() - 1;
    }
    (reps, group)
}

/// Coefficients of the `k`-th derivative of phi (k = 0, 1, 2; k = 2 only for the smooth
/// built-in activations) at the variances `s`: computed once per group of nearly equal
/// variances ([`variance_groups`]).
pub(crate) fn point_coeffs_k(act: &Activation, s: &[f64], k: u8) -> Result<Vec<PointCoeffs>> {
    let (reps, group) = variance_groups(s);
    if reps.len() == s.len() {
        return point_coeffs_distinct(act, s, k);
    }
    let pcs = point_coeffs_distinct(act, &reps, k)?;
    Ok(group.iter().map(|&g| pcs[g].clone()).collect())
}

fn point_coeffs_distinct(act: &Activation, s: &[f64], k: u8) -> Result<Vec<PointCoeffs>> {
    let derivative = k == 1;
    if k == 2 && (matches!(act, Activation::Relu | Activation::Custom(_))) {
        return Err(AkError::InvalidArgument {
            name: "activation",
            msg: "phi'' expansions are only for the smooth built-in activations".into(),
        });
    }
    let r = rules();
    let (km, kc) = (r.main.z.len(), r.check.z.len());
    let nodes = |s: f64| -> Vec<f64> {
        let q = s.max(0.0).sqrt();
        let mut x = Vec::with_capacity(2 * (km + kc));
        x.extend(r.main.z.iter().map(|z| q * z));
        x.extend(r.main.z.iter().map(|z| -q * z));
        x.extend(r.check.z.iter().map(|z| q * z));
        x.extend(r.check.z.iter().map(|z| -q * z));
        x
    };
    let split = |v: &[f64]| -> PointCoeffs {
        let (a, rest) = v.split_at(km);
        let (b, rest) = rest.split_at(km);
        let (c, d) = rest.split_at(kc);
        coeffs_from_values(a, b, c, d)
    };
    match act {
        Activation::Relu => Ok(s.iter().map(|&s| relu_coeffs(s, derivative)).collect()),
        Activation::Custom(f) => {
            let mut out = Vec::with_capacity(s.len());
            for chunk in s.chunks(CUSTOM_CHUNK) {
                let x: Vec<f64> = chunk.iter().flat_map(|&s| nodes(s)).collect();
                let mut v = vec![0.0; x.len()];
                eval_custom(f.as_ref(), &x, &mut v, derivative)?;
                let per = 2 * (km + kc);
                out.extend(v.chunks(per).map(split));
            }
            Ok(out)
        }
        act => {
            // the Gauss-Hermite points batched, the mesh ones one by one
            let (gh, me): (Vec<usize>, Vec<usize>) =
                (0..s.len()).partition(|&i| s[i] <= mesh::GH_MAX_VARIANCE);
            let sg: Vec<f64> = gh.iter().map(|&i| s[i]).collect();
            let mut out: Vec<Option<PointCoeffs>> = vec![None; s.len()];
            for (i, pc) in gh.iter().zip(gauss_hermite::builtin_coeffs(act, &sg, k)) {
                out[*i] = Some(pc);
            }
            let pm: Vec<PointCoeffs> = me.par_iter().map(|&i| mesh::mesh_coeffs(act, s[i], k)).collect();
            for (i, pc) in me.iter().zip(pm) {
                out[*i] = Some(pc);
            }
            Ok(out.into_iter().map(|p| p.expect("every point")).collect())
        }
    }
}

fn eval_custom(f: &dyn ElementwiseFn, x: &[f64], out: &mut [f64], derivative: bool) -> Result<()> {
    let r = if derivative { f.eval_derivative(x, out) } else { f.eval(x, out) };
    r.map_err(AkError::Callback)?;
    if out.iter().any(|v| !v.is_finite()) {
        return Err(AkError::NonFinite {
            name: if derivative { "activation_derivative" } else { "activation" },
            msg: "the callable returned non-finite values at Gauss-Hermite nodes".into(),
        });
    }
    Ok(())
}

/// Smallest order whose relative tails are all <= TOL, else MAX_ORDER.
pub(crate) fn choose_order(pcs: &[PointCoeffs]) -> usize {
    (0..=MAX_ORDER)
        .find(|&n| pcs.iter().all(|p| p.tails[n] <= TOL))
        .unwrap_or(MAX_ORDER)
}

pub(crate) fn pack(pcs: &[PointCoeffs], order: usize) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let p = pcs.len();
    let mut c = vec![0.0; (MAX_ORDER + 1) * p];
    for (i, pc) in pcs.iter().enumerate() {
        for n in 0..=MAX_ORDER {
            c[n * p + i] = pc.c[n];
        }
    }
    let m0 = pcs.iter().map(|p| p.m0).collect();
    let rt = pcs.iter().map(|p| p.tails[order]).collect();
    (c, m0, rt)
}

impl HermiteTable {
    /// The table at the variances `s` (on the caller's Rayon pool; the same numbers for any
    /// thread count: each point is computed on its own).
    pub fn new(act: &Activation, s: &[f64], derivative: bool) -> Result<Self> {
        let pc = point_coeffs(act, s, false)?;
        let pd = if derivative { Some(point_coeffs(act, s, true)?) } else { None };
        let order = choose_order(&pc);
        let d_order = pd.as_deref().map_or(0, choose_order);
        let (c, m0, rt) = pack(&pc, order);
        let d = pd.map(|pd| pack(&pd, d_order));
        let p = s.len();
        Ok(HermiteTable {
            p,
            order,
            d_order,
            parity: parities(&c, p),
            d_parity: d.as_ref().map_or(3, |d| parities(&d.0, p)),
            c,
            m0,
            rt,
            d,
        })
    }
}

/// An entry that misses the error bound: its offset, and whether `E[phi phi]` and/or
/// `E[phi' phi']` miss it (only those are taken from the quadrature).
#[derive(Debug, Clone, Copy)]
pub struct Fallback {
    pub k: usize,
    pub e: bool,
    pub d: bool,
}

/// The order used for a tile whose largest |correlation| is `rmax`: `order`, lowered to the
/// smallest `n` with `rmax^{n+1} <= TOL` (the relative tails are at most 1, so this bounds the
/// error of every entry just as well).
pub(crate) fn lowered_order(rmax: f64, order: usize) -> usize {
    if rmax < 1.0 {
        order.min(((TOL.ln() / rmax.ln()).ceil() as usize).saturating_sub(1))
    } else {
        order
    }
}

/// The product of two points' relative tails: infinite when either point's coefficients are
/// unreliable (infinite tail), even against a zero tail (`0 x inf` would be NaN and pass).
#[inline]
pub(crate) fn tail_product(x: f64, y: f64) -> f64 {
    if x.is_infinite() || y.is_infinite() {
        f64::INFINITY
    } else {
        x * y
    }
}

/// Whether an off-diagonal entry of correlation `r` whose pair of relative tails at the series'
/// order `order` multiply to `t` misses the error bound, the series being summed to `n_used`.
#[inline]
pub(crate) fn misses_bound(t: f64, r: f64, n_used: usize, order: usize) -> bool {
    let by_rho = n_used < order && t.is_finite();
    !by_rho && t > TOL && !(t * r.abs().powi((order + 1) as i32) <= TOL)
}

/// Evaluates `E[phi phi]` (into `e`) and, if both tables carry phi', `E[phi' phi']` (into `dd`)
/// for row point `i` of `rows` and the column points `j0..j0 + e.len()` of `cols`, where
/// `a = s_i`, `b[k] = s_{j0+k}` and `c[k]` is the covariance. Entries whose error bound exceeds
/// the target are pushed onto `fallback` (their missing values are not meaningful).
///
/// Each series is summed to its tables' order (phi: `order`, phi': `d_order`), lowered per
/// tile by [`lowered_order`]; so `E[phi phi]` is the same with and without phi'.
///
/// Compiled for AVX-512F / AVX2 where present (the same IEEE operations: the same bits).
#[allow(clippy::too_many_arguments)]
pub fn entries(
    rows: &HermiteTable,
    i: usize,
    cols: &HermiteTable,
    j0: usize,
    a: f64,
    b: &[f64],
    c: &[f64],
    e: &mut [f64],
    dd: Option<&mut [f64]>,
    rho: &mut Vec<f64>,
    fallback: &mut Vec<Fallback>,
) {
    crate::kernels::simd::simd_dispatch!(entries_body(
        rows: &HermiteTable, i: usize, cols: &HermiteTable, j0: usize, a: f64, b: &[f64], c: &[f64],
        e: &mut [f64], dd: Option<&mut [f64]>, rho: &mut Vec<f64>, fallback: &mut Vec<Fallback>
    ))
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn entries_body(
    rows: &HermiteTable,
    i: usize,
    cols: &HermiteTable,
    j0: usize,
    a: f64,
    b: &[f64],
    c: &[f64],
    e: &mut [f64],
    mut dd: Option<&mut [f64]>,
    rho: &mut Vec<f64>,
    fallback: &mut Vec<Fallback>,
) {
    let m = c.len();
    rho.clear();
    rho.extend((0..m).map(|k| correlation(a, b[k], c[k])));
    // the exact diagonal (rho = 1, equal variances) is not summed: leave it out of the lowering
    let rmax = rho
        .iter()
        .zip(b)
        .fold(0.0f64, |acc, (r, bk)| if *r == 1.0 && *bk == a { acc } else { acc.max(r.abs()) });
    let order = rows.order.max(cols.order);
    let n_used = lowered_order(rmax, order);
    let rho2: Vec<f64> = rho.iter().map(|r| r * r).collect();
    horner(&rows.c, rows.p, i, &cols.c, cols.p, j0, n_used, rho, &rho2, rows.parity & cols.parity, e);
    let both_d = rows.d.as_ref().zip(cols.d.as_ref());
    let d_order = rows.d_order.max(cols.d_order);
    let d_used = lowered_order(rmax, d_order);
    if let (Some(dd), Some((rd, cd))) = (dd.as_deref_mut(), both_d) {
        let par = rows.d_parity & cols.d_parity;
        horner(&rd.0, rows.p, i, &cd.0, cols.p, j0, d_used, rho, &rho2, par, dd);
    }
    for k in 0..m {
        let r = rho[k];
        if r == 1.0 && b[k] == a {
            e[k] = rows.m0[i];
            if let (Some(dd), Some((rd, _))) = (dd.as_deref_mut(), both_d) {
                dd[k] = rd.1[i];
            }
            continue;
        }
        let fe = misses_bound(tail_product(rows.rt[i], cols.rt[j0 + k]), r, n_used, order);
        let fd = match (dd.is_some(), both_d) {
            (true, Some((rd, cd))) => misses_bound(tail_product(rd.2[i], cd.2[j0 + k]), r, d_used, d_order),
            _ => false,
        };
        if fe || fd {
            fallback.push(Fallback { k, e: fe, d: fd });
        }
    }
}

/// Which parities of `n` carry nonzero coefficients: bit 0 even, bit 1 odd.
pub(crate) fn parities(c: &[f64], p: usize) -> u8 {
    let mut bits = 0u8;
    for n in 0..=MAX_ORDER {
        if c[n * p..(n + 1) * p].iter().any(|v| *v != 0.0) {
            bits |= 1 << (n % 2);
        }
    }
    bits
}

/// Largest number of columns per [`entries`] call.
pub const COL_MAX: usize = 256;

pub mod collinear;
mod gauss_hermite;
pub mod grad;
mod horner;
pub mod mesh;

pub use collinear::{collinear, fallback_values, is_collinear, COLLINEAR};
pub use gauss_hermite::{gauss_hermite, HalfRule};
pub(crate) use gauss_hermite::rules;
pub(crate) use horner::horner;
#[cfg(test)]
use gauss_hermite::hermite_values;

#[cfg(test)]
mod tests;
