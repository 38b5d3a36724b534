//! Square Attack (Andriushchenko, Croce, Flammarion & Hein, "Square Attack: a query-efficient
//! black-box adversarial attack via random search", ECCV 2020), L-inf and L2: random search over
//! square-shaped updates, kept where they lower the margin z_y - max_{j != y} z_j. Forward passes
//! only: no gradient is ever computed, which is why it sees through gradient masking.
//!
//! It follows AutoAttack / torchattacks 3.5.1: a start from vertical stripes of +-eps (L-inf) or
//! a grid of +-eta patterns (L2); the square's side covers a fraction p of the image, p starting
//! at p_init = 0.8 and halving at 1%, 5%, 20%, 50%, 100%, 200%, 400%, 600% and 800% of
//! 10 000 queries scaled to `n_queries`; one square position and one sign per channel per
//! query, shared by the batch (so an example's search does not depend on the others).
//!
//! Kept for parity, though it is a quirk: like the authors' code, AutoAttack and torchattacks,
//! square positions are drawn from 0..h - s, so once squares are smaller than the image they
//! never touch its last row and column (only the start does). Drawing from every position that
//! fits makes the attack slightly stronger (on the parity test's model, 1 point of RA with 500
//! queries) and its numbers no longer comparable with AutoAttack's.

use super::{
    check_batch, format_eps, keep_rows, lp_norm, margin, predict, Attack, CallCounter, Forward, Norm, PassOutcome, Targeted, WorstCase,
};
use crate::error::{Error, Result};
use crate::model::{deep_copy, Network};
use crate::runtime::Rng;
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

/// Square Attack with the margin loss.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, derive_setters::Setters)]
#[setters(generate = false)]
pub struct Square {
    pub norm: Norm,
    pub eps: f64,
    /// Queries (forward passes) per run (AutoAttack's standard version: 5000).
    #[setters(generate)]
    pub n_queries: usize,
    /// Runs (>= 1) on the examples still robust.
    #[setters(generate)]
    pub n_restarts: usize,
    /// Initial fraction of the image a square covers (AutoAttack: 0.8).
    #[setters(generate)]
    pub p_init: f64,
    #[setters(generate)]
    pub seed: u64,
    #[serde(skip)]
    pub(crate) calls: CallCounter,
}

impl Square {
    /// Square as in AutoAttack's standard version: 5000 queries, p_init 0.8, one run.
    pub fn new(norm: Norm, eps: f64) -> Square {
        Square { norm, eps, n_queries: 5000, n_restarts: 1, p_init: 0.8, seed: 0, calls: CallCounter::default() }
    }

    fn attack(&self, net: &Network, x: &Tensor, labels: &Tensor, targeted: bool) -> Result<Tensor> {
        check_batch(net, x, labels, self.eps)?;
        if self.n_queries == 0 || self.n_restarts == 0 {
            return Err(Error::invalid(
                format!("Square with {} queries and {} restarts", self.n_queries, self.n_restarts),
                "use n_queries >= 1 (AutoAttack uses 5000) and n_restarts >= 1",
            ));
        }
        if !(self.p_init > 0.0 && self.p_init <= 1.0) {
            return Err(Error::invalid(format!("Square with p_init = {}", self.p_init), "use p_init in (0, 1] (AutoAttack uses 0.8)"));
        }
        let size = x.size();
        if self.norm == Norm::L2 && (size[2] < 5 || size[3] < 5) {
            return Err(Error::invalid(
                format!("L2 Square on {}x{} images", size[2], size[3]),
                "use images of at least 5x5 pixels (its start pattern is a 5x5 grid), or the L-inf version",
            ));
        }
        let _guard = tch::no_grad_guard();
        let folded = net.folded_eval()?;
        let forward = |x: &Tensor| folded.forward(x);
        let pred = predict(&forward, x)?;
        let robust = if targeted { pred.f_ne_tensor(labels)? } else { pred.f_eq_tensor(labels)? };
        let mut worst = WorstCase::new(x, robust)?;
        let mut rng = Rng::new(self.calls.call_seed(self.seed));
        for _ in 0..self.n_restarts {
            let more = worst.pass(x, |idx, xs| self.run(&forward, xs, &labels.f_index_select(0, idx)?, targeted, &mut rng))?;
            if !more {
                break;
            }
        }
        Ok(worst.into_adv())
    }

    /// One run on `x`: the margin (to the target's win when `targeted`) is minimised until it is
    /// <= 0 or the queries are spent.
    fn run(&self, forward: Forward, x: &Tensor, labels: &Tensor, targeted: bool, rng: &mut Rng) -> Result<PassOutcome> {
        let loss = |x: &Tensor, labels: &Tensor| -> Result<Tensor> {
            let m = margin(&forward(x)?, labels)?;
            Ok(if targeted { m.f_neg()? } else { m })
        };
        let start = match self.norm {
            Norm::Linf => linf_start(x, self.eps, rng)?,
            Norm::L2 => l2_start(x, self.eps, rng)?,
        };
        let m = loss(&start, labels)?;
        let n = x.size()[0];
        let mut a = Active {
            idx: Tensor::f_arange(n, (Kind::Int64, x.device()))?,
            x: x.shallow_clone(),
            labels: labels.shallow_clone(),
            best: start,
            margin: m,
        };
        let mut out = PassOutcome { adv: deep_copy(&a.best)?, fooled: a.margin.f_le(0.0)?, score: a.margin.f_neg()? };
        a.retire(&mut out)?;
        for i in 0..self.n_queries {
            if a.len() == 0 {
                break;
            }
            let p = p_schedule(self.p_init, i, self.n_queries);
            let candidate = match self.norm {
                Norm::Linf => self.linf_candidate(&a, p, rng)?,
                Norm::L2 => self.l2_candidate(&a, p, rng)?,
            };
            let m = loss(&candidate, &a.labels)?;
            let accept = m.f_lt_tensor(&a.margin)?.f_logical_or(&m.f_le(0.0)?)?;
            a.best = candidate.f_where_self(&accept.f_view([-1, 1, 1, 1])?, &a.best)?;
            a.margin = m.f_where_self(&accept, &a.margin)?;
            a.retire(&mut out)?;
        }
        a.write(&mut out, &Tensor::f_arange(a.len(), (Kind::Int64, x.device()))?)?;
        Ok(out)
    }

    /// L-inf: x_best with one square set to the far side of the ball (sign per channel).
    fn linf_candidate(&self, a: &Active, p: f64, rng: &mut Rng) -> Result<Tensor> {
        let (c, h, w) = dims(&a.x);
        let s = ((p * (h * w) as f64).sqrt().round() as i64).clamp(1, h.min(w));
        let (vh, vw) = (position(h, s, rng), position(w, s, rng));
        let signs = signs(&[1, c, 1, 1], rng, &a.x)?.f_mul_scalar(2.0 * self.eps)?;
        let window = |t: &Tensor| -> Result<Tensor> { Ok(t.f_narrow(2, vh, s)?.f_narrow(3, vw, s)?) };
        let x_win = window(&a.x)?;
        let new = window(&a.best)?
            .f_add(&signs)?
            .f_clamp_tensor(Some(x_win.f_sub_scalar(self.eps)?), Some(x_win.f_add_scalar(self.eps)?))?
            .f_clamp(0.0, 1.0)?;
        let candidate = deep_copy(&a.best)?;
        window(&candidate)?.f_copy_(&new)?;
        Ok(candidate)
    }

    /// L2: the perturbation inside one square replaced by a fresh +-eta pattern plus its old
    /// direction, a second square zeroed, the whole rescaled to norm eps.
    fn l2_candidate(&self, a: &Active, p: f64, rng: &mut Rng) -> Result<Tensor> {
        let (c, h, w) = dims(&a.x);
        let mut s = ((p * (h * w) as f64).sqrt().round() as i64).max(3);
        if s % 2 == 0 {
            s += 1;
        }
        let s = s.min(h.min(w));
        let delta = a.best.f_sub(&a.x)?;
        let (vh, vw) = (position(h, s, rng), position(w, s, rng));
        let (vh2, vw2) = (position(h, s, rng), position(w, s, rng));
        let window = |t: &Tensor, vh: i64, vw: i64| -> Result<Tensor> { Ok(t.f_narrow(2, vh, s)?.f_narrow(3, vw, s)?) };
        let win_norm = |t: &Tensor| -> Result<Tensor> { Ok(t.f_norm_scalaropt_dim(2.0, [2i64, 3].as_slice(), true)?) };
        let old = window(&delta, vh, vw)?;
        let mask = Tensor::f_zeros([1, 1, h, w], (Kind::Float, a.x.device()))?;
        let _ = window(&mask, vh, vw)?.f_fill_(1.0)?;
        let _ = window(&mask, vh2, vw2)?.f_fill_(1.0)?;
        let norm_image = lp_norm(&delta, Norm::L2)?;
        let norm_windows = lp_norm(&delta.f_mul(&mask)?, Norm::L2)?;
        let pattern = eta(s, rng, a.x.device())?.f_view([1, 1, s, s])?;
        let fresh = pattern.f_mul(&signs(&[a.len(), c, 1, 1], rng, &a.x)?)?.f_add(&old.f_div(&win_norm(&old)?.f_add_scalar(1e-12)?)?)?;
        let budget = norm_image
            .f_square()?
            .f_neg()?
            .f_add_scalar(self.eps * self.eps)?
            .f_clamp_min(0.0)?
            .f_div_scalar(c as f64)?
            .f_add(&norm_windows.f_square()?)?
            .f_sqrt()?;
        let fresh = fresh.f_div(&win_norm(&fresh)?.f_add_scalar(1e-12)?)?.f_mul(&budget)?;
        let new_delta = deep_copy(&delta)?;
        let _ = window(&new_delta, vh2, vw2)?.f_zero_()?;
        window(&new_delta, vh, vw)?.f_copy_(&fresh)?;
        to_sphere(&a.x, &new_delta, self.eps)
    }
}

impl Attack for Square {
    fn perturb(&self, net: &Network, x: &Tensor, y: &Tensor) -> Result<Tensor> {
        self.attack(net, x, y, false)
    }
    /// Toward `target`: minimises max_{j != t} z_j - z_t until the target wins.
    fn name(&self) -> String {
        let restarts = if self.n_restarts > 1 { format!(" x{} restarts", self.n_restarts) } else { String::new() };
        format!("Square-{} {} eps={}{restarts}", self.n_queries, self.norm.label(), format_eps(self.eps))
    }
}

impl Targeted for Square {
    fn perturb_targeted(&self, net: &Network, x: &Tensor, target: &Tensor) -> Result<Tensor> {
        self.attack(net, x, target, true)
    }
}

/// The examples of a run still searching.
struct Active {
    idx: Tensor,
    x: Tensor,
    labels: Tensor,
    best: Tensor,
    margin: Tensor,
}

impl Active {
    fn len(&self) -> i64 {
        self.idx.size()[0]
    }
    /// Writes the rows `rows` into the run's outcome.
    fn write(&self, out: &mut PassOutcome, rows: &Tensor) -> Result<()> {
        let dst = self.idx.f_index_select(0, rows)?;
        out.adv = out.adv.f_index_copy(0, &dst, &self.best.f_index_select(0, rows)?)?;
        let m = self.margin.f_index_select(0, rows)?;
        out.fooled = out.fooled.f_index_copy(0, &dst, &m.f_le(0.0)?)?;
        out.score = out.score.f_index_copy(0, &dst, &m.f_neg()?)?;
        Ok(())
    }
    /// Moves the examples whose margin is <= 0 (done) into the outcome.
    fn retire(&mut self, out: &mut PassOutcome) -> Result<()> {
        let done = self.margin.f_le(0.0)?;
        if done.f_any()?.f_int64_value(&[])? == 0 {
            return Ok(());
        }
        self.write(out, &done.f_nonzero()?.f_flatten(0, -1)?)?;
        let rows = done.f_logical_not()?.f_nonzero()?.f_flatten(0, -1)?;
        keep_rows(&mut [&mut self.idx, &mut self.x, &mut self.labels, &mut self.best, &mut self.margin], &rows)
    }
}

fn dims(x: &Tensor) -> (i64, i64, i64) {
    let s = x.size();
    (s[1], s[2], s[3])
}

/// The fraction of the image a square covers at query `i` of `n_queries` (AutoAttack's
/// schedule, written for 10 000 queries and rescaled).
pub(crate) fn p_schedule(p_init: f64, i: usize, n_queries: usize) -> f64 {
    let it = (i as f64 / n_queries as f64 * 10_000.0) as usize;
    let halvings = [10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000].iter().filter(|&&t| it > t).count();
    p_init / f64::from(1u32 << halvings)
}

/// A square's top-left coordinate along a side of `len` pixels, uniform in 0..len - s as in the
/// reference implementations (0 when the square fills the side).
fn position(len: i64, s: i64, rng: &mut Rng) -> i64 {
    rng.below((len - s).max(1) as usize) as i64
}

/// Random +-1 of `shape` on `like`'s device.
fn signs(shape: &[i64], rng: &mut Rng, like: &Tensor) -> Result<Tensor> {
    let n: i64 = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| if rng.uniform() < 0.5 { -1.0 } else { 1.0 }).collect();
    Ok(Tensor::from_slice(&v).f_reshape(shape)?.f_to_device(like.device())?)
}

/// L-inf start: vertical stripes of +-eps, one sign per example, channel and column.
fn linf_start(x: &Tensor, eps: f64, rng: &mut Rng) -> Result<Tensor> {
    let s = x.size();
    Ok(x.f_add(&signs(&[s[0], s[1], 1, s[3]], rng, x)?.f_mul_scalar(eps)?)?.f_clamp(0.0, 1.0)?)
}

/// L2 start: a 5x5 grid of +-eta patterns (one sign per example and channel), at norm eps.
fn l2_start(x: &Tensor, eps: f64, rng: &mut Rng) -> Result<Tensor> {
    let (c, h, w) = dims(x);
    let n = x.size()[0];
    let s = h / 5;
    let offset = (h - 5 * s) / 2;
    let delta = x.f_zeros_like()?;
    for i in 0..h / s {
        for j in 0..w / s {
            let (vh, vw) = (offset + i * s, offset + j * s);
            if vh + s > h || vw + s > w {
                continue;
            }
            let pattern = eta(s, rng, x.device())?.f_view([1, 1, s, s])?.f_mul(&signs(&[n, c, 1, 1], rng, x)?)?;
            let _ = delta.f_narrow(2, vh, s)?.f_narrow(3, vw, s)?.f_add_(&pattern)?;
        }
    }
    to_sphere(x, &delta, eps)
}

/// `x + eps * delta / |delta|_2`, clipped to [0, 1].
fn to_sphere(x: &Tensor, delta: &Tensor, eps: f64) -> Result<Tensor> {
    let unit = delta.f_div(&lp_norm(delta, Norm::L2)?.f_add_scalar(1e-12)?)?;
    Ok(x.f_add(&unit.f_mul_scalar(eps)?)?.f_clamp(0.0, 1.0)?)
}

/// The s x s pattern of L2 Square: concentric rectangles weighted 1/k^2, positive in one half
/// and negative in the other, unit L2 norm, transposed with probability 1/2.
fn eta(s: i64, rng: &mut Rng, device: tch::Device) -> Result<Tensor> {
    let (top, bottom) = (rectangles(s / 2, s), rectangles(s - s / 2, s));
    let mut v: Vec<f64> = top.into_iter().chain(bottom.into_iter().map(|b| -b)).collect();
    normalise(&mut v);
    let t = Tensor::from_slice(&v.iter().map(|&a| a as f32).collect::<Vec<_>>()).f_view([s, s])?;
    let t = if rng.uniform() > 0.5 { t.f_transpose(0, 1)?.f_contiguous()? } else { t };
    Ok(t.f_to_device(device)?)
}

/// Concentric rectangles on an `rows` x `cols` patch, the k-th weighted 1 / k^2, unit norm.
fn rectangles(rows: i64, cols: i64) -> Vec<f64> {
    let mut d = vec![0.0; (rows * cols) as usize];
    let (rc, cc) = (rows / 2 + 1, cols / 2 + 1);
    let (mut r0, mut c0) = (rc - 1, cc - 1);
    for k in 0..rc.max(cc) {
        for r in r0.max(0)..(r0 + 2 * k + 1).min(rows) {
            for c in c0.max(0)..(c0 + 2 * k + 1).min(cols) {
                d[(r * cols + c) as usize] += 1.0 / ((k + 1) * (k + 1)) as f64;
            }
        }
        r0 -= 1;
        c0 -= 1;
    }
    normalise(&mut d);
    d
}

fn normalise(v: &mut [f64]) {
    let norm = v.iter().map(|a| a * a).sum::<f64>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|a| *a /= norm);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p_halves_on_autoattack_schedule() {
        assert_eq!(p_schedule(0.8, 0, 10_000), 0.8);
        assert_eq!(p_schedule(0.8, 11, 10_000), 0.4);
        assert_eq!(p_schedule(0.8, 51, 10_000), 0.2);
        assert_eq!(p_schedule(0.8, 9000, 10_000), 0.8 / 512.0);
        // Rescaled: 5000 queries reach the same fractions at half the query count.
        assert_eq!(p_schedule(0.8, 6, 5000), 0.4);
        assert_eq!(p_schedule(0.8, 5, 5000), 0.8);
    }

    #[test]
    fn eta_has_unit_norm_and_opposite_halves() {
        let mut rng = Rng::new(0);
        for _ in 0..4 {
            let e = eta(5, &mut rng, tch::Device::Cpu).unwrap();
            let v = Vec::<f32>::try_from(e.flatten(0, -1)).unwrap();
            assert!((v.iter().map(|a| a * a).sum::<f32>().sqrt() - 1.0).abs() < 1e-5);
            // Rows 0-1 positive and rows 2-4 negative, or the same by columns.
            let (rows, cols) = (|i: usize| v[i] * if i / 5 < 2 { 1.0 } else { -1.0 }, |i: usize| v[i] * if i % 5 < 2 { 1.0 } else { -1.0 });
            assert!((0..25).all(|i| rows(i) > 0.0) || (0..25).all(|i| cols(i) > 0.0), "{v:?}");
        }
    }
}
