//! The fixed point's two predictors on test inputs: the readout form
//! `Phi^L(x*, X)(Phi^L + lambda I)^{-1} Y` (any activation) and the NTK form
//! `K(x*, X)(K + (L+1) lambda I)^{-1} y` (positively homogeneous nets), from the stored particles
//! and dual coefficients (no factorization at predict time).
use super::{homogeneous, particle_net, InputMap};
use crate::error::{invalid, shape, Result};
use crate::finite::empirical_kernels::cross_kernels;
use crate::kernels::net::Mlp;
use faer::{Accum, Mat, MatRef, Par};

/// Which predictor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Form {
    Readout,
    Ntk,
}

impl Form {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "readout" => Ok(Form::Readout),
            "ntk" => Ok(Form::Ntk),
            _ => Err(invalid("form", format!("expected 'readout' or 'ntk', got {s:?}"))),
        }
    }
}

/// Predictions (Q x C) at the rows of `x_test` from a fixed point's particles `theta` (the
/// particle network of width `m`, `gamma`) and the dual coefficients of `form` (P x C).
#[allow(clippy::too_many_arguments)]
pub fn predict(
    net: &Mlp,
    map: &InputMap,
    x_train: MatRef<'_, f64>,
    x_test: MatRef<'_, f64>,
    theta: &[f64],
    gamma: f64,
    m: usize,
    dual: MatRef<'_, f64>,
    form: Form,
    par: Par,
) -> Result<Mat<f64>> {
    if x_test.ncols() != x_train.ncols() {
        return Err(shape("X", format!("has {} features, the model was fitted with {}", x_test.ncols(), x_train.ncols())));
    }
    crate::validate::finite_mat("X", x_test)?;
    if !(gamma.is_finite() && gamma > 0.0) {
        return Err(invalid("gamma", format!("must be finite and > 0, got {gamma}")));
    }
    if m == 0 {
        return Err(invalid("n_particles", "must be >= 1"));
    }
    if form == Form::Ntk && !homogeneous(net) {
        return Err(invalid(
            "form",
            "the NTK form needs a positively homogeneous network (relu or linear, sigma_b = 0); use form='readout'",
        ));
    }
    let (xr, xt) = (map.apply(x_train, par), map.apply(x_test, par));
    let pnet = particle_net(net, xr.ncols(), dual.ncols(), gamma, m);
    if theta.len() != pnet.layout().len || dual.nrows() != x_train.nrows() {
        return Err(shape("theta", "the fitted state does not match the network and data"));
    }
    let q = x_test.nrows();
    let mut out = Mat::<f64>::zeros(q, dual.ncols());
    match form {
        Form::Readout => {
            let (ft, fr) = (pnet.forward(theta, xt.as_ref(), par), pnet.forward(theta, xr.as_ref(), par));
            let l = net.depth - 1;
            let mut k = Mat::<f64>::zeros(q, x_train.nrows());
            crate::linalg::matmul(k.as_mut(), Accum::Replace, ft.a[l].as_ref(), fr.a[l].transpose(), 1.0 / m as f64, par);
            crate::linalg::matmul(out.as_mut(), Accum::Replace, k.as_ref(), dual, 1.0, par);
        }
        Form::Ntk => {
            for c in 0..dual.ncols() {
                let k = cross_kernels(&pnet, theta, xt.as_ref(), xr.as_ref(), c, par).ntk;
                crate::linalg::matmul(out.as_mut().subcols_mut(c, 1), Accum::Replace, k.as_ref(), dual.subcols(c, 1), 1.0, par);
            }
        }
    }
    Ok(out)
}
