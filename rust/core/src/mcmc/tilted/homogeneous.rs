//! Normalizability of relu-like tilts by sign patterns (relu is positively homogeneous; gelu and
//! softplus grow like it), shared by the sampled and the concave mean-field solvers.
//!
//! Rank-one tilt `hatPhi = -gamma^2 a a^T` (the readout of a one-hidden-layer network): along a
//! ray `h = t h_0` the tilted exponent is
//! `-t^2 (h_0^T K^{0+} h_0 - gamma^2 (a.relu(h_0))^2) / 2`: the tilt `N(h; 0, K^0)
//! exp(gamma^2 (a.relu(h))^2 / 2)` is normalizable iff
//! `rho(a) = gamma^2 sup_h (a.relu(h))^2 / h^T K^{0+} h < 1` (h on the support of `K^0`; at
//! `rho = 1` the boundary). Since `(a.relu(h))^2 = max(b.relu(h))^2` over `b = +-a` where it is
//! positive, `rho = gamma^2 max_{b = +-a} sup_h (b.relu(h))_+^2 / h^T K^{0+} h`. With
//! `h = K^0 v`: `h^T K^{0+} h = v^T K^0 v`. For a fixed sign pattern `S = {h > 0}`,
//! `b.relu(h) = b_S.h <= sqrt(b_S^T K^0 b_S) sqrt(v^T K^0 v)`, with equality at `v = b_S`; so
//! the supremum is a maximum over patterns `S` consistent with their own `h = K^0 b_S` — the
//! stationarity condition of the ratio (`v ∝ b ⊙ 1[K^0 v > 0]`). [`ratio`] iterates that
//! fixed point from several starts (`b`, `b_+`, the row of `K^0` of the largest `|b_i|`) and
//! keeps the best ratio it *evaluates*: a lower bound on `rho`, so `ratio >= 1` proves
//! non-normalizability. That iteration only finds suprema inside a pattern's cone; the supremum
//! can also lie on a face `h_Z = 0` (e.g. P = 2, `a = (+, -)`, `K^0_12 > 0`: `h_2 = 0`, ratio
//! `a_1^2 (K_11 - K_12^2 / K_22)`, which no `h = K^0 b_S` reaches). So a second, active-set
//! iteration from the same starts maximises `b_S.h` over `h^T K^{0+} h <= 1` with
//! `h_j <= 0` on a set Z of coordinates with `b_j < 0`: `h = K^0 (b_S - E_Z lambda)`,
//! `lambda = (K^0_ZZ)^{-1} (K^0 b_S)_Z` (so `h_Z = 0`); Z keeps the j with `lambda_j > 0` and takes
//! the j with `b_j < 0`, `h_j > 0`; `S = {b_i > 0, h_i > 0}`. Still a lower bound (the problem is
//! a copositivity question), checked against brute force at P = 2, 3.
//!
//! Both iterations stop at local maxima, and at P ~ 100 the pattern reached from their starts can
//! be far below the supremum (MNIST P = 100 kernel: 0.90 against >= 1.2). [`ray_ascent`] adds
//! witnesses by gradient ascent of `c(u) = (b.relu(F u))^2` on the unit sphere of whitened
//! coordinates (`K^0 = F F^T`) from random Gaussian starts: the tangent gradient of
//! `s = b.relu(F u)` is `g = F^T (b ⊙ 1[F u > 0]) - s u`, the step `u <- (u + alpha sign(s)
//! g / |g|) / |...|`, `alpha` x1.5 on success and x0.3 on failure.
//! [`RayBound`] takes the better of both for a sequence of nearby `a` (the trial points of one
//! concave solve), warm-starting the ascent from the directions it found earlier.
//!
//! General tilt: [`pattern_witness`] runs the same iteration along a negative eigenvector `b` of
//! `hatPhi`, and [`super::check_normalizable`] evaluates the exact exponent
//! `h^T C^+ h + relu(h)^T hatPhi relu(h)` at the direction it returns.
use faer::MatRef;

fn value(k0: MatRef<'_, f64>, b: &[f64], v: &[f64]) -> (f64, Vec<f64>) {
    let p = b.len();
    let h: Vec<f64> = (0..p).map(|i| (0..p).map(|j| k0[(i, j)] * v[j]).sum()).collect();
    let q: f64 = v.iter().zip(&h).map(|(v, h)| v * h).sum();
    let n: f64 = (0..p).filter(|&i| h[i] > 0.0).map(|i| b[i] * h[i]).sum();
    // q below its rounding error (v almost in the null space of a singular K^0) is no witness
    let kmax = (0..p).fold(0.0f64, |m, i| m.max(k0[(i, i)]));
    let vv: f64 = v.iter().map(|x| x * x).sum();
    let r = if q > 1e-9 * kmax * vv && n > 0.0 { n * n / q } else { 0.0 };
    (r, h)
}

/// The best evaluated `(b.relu(h))_+^2 / h^T K^{0+} h` and its direction `h = K^0 v` (on the
/// support of `K^0`), over the pattern iterations from the three starts of the module docs.
pub fn pattern_witness(k0: MatRef<'_, f64>, b: &[f64]) -> (f64, Vec<f64>) {
    let p = b.len();
    let imax = (0..p).max_by(|&i, &j| b[i].abs().total_cmp(&b[j].abs())).unwrap_or(0);
    let starts: Vec<Vec<f64>> = vec![
        b.to_vec(),
        b.iter().map(|v| v.max(0.0)).collect(),
        (0..p).map(|j| if j == imax { b[j].signum() } else { 0.0 }).collect(),
    ];
    let mut best = 0.0f64;
    let mut best_h = vec![0.0; p];
    for mut v in starts {
        let mut last_pattern: Vec<bool> = Vec::new();
        for _ in 0..60 {
            let (r, h) = value(k0, b, &v);
            let pattern: Vec<bool> = h.iter().map(|x| *x > 0.0).collect();
            if r > best {
                best = r;
                best_h = h;
            }
            if pattern == last_pattern {
                break;
            }
            v = (0..p).map(|i| if pattern[i] { b[i] } else { 0.0 }).collect();
            last_pattern = pattern;
        }
    }
    for v in [b.to_vec(), b.iter().map(|v| v.max(0.0)).collect::<Vec<f64>>(), (0..p).map(|j| if j == imax { b[j].signum() } else { 0.0 }).collect()] {
        face_search(k0, b, &v, &mut best, &mut best_h);
    }
    (best, best_h)
}

/// The active-set iteration of the module docs from `v0`, updating the best evaluated ratio.
fn face_search(k0: MatRef<'_, f64>, b: &[f64], v0: &[f64], best: &mut f64, best_h: &mut Vec<f64>) {
    let p = b.len();
    let (_, mut h) = value(k0, b, v0);
    let mut zset: Vec<usize> = Vec::new();
    let mut sset: Vec<bool> = (0..p).map(|i| b[i] > 0.0 && h[i] > 0.0).collect();
    for _ in 0..60 {
        let c: Vec<f64> = (0..p).map(|i| if sset[i] { b[i] } else { 0.0 }).collect();
        let kc: Vec<f64> = (0..p).map(|i| (0..p).map(|j| k0[(i, j)] * c[j]).sum()).collect();
        let nz = zset.len();
        let kzz: Vec<f64> = (0..nz * nz).map(|t| k0[(zset[t / nz], zset[t % nz])]).collect();
        let rhs: Vec<f64> = zset.iter().map(|&j| kc[j]).collect();
        let Some(lambda) = spd_solve(kzz, rhs, nz) else { return };
        let mut v = c.clone();
        for (t, &j) in zset.iter().enumerate() {
            v[j] -= lambda[t];
        }
        let (r, hn) = value(k0, b, &v);
        h = hn;
        if r > *best {
            *best = r;
            *best_h = h.clone();
        }
        let mut znew: Vec<usize> = zset.iter().enumerate().filter(|(t, _)| lambda[*t] > 0.0).map(|(_, &j)| j).collect();
        znew.extend((0..p).filter(|j| b[*j] < 0.0 && h[*j] > 0.0 && !zset.contains(j)));
        znew.sort_unstable();
        let snew: Vec<bool> = (0..p).map(|i| b[i] > 0.0 && h[i] > 0.0).collect();
        if znew == zset && snew == sset {
            return;
        }
        zset = znew;
        sset = snew;
    }
}

/// `A x = rhs` for a small symmetric positive definite `A` (n x n row-major) by Cholesky; `None`
/// when `A` is not numerically positive definite.
fn spd_solve(mut a: Vec<f64>, mut x: Vec<f64>, n: usize) -> Option<Vec<f64>> {
    let scale = (0..n).fold(0.0f64, |m, i| m.max(a[i * n + i]));
    for j in 0..n {
        let mut d = a[j * n + j];
        for k in 0..j {
            d -= a[j * n + k] * a[j * n + k];
        }
        if !(d > 1e-9 * scale) {
            return None;
        }
        let d = d.sqrt();
        a[j * n + j] = d;
        for i in j + 1..n {
            let mut s = a[i * n + j];
            for k in 0..j {
                s -= a[i * n + k] * a[j * n + k];
            }
            a[i * n + j] = s / d;
        }
    }
    for i in 0..n {
        let s: f64 = (0..i).map(|k| a[i * n + k] * x[k]).sum();
        x[i] = (x[i] - s) / a[i * n + i];
    }
    for i in (0..n).rev() {
        let s: f64 = (i + 1..n).map(|k| a[k * n + i] * x[k]).sum();
        x[i] = (x[i] - s) / a[i * n + i];
    }
    Some(x)
}

/// The best `(b.relu(F u))^2` (`|u| = 1`) found by [`ray_ascent`]'s gradient ascent from
/// `n_starts` Gaussian starts (RNG streams `(0x5EED, k)`, at most 100 accepted steps each), and
/// its direction `h = F u`.
pub fn ray_ascent(f: MatRef<'_, f64>, b: &[f64], n_starts: usize) -> (f64, Vec<f64>) {
    let rb = RayBound::new(f);
    let (mut best, mut best_h) = (0.0f64, vec![0.0; f.nrows()]);
    for start in 0..n_starts {
        let mut u = vec![0.0; f.ncols()];
        crate::rng::Rng::new(0x5EED, start as u64).fill_normal(&mut u);
        let (v, _, h) = rb.ascend(b, &u);
        if v > best {
            (best, best_h) = (v, h);
        }
    }
    (best, best_h)
}

/// Directions kept by [`RayBound`].
const KEEP: usize = 8;
/// Random starts of [`RayBound`]'s first call.
const FIRST_STARTS: usize = 8;

/// The best available lower bound on `rho(a)` for a sequence of nearby `a` (the trial points of
/// one solve): `max(rank_one_ratio, ray ascent)`, where the ascent is [`ray_ascent`]'s step on the
/// whitened sphere, run on the first call from `FIRST_STARTS` Gaussian starts (streams
/// `(0x5EED, k)`) and the linear directions `u ∝ F^T b_+`, `b = +-a`, and on later calls from
/// the two best of the (at most `KEEP`) directions found so far plus one fresh Gaussian start
/// (stream `(0x5EED, 2^32 + call)`), and after [`RayBound::explore`] from the linear directions
/// and `FIRST_STARTS` fresh Gaussian starts too. Every value is attained at an evaluated direction, so the
/// bound is rigorous (`>= 1` proves non-normalizability); it is at least the pattern witness and
/// at least the value of every kept direction. Deterministic: it depends only on the sequence of
/// `a` it was called with.
#[derive(Debug, Clone)]
pub struct RayBound {
    /// `F` (P x r, `K^0 = F F^T`).
    f: faer::Mat<f64>,
    /// Kept whitened unit directions and their `h = F u`.
    dirs: Vec<(Vec<f64>, Vec<f64>)>,
    calls: u64,
    /// Explorations so far ([`RayBound::explore`]).
    explored: u64,
    explore_next: bool,
}

impl RayBound {
    pub fn new(f: MatRef<'_, f64>) -> Self {
        RayBound { f: f.to_owned(), dirs: Vec::new(), calls: 0, explored: 0, explore_next: false }
    }

    /// The next call also ascends from `FIRST_STARTS` fresh Gaussian starts (streams
    /// `(0x5EED, 2^33 + FIRST_STARTS * k + j)` at the k-th exploration): the warm starts follow
    /// the kept directions only, and a distant better one can appear as `a` moves (the concave
    /// solver explores once per stage).
    pub fn explore(&mut self) {
        self.explore_next = true;
    }

    fn h(&self, u: &[f64]) -> Vec<f64> {
        let mut h = vec![0.0; self.f.nrows()];
        for (k, uk) in u.iter().enumerate() {
            for (hi, fi) in h.iter_mut().zip(self.f.col(k).iter()) {
                *hi += uk * fi;
            }
        }
        h
    }

    /// Ascent of `(b.relu(F u))^2` on the unit sphere from `u` (normalised here): the best
    /// value, its direction and `h = F u`.
    fn ascend(&self, b: &[f64], u: &[f64]) -> (f64, Vec<f64>, Vec<f64>) {
        let nu = u.iter().map(|x| x * x).sum::<f64>().sqrt();
        if !(nu > 0.0 && nu.is_finite()) {
            return (0.0, u.to_vec(), vec![0.0; b.len()]);
        }
        let mut u: Vec<f64> = u.iter().map(|x| x / nu).collect();
        let sval = |h: &[f64]| -> f64 { h.iter().zip(b).filter(|(h, _)| **h > 0.0).map(|(h, b)| b * h).sum() };
        let mut h = self.h(&u);
        let mut s = sval(&h);
        let mut alpha = 0.5;
        for _ in 0..100 {
            let w: Vec<f64> = h.iter().zip(b).map(|(h, b)| if *h > 0.0 { *b } else { 0.0 }).collect();
            let mut g: Vec<f64> = (0..u.len()).map(|k| self.f.col(k).iter().zip(&w).map(|(f, w)| f * w).sum::<f64>()).collect();
            let gu: f64 = g.iter().zip(&u).map(|(x, y)| x * y).sum();
            g.iter_mut().zip(&u).for_each(|(x, y)| *x -= gu * y);
            let gn = g.iter().map(|x| x * x).sum::<f64>().sqrt();
            if !(gn > 1e-12 * (1.0 + s.abs())) {
                break;
            }
            let sign = if s < 0.0 { -1.0 } else { 1.0 };
            let mut moved = false;
            while alpha > 1e-10 {
                let mut un: Vec<f64> = u.iter().zip(&g).map(|(x, y)| x + alpha * sign * y / gn).collect();
                let nn = un.iter().map(|x| x * x).sum::<f64>().sqrt();
                un.iter_mut().for_each(|x| *x /= nn);
                let hn = self.h(&un);
                let sn = sval(&hn);
                if sn * sn > s * s {
                    (u, s, h) = (un, sn, hn);
                    alpha *= 1.5;
                    moved = true;
                    break;
                }
                alpha *= 0.3;
            }
            if !moved {
                break;
            }
        }
        (s * s, u, h)
    }

    /// `sup (a.relu(h))^2 / h^T K^{0+} h` over the kept directions.
    fn kept(&self, a: &[f64]) -> f64 {
        self.dirs.iter().map(|(_, h)| {
            let s: f64 = h.iter().zip(a).filter(|(h, _)| **h > 0.0).map(|(h, a)| a * h).sum();
            s * s
        }).fold(0.0, f64::max)
    }

    /// Lower bound on `rho(a)` (struct docs); `>= 1`: the tilt `-gamma^2 a a^T` is not normalizable.
    pub fn ratio(&mut self, k0: MatRef<'_, f64>, a: &[f64], gamma: f64) -> f64 {
        let (p, r) = (self.f.nrows(), self.f.ncols());
        let val = |h: &[f64]| -> f64 {
            let s: f64 = h.iter().zip(a).filter(|(h, _)| **h > 0.0).map(|(h, a)| a * h).sum();
            s * s
        };
        let mut starts: Vec<Vec<f64>> = Vec::new();
        let fresh = |stream: u64| {
            let mut u = vec![0.0; r];
            crate::rng::Rng::new(0x5EED, stream).fill_normal(&mut u);
            u
        };
        if self.calls == 0 || self.explore_next {
            for sign in [1.0, -1.0] {
                let bp: Vec<f64> = a.iter().map(|v| (sign * v).max(0.0)).collect();
                starts.push((0..r).map(|k| self.f.col(k).iter().zip(&bp).map(|(f, b)| f * b).sum()).collect());
            }
        }
        if self.calls == 0 {
            starts.extend((0..FIRST_STARTS as u64).map(fresh));
        } else {
            let mut order: Vec<(f64, usize)> = self.dirs.iter().enumerate().map(|(i, (_, h))| (val(h), i)).collect();
            order.sort_by(|x, y| y.0.total_cmp(&x.0).then(x.1.cmp(&y.1)));
            starts.extend(order.iter().take(2).map(|&(_, i)| self.dirs[i].0.clone()));
            starts.push(fresh((1u64 << 32) + self.calls));
            if self.explore_next {
                let k0 = (1u64 << 33) + FIRST_STARTS as u64 * self.explored;
                starts.extend((k0..k0 + FIRST_STARTS as u64).map(fresh));
                self.explored += 1;
            }
        }
        self.explore_next = false;
        self.calls += 1;
        for u0 in starts {
            let (_, u, h) = self.ascend(a, &u0);
            // keep distinct directions (cosine < 0.999 to every kept one; a near one is replaced
            // when the new one is better)
            match self.dirs.iter().position(|(v, _)| v.iter().zip(&u).map(|(x, y)| x * y).sum::<f64>() > 0.999) {
                Some(i) if val(&self.dirs[i].1) < val(&h) => self.dirs[i] = (u, h),
                Some(_) => {}
                None => self.dirs.push((u, h)),
            }
        }
        if self.dirs.len() > KEEP {
            let mut scored: Vec<(f64, usize)> = self.dirs.iter().enumerate().map(|(i, (_, h))| (val(h), i)).collect();
            scored.sort_by(|x, y| y.0.total_cmp(&x.0).then(x.1.cmp(&y.1)));
            let keep: Vec<usize> = scored.iter().take(KEEP).map(|&(_, i)| i).collect();
            self.dirs = keep.iter().map(|&i| self.dirs[i].clone()).collect();
        }
        debug_assert_eq!(k0.nrows(), p);
        gamma * gamma * self.kept(a).max(rank_one_ratio(k0, a, 1.0))
    }
}

/// Lower bound on `rho(a)` (module docs) by the pattern witnesses; `>= 1`: the tilt
/// `-gamma^2 a a^T` is not normalizable. [`RayBound`] adds the ray ascent.
pub fn rank_one_ratio(k0: MatRef<'_, f64>, a: &[f64], gamma: f64) -> f64 {
    let neg: Vec<f64> = a.iter().map(|v| -v).collect();
    gamma * gamma * pattern_witness(k0, a).0.max(pattern_witness(k0, &neg).0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use faer::Mat;

    #[test]
    fn positive_kernel_and_positive_a_give_the_linear_bound() {
        // K^0 entrywise positive, a > 0: the maximising pattern is all of h, rho = gamma^2 a^T K a
        let k = Mat::from_fn(3, 3, |i, j| if i == j { 1.0 } else { 0.3 });
        let a = [0.5, 0.2, 0.1];
        let want: f64 = (0..3).map(|i| (0..3).map(|j| a[i] * k[(i, j)] * a[j]).sum::<f64>()).sum();
        assert!((rank_one_ratio(k.as_ref(), &a, 2.0) - 4.0 * want).abs() < 1e-12);
    }

    #[test]
    fn identity_kernel_keeps_only_one_sign() {
        // K = I: sup (a.relu(h))^2 / |h|^2 = max(|a_+|^2, |a_-|^2)
        let k = Mat::<f64>::identity(4, 4);
        let a = [1.0, -2.0, 0.5, -0.1];
        assert!((rank_one_ratio(k.as_ref(), &a, 1.0) - 4.01).abs() < 1e-12);
    }
}
