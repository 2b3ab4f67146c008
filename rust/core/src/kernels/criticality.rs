//! Criticality of the NNGP layer map (Poole et al. 2016, Schoenholz et al. 2017; Helias-Ringel
//! digest §2), with `g = sigma_w^2`, `b = sigma_b^2`:
//!
//! * the length map `q -> g E_{h ~ N(0, q)}[phi(h)^2] + b` and its attracting fixed point `q*`
//!   (the first crossing from above of the diagonal scanning up from 0; 0 when the origin
//!   attracts, +inf when the map has no finite fixed point, e.g. relu with `g >= 2`);
//! * `chi_1 = g E_{N(0, q*)}[phi'(h)^2]`, the slope of the correlation map at correlation 1
//!   (ordered phase `chi_1 < 1`, chaotic `chi_1 > 1`, the edge of chaos `chi_1 = 1`), and the
//!   correlation depth scale `xi = -1 / ln chi_1`;
//! * `chi_q`, the slope of the length map at `q*` (its stability);
//! * the critical `sigma_w` at the net's `sigma_b`: the root of `chi_1(sigma_w) = 1` (chi_1 grows
//!   with sigma_w for the usual activations; +inf counts as above 1).
//!
//! The expectations are the library's own (closed forms for linear/relu/erf; the 1-D rule of
//! the Hermite expansion where the lazy kernels use it (the mesh rule of the built-in
//! activations, Gauss-Hermite for callables); the polar
//! quadrature at perfect correlation with `method="quadrature"`), so these are the slopes of the
//! very maps the lazy kernels iterate.
use crate::error::{invalid, Result};
use crate::kernels::hermite::HermiteTable;
use crate::kernels::net::Mlp;
use crate::kernels::quadrature::PolarRule;

/// Criticality of one architecture.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Criticality {
    pub q_star: f64,
    pub chi_1: f64,
    pub chi_q: f64,
}

/// `(E[phi(h)^2], E[phi'(h)^2])` for `h ~ N(0, q)`.
fn moments(net: &Mlp, rule: &PolarRule, q: f64) -> Result<(f64, f64)> {
    let q = q.max(1e-300); // at q = 0 the relu closed form divides 0 by 0
    if net.lazy_uses_hermite() {
        // the diagonal of the Hermite lazy kernels: their 1-D rule
        let t = HermiteTable::new(&net.activation, &[q], true)?;
        let d = t.d.as_ref().map_or(f64::NAN, |d| d.1[0]);
        return Ok((t.m0[0], d));
    }
    let (mut e, mut d) = ([0.0], [0.0]);
    net.expectation(rule).batch(&[q], &[q], &[q], &mut e, Some(&mut d))?;
    Ok((e[0], d[0]))
}

fn length_map(net: &Mlp, rule: &PolarRule, g: f64, b: f64, q: f64) -> Result<f64> {
    Ok(g * moments(net, rule, q)?.0 + b)
}

/// The attracting fixed point of the length map at `g = sigma_w^2` (module docs).
fn fixed_point(net: &Mlp, rule: &PolarRule, g: f64, b: f64) -> Result<f64> {
    let f = |q: f64| -> Result<f64> { Ok(length_map(net, rule, g, b, q)? - q) };
    let mut lo = 1e-12;
    let f_lo = f(lo)?;
    if !(f_lo > 0.0) {
        return Ok(if b == 0.0 { 0.0 } else { lo });
    }
    let mut hi = lo;
    loop {
        hi *= 2.0;
        if hi > 1e15 {
            return Ok(f64::INFINITY);
        }
        let v = f(hi)?;
        if !v.is_finite() {
            return Err(invalid("net", format!("the length map is not finite at q = {hi:.3e}")));
        }
        if v < 0.0 {
            break;
        }
        lo = hi;
    }
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if f(mid)? > 0.0 {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi - lo <= 4.0 * f64::EPSILON * hi {
            break;
        }
    }
    Ok(0.5 * (lo + hi))
}

fn check(net: &Mlp) -> Result<PolarRule> {
    net.validate()?;
    Ok(PolarRule::new(net.quadrature_order))
}

/// `q*`, `chi_1` and `chi_q` of `net` (its `sigma_w`, `sigma_b`, activation and method).
pub fn criticality(net: &Mlp) -> Result<Criticality> {
    let rule = check(net)?;
    if !(net.sigma_w > 0.0) {
        return Err(invalid("sigma_w", format!("must be > 0, got {}", net.sigma_w)));
    }
    at(net, &rule, net.sigma_w * net.sigma_w)
}

fn at(net: &Mlp, rule: &PolarRule, g: f64) -> Result<Criticality> {
    let b = net.sigma_b * net.sigma_b;
    let q = fixed_point(net, rule, g, b)?;
    if q.is_infinite() {
        // the slope at q -> inf: the ratio g E[phi'^2] of a map growing linearly (relu, linear)
        let big = 1e15;
        let chi_1 = g * moments(net, rule, big)?.1;
        return Ok(Criticality { q_star: q, chi_1, chi_q: chi_1 });
    }
    let chi_1 = g * moments(net, rule, q)?.1;
    let h = 1e-6 * q.max(1e-6);
    let chi_q = (length_map(net, rule, g, b, q + h)? - length_map(net, rule, g, b, (q - h).max(0.0))?)
        / (q + h - (q - h).max(0.0));
    Ok(Criticality { q_star: q, chi_1, chi_q })
}

/// The edge of chaos at the net's `sigma_b`: `(sigma_w, q*)` with `chi_1 = 1`.
pub fn critical_sigma_w(net: &Mlp) -> Result<(f64, f64)> {
    let rule = check(net)?;
    let above = |g: f64| -> Result<bool> {
        let c = at(net, &rule, g)?;
        Ok(c.q_star.is_infinite() || c.chi_1 >= 1.0)
    };
    let (mut lo, mut hi) = (1e-6, 1.0);
    if above(lo)? {
        return Err(invalid("net", "chi_1 >= 1 already at sigma_w = 1e-3: no edge of chaos"));
    }
    while !above(hi)? {
        lo = hi;
        hi *= 2.0;
        if hi > 1e8 {
            return Err(invalid("net", "chi_1 < 1 for every sigma_w up to 1e4: no edge of chaos"));
        }
    }
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if above(mid)? {
            hi = mid;
        } else {
            lo = mid;
        }
        if hi - lo <= 4.0 * f64::EPSILON * hi {
            break;
        }
    }
    let g = 0.5 * (lo + hi);
    // q* at the edge: +inf where the length map stops having a fixed point there (relu, linear)
    let q_hi = at(net, &rule, hi)?.q_star;
    Ok((g.sqrt(), if q_hi.is_infinite() { q_hi } else { at(net, &rule, lo)?.q_star }))
}
