//! Sample moments: weighted Gram matrices of sample sets, `phi` applied entrywise, and the
//! moments `<phi phi^T>`, `<h h^T>` of the tilted density.
use super::sample::check_config;
use super::{TiltConfig, TiltedDensity, TiltedMoments};
use crate::control::Control;
use crate::error::{AkError, Result};
use crate::kernels::activation::Activation;
use crate::linalg::{check_symmetric, symmetrize};
use crate::threads::with_threads;
use crate::linalg::matmul;
use faer::{Accum, Mat, MatRef, Par};

/// `F^T diag(w) G` for S x P sample matrices (`w = None`: uniform `1/S`), symmetrised when F = G.
pub fn weighted_gram(
    f: MatRef<'_, f64>,
    g: MatRef<'_, f64>,
    w: Option<&[f64]>,
    par: Par,
) -> Mat<f64> {
    let s = f.nrows();
    let scaled = match w {
        Some(w) => Mat::from_fn(s, g.ncols(), |i, j| w[i] * g[(i, j)]),
        None => Mat::from_fn(s, g.ncols(), |i, j| g[(i, j)] / s as f64),
    };
    let mut out = Mat::<f64>::zeros(f.ncols(), g.ncols());
    matmul(
        out.as_mut(),
        Accum::Replace,
        f.transpose(),
        scaled.as_ref(),
        1.0,
        par,
    );
    if f.ncols() == g.ncols() && std::ptr::eq(f.as_ptr(), g.as_ptr()) {
        symmetrize(&mut out);
    }
    out
}

/// `phi` applied entrywise.
pub fn apply_phi(act: &Activation, h: MatRef<'_, f64>) -> Mat<f64> {
    Mat::from_fn(h.nrows(), h.ncols(), |i, j| act.phi(h[(i, j)]).unwrap())
}

/// Samples the tilted density with `cfg.n_chains` MALA chains and returns its moments; see the module docs.
pub fn sample_moments(
    act: &Activation,
    c: MatRef<'_, f64>,
    phat: MatRef<'_, f64>,
    cfg: &TiltConfig,
    n_threads: usize,
    ctl: &Control,
) -> Result<TiltedMoments> {
    check_config(cfg)?;
    check_symmetric("C", c)?;
    with_threads(n_threads, |par| -> Result<TiltedMoments> {
        let dens = TiltedDensity::new(act, c, phat, par)?;
        dens.check_normalizable(c, par)?;
        let smp = dens.sample(cfg, ctl)?;
        let f = apply_phi(act, smp.h.as_ref());
        let p = dens.dim();
        let phi2 = weighted_gram(f.as_ref(), f.as_ref(), None, par);
        let h2 = weighted_gram(smp.h.as_ref(), smp.h.as_ref(), None, par);
        let flat = |m: &Mat<f64>| -> Vec<f64> { (0..p * p).map(|k| m[(k / p, k % p)]).collect() };
        let (phi2, h2) = (flat(&phi2), flat(&h2));
        if phi2.iter().chain(&h2).any(|v| !v.is_finite()) {
            return Err(AkError::NonFinite {
                name: "hat_phi",
                msg: "the sampled moments are not finite".into(),
            });
        }
        Ok(TiltedMoments {
            phi2,
            h2,
            acceptance: smp.acceptance,
            step_size: smp.step_size,
            ess: smp.ess,
        })
    })
}
