use super::*;
use crate::rng::Rng;
use crate::control::no_control;

fn spd(p: usize, seed: u64) -> Mat<f64> {
    let mut rng = Rng::new(seed, 0);
    let a = Mat::from_fn(p, p + 2, |_, _| rng.normal());
    let mut c = Mat::<f64>::zeros(p, p);
    matmul(
        c.as_mut(),
        Accum::Replace,
        a.as_ref(),
        a.transpose(),
        1.0 / (p + 2) as f64,
        Par::Seq,
    );
    c
}

#[test]
fn linear_tilt_gives_the_gaussian_moments() {
    let p = 4;
    let c = spd(p, 1);
    // hatPhi = -0.3 C^{-1}-ish negative tilt stays normalizable: exact <hh^T> = (C^-1 + hatPhi)^-1
    let phat = Mat::from_fn(p, p, |i, j| if i == j { -0.4 } else { 0.05 });
    let cfg = TiltConfig {
        n_chains: 4,
        n_samples: 20000,
        burn_in: 2000,
        thin: 2,
        step_size: 0.5,
        seed: 3,
    };
    let m = sample_moments(
        &Activation::Linear,
        c.as_ref(),
        phat.as_ref(),
        &cfg,
        2,
        no_control(),
    )
    .unwrap();
    let mut ci = Mat::<f64>::identity(p, p);
    let mut l = Mat::<f64>::zeros(p, p);
    cholesky_with_jitter("C", c.as_ref(), 0.0, l.as_mut(), Par::Seq).unwrap();
    crate::linalg::cholesky_solve_in_place(l.as_ref(), ci.as_mut(), Par::Seq).unwrap();
    let prec = Mat::from_fn(p, p, |i, j| ci[(i, j)] + phat[(i, j)]);
    let mut cov = Mat::<f64>::identity(p, p);
    cholesky_with_jitter("M", prec.as_ref(), 0.0, l.as_mut(), Par::Seq).unwrap();
    crate::linalg::cholesky_solve_in_place(l.as_ref(), cov.as_mut(), Par::Seq).unwrap();
    for i in 0..p {
        for j in 0..p {
            let se = 5.0 * (cov[(i, i)] * cov[(j, j)]).sqrt() / (m.ess / 4.0).sqrt();
            assert!(
                (m.h2[i * p + j] - cov[(i, j)]).abs() < se,
                "({i},{j}) {} vs {}",
                m.h2[i * p + j],
                cov[(i, j)]
            );
        }
    }
    assert!(
        m.acceptance.iter().all(|a| (0.4..0.8).contains(a)),
        "{:?}",
        m.acceptance
    );
}

#[test]
fn non_normalizable_tilts_are_refused() {
    let c = spd(3, 2);
    let phat = Mat::from_fn(3, 3, |i, j| if i == j { -50.0 } else { 0.0 });
    for act in [Activation::Linear, Activation::Relu] {
        let e = check_normalizable(&act, c.as_ref(), phat.as_ref(), Par::Seq).unwrap_err();
        assert!(e.to_string().contains("not normalizable"), "{e}");
    }
    assert!(check_normalizable(&Activation::Tanh, c.as_ref(), phat.as_ref(), Par::Seq).is_ok());
    // relu tolerates a tilt that only penalises negative directions' images (phi >= 0): -hatPhi on
    // the off-diagonal with positive diagonal is fine
    let ok = Mat::from_fn(3, 3, |i, j| if i == j { 1.0 } else { -0.2 });
    assert!(check_normalizable(&Activation::Relu, c.as_ref(), ok.as_ref(), Par::Seq).is_ok());
}

#[test]
fn relu_witness_with_mixed_signs() {
    // C_11 = 1, rho = -1/2: relu tilt a h_1+^2 / 2 is normalizable iff a < 1 / C_11 = 1. The
    // witness h = (1, -1/2) (h_2 following h_1) costs h^T C^-1 h = 1; every h >= 0 costs at
    // least (C^-1)_11 = 4/3, so a = 1.2 was missed by a search over h >= 0
    let c = Mat::from_fn(2, 2, |i, j| if i == j { 1.0 } else { -0.5 });
    for (a, normalizable) in [(1.2, false), (0.9, true)] {
        let phat = Mat::from_fn(2, 2, |i, j| if i + j == 0 { -a } else { 0.0 });
        let r = check_normalizable(&Activation::Relu, c.as_ref(), phat.as_ref(), Par::Seq);
        assert_eq!(r.is_ok(), normalizable, "a = {a}: {r:?}");
    }
}

#[test]
fn thread_count_does_not_change_moments() {
    let c = spd(5, 4);
    let phat = Mat::from_fn(5, 5, |i, j| if i == j { -0.5 } else { 0.1 });
    let cfg = TiltConfig {
        n_chains: 3,
        n_samples: 500,
        burn_in: 100,
        thin: 1,
        step_size: 0.3,
        seed: 9,
    };
    let a = sample_moments(
        &Activation::Tanh,
        c.as_ref(),
        phat.as_ref(),
        &cfg,
        1,
        no_control(),
    )
    .unwrap();
    let b = sample_moments(
        &Activation::Tanh,
        c.as_ref(),
        phat.as_ref(),
        &cfg,
        2,
        no_control(),
    )
    .unwrap();
    assert_eq!(a.phi2, b.phi2);
    assert_eq!(a.h2, b.h2);
}

/// `sup_{|z| = 1} (a.relu(F z))^2` by brute force over a grid of unit directions (P = 2: a
/// circle, P = 3: a Fibonacci sphere), `C = F F^T` by Cholesky.
fn brute_sup(c: &Mat<f64>, a: &[f64]) -> f64 {
    let p = c.nrows();
    let mut l = Mat::<f64>::zeros(p, p);
    crate::linalg::cholesky_with_jitter("C", c.as_ref(), 0.0, l.as_mut(), Par::Seq).unwrap();
    let n = 400_000usize;
    let mut best = 0.0f64;
    for k in 0..n {
        let z: Vec<f64> = if p == 2 {
            let t = 2.0 * std::f64::consts::PI * k as f64 / n as f64;
            vec![t.cos(), t.sin()]
        } else {
            let zc = 1.0 - 2.0 * (k as f64 + 0.5) / n as f64;
            let rr = (1.0 - zc * zc).sqrt();
            let t = std::f64::consts::PI * (3.0 - 5f64.sqrt()) * k as f64;
            vec![rr * t.cos(), rr * t.sin(), zc]
        };
        let s: f64 = (0..p)
            .map(|i| a[i] * (0..p).map(|j| l[(i, j)] * z[j]).sum::<f64>().max(0.0))
            .sum();
        best = best.max(s * s);
    }
    best
}

/// A P = 2-3 kernel (negatively correlated for even seeds) and a mixed-sign readout `a`.
fn mixed_sign_case(p: usize, seed: u64) -> (Mat<f64>, Vec<f64>) {
    let mut c = spd(p, seed);
    if seed % 2 == 0 {
        c[(0, 1)] = -0.5 * (c[(0, 0)] * c[(1, 1)]).sqrt();
        c[(1, 0)] = c[(0, 1)];
    }
    let mut rng = Rng::new(seed, 7);
    let mut a: Vec<f64> = (0..p).map(|_| rng.normal()).collect();
    a[0] = a[0].abs();
    a[1] = -a[1].abs();
    (c, a)
}

#[test]
fn rank_one_relu_tilt_is_refused_exactly_beyond_rho_one() {
    // hatPhi = -gamma^2 a a^T, gamma^2 = rho / sup: refused at rho = 1.1 (the brute supremum is
    // a lower bound, so the true rho >= 1.1), accepted at 0.9 (no witness can exist below 1).
    // Mixed-sign a and a negatively correlated C: the linear direction h = C a is no witness;
    // seed 1 (P = 2, K_12 > 0) has its supremum on the face h_2 = 0 (homogeneous.rs docs).
    for (p, seed) in [(2usize, 1u64), (2, 2), (3, 3), (3, 4), (3, 5)] {
        let (c, a) = mixed_sign_case(p, seed);
        let sup = brute_sup(&c, &a);
        let exact = rank_one_ratio(c.as_ref(), &a, 1.0);
        assert!((exact - sup).abs() <= 1e-4 * sup && exact >= sup * (1.0 - 1e-9), "p {p} seed {seed}: {exact} vs {sup}");
        for (rho, normalizable) in [(1.1, false), (0.9, true)] {
            let g2 = rho / sup;
            let phat = Mat::from_fn(p, p, |i, j| -g2 * a[i] * a[j]);
            let r = check_normalizable(&Activation::Relu, c.as_ref(), phat.as_ref(), Par::Seq);
            assert_eq!(r.is_ok(), normalizable, "p {p} seed {seed} rho {rho}: {r:?}");
        }
    }
}

#[test]
fn ray_bound_is_between_the_pattern_witness_and_the_supremum() {
    // P = 2, 3 (brute force over the circle / sphere = the true rho up to the grid) and a
    // rank-one K0 = k k^T (closed form gamma^2 max((a.relu(k))^2, (a.relu(-k))^2)): the bound is
    // at least the pattern witness, never above the true value, and reaches it.
    for (p, seed) in [(2usize, 1u64), (2, 2), (3, 3), (3, 4), (3, 5)] {
        let (c, a) = mixed_sign_case(p, seed);
        let sup = brute_sup(&c, &a);
        let fac = crate::linalg::CovFactor::psd("C", c.as_ref(), Par::Seq).unwrap();
        let got = RayBound::new(fac.f()).ratio(c.as_ref(), &a, 1.5);
        let pattern = rank_one_ratio(c.as_ref(), &a, 1.5);
        assert!(got >= pattern && (got - 2.25 * sup).abs() <= 1e-4 * 2.25 * sup, "p {p} seed {seed}: {got} vs {sup}");
    }
    let k = [0.7, -1.2, 0.4, 0.9];
    let c = Mat::from_fn(4, 4, |i, j| k[i] * k[j]);
    let fac = crate::linalg::CovFactor::psd("C", c.as_ref(), Par::Seq).unwrap();
    for a in [[1.0, 0.5, -2.0, 0.3], [-0.2, 0.8, 0.1, -1.0]] {
        let s = |sg: f64| (0..4).map(|i| a[i] * (sg * k[i]).max(0.0)).sum::<f64>().powi(2);
        let want = 0.25 * s(1.0).max(s(-1.0));
        let got = RayBound::new(fac.f()).ratio(c.as_ref(), &a, 0.5);
        assert!((got - want).abs() <= 1e-12 * want, "{got} vs {want}");
    }
}

#[test]
fn ray_bound_beats_the_pattern_witness_and_keeps_its_directions() {
    // P = 60 points in 59 dimensions (a singular centred kernel), mixed-sign a: the ascent
    // finds more than the pattern witness; along a sequence of nearby a the kept directions
    // keep every earlier value (rho(t a) = t^2 rho(a)), and the sequence is deterministic.
    let (p, d) = (60usize, 59usize);
    let mut rng = Rng::new(11, 0);
    let mut x = Mat::from_fn(p, d, |_, _| rng.normal().max(0.0));
    for j in 0..d {
        let m = (0..p).map(|i| x[(i, j)]).sum::<f64>() / p as f64;
        (0..p).for_each(|i| x[(i, j)] -= m);
    }
    let mut c = Mat::<f64>::zeros(p, p);
    matmul(c.as_mut(), Accum::Replace, x.as_ref(), x.transpose(), 1.0 / d as f64, Par::Seq);
    let fac = crate::linalg::CovFactor::psd("C", c.as_ref(), Par::Seq).unwrap();
    let a: Vec<f64> = (0..p).map(|_| rng.normal()).collect();
    let run = || {
        let mut b = RayBound::new(fac.f());
        [1.0, 1.01, 0.99, 1.02, 1.0].iter().map(|t| {
            let at: Vec<f64> = a.iter().map(|v| t * v).collect();
            b.ratio(c.as_ref(), &at, 1.0) / (t * t)
        }).collect::<Vec<f64>>()
    };
    let r1 = run();
    assert_eq!(r1, run());
    let pattern = rank_one_ratio(c.as_ref(), &a, 1.0);
    assert!(r1[0] > 1.05 * pattern, "ascent {} vs pattern {pattern}", r1[0]);
    for w in r1.windows(2) {
        assert!(w[1] >= w[0] * (1.0 - 1e-12), "{r1:?}");
    }
}
