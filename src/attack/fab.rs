//! FAB-T, the targeted Fast Adaptive Boundary attack (Croce & Hein, "Minimally distorted
//! adversarial examples with a fast adaptive boundary attack", ICML 2020), as AutoAttack runs it:
//! for each of the `n_target_classes` classes ranked highest after the prediction on the clean
//! input, linearise the decision boundary between the true class and the target at the current
//! point, project both the current point and the clean input onto that hyperplane (minimal
//! L-inf or L2 step inside [0, 1]), move to a convex combination of the two projections with
//! overshoot eta, and after every success step back toward the clean input by a factor beta.
//! The smallest adversarial perturbation found counts if its norm is at most eps.
//!
//! This file owns the attack and the two box-constrained hyperplane projections, ported from
//! torchattacks 3.5.1 / AutoAttack (`projection_linf`, `projection_l2`). The first run is
//! deterministic (it starts at the clean input); restarts start at random at half of eps.
//! Examples leave the run once they have an adversarial example within eps, which changes no
//! outcome.

use super::apgdt::{check_targets, over_targets};
use super::{
    check_batch, format_eps, keep_rows, loss_and_gradient, lp_norm, predict, surface_start, Attack, CallCounter, Forward, Norm, PassOutcome,
};
use crate::error::{Error, Result};
use crate::model::{deep_copy, Network};
use crate::runtime::Rng;
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

/// Targeted FAB over the top classes, counted as successful within eps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, derive_setters::Setters)]
#[setters(generate = false)]
pub struct FabT {
    pub norm: Norm,
    pub eps: f64,
    /// Iterations per run (AutoAttack: 100).
    #[setters(generate)]
    pub n_iter: usize,
    /// Runs per target class; runs after the first start at random (AutoAttack: 1).
    #[setters(generate)]
    pub n_restarts: usize,
    /// How many target classes, in the order of the clean logits (AutoAttack: 9).
    #[setters(generate)]
    pub n_target_classes: usize,
    /// Largest weight of the projection of the clean input in the step (AutoAttack: 0.1).
    pub alpha_max: f64,
    /// Overshoot of the projection step (AutoAttack: 1.05).
    pub eta: f64,
    /// Backward step toward the clean input after a success (AutoAttack: 0.9).
    pub beta: f64,
    #[setters(generate)]
    pub seed: u64,
    #[serde(skip)]
    pub(crate) calls: CallCounter,
}

impl FabT {
    /// FAB-T as in AutoAttack's standard version: 100 iterations, 9 targets, one run each.
    pub fn new(norm: Norm, eps: f64) -> FabT {
        FabT {
            norm,
            eps,
            n_iter: 100,
            n_restarts: 1,
            n_target_classes: 9,
            alpha_max: 0.1,
            eta: 1.05,
            beta: 0.9,
            seed: 0,
            calls: CallCounter::default(),
        }
    }

    fn check(&self, net: &Network, x: &Tensor, y: &Tensor) -> Result<()> {
        check_batch(net, x, y, self.eps)?;
        check_targets(net, self.n_target_classes, self.n_restarts, "FAB-T")?;
        if self.n_iter == 0 {
            return Err(Error::invalid("FAB-T with 0 iterations", "use n_iter >= 1 (AutoAttack uses 100)"));
        }
        let ok = (0.0..=1.0).contains(&self.alpha_max) && self.eta >= 1.0 && self.beta > 0.0 && self.beta <= 1.0;
        if !ok {
            return Err(Error::invalid(
                format!("FAB-T with alpha_max {}, eta {}, beta {}", self.alpha_max, self.eta, self.beta),
                "use alpha_max in [0, 1], eta >= 1 and beta in (0, 1] (AutoAttack: 0.1, 1.05, 0.9)",
            ));
        }
        Ok(())
    }

    /// One run toward `targets`: the smallest adversarial perturbation found, if within eps.
    fn run(&self, forward: Forward, x: &Tensor, y: &Tensor, targets: &Tensor, start: Option<Tensor>) -> Result<PassOutcome> {
        let n = x.size()[0];
        let device = x.device();
        let mut a = Active {
            idx: Tensor::f_arange(n, (Kind::Int64, device))?,
            x0: x.shallow_clone(),
            y: y.shallow_clone(),
            t: targets.shallow_clone(),
            x1: start.unwrap_or_else(|| x.shallow_clone()),
            adv: x.shallow_clone(),
            res: Tensor::f_full([n], 1e10, (Kind::Float, device))?,
        };
        let mut out = PassOutcome {
            adv: deep_copy(x)?,
            fooled: Tensor::f_zeros([n], (Kind::Bool, device))?,
            score: Tensor::f_full([n], f64::NEG_INFINITY, (Kind::Float, device))?,
        };
        for _ in 0..self.n_iter {
            if a.len() == 0 {
                break;
            }
            // The boundary between y and the target, linearised at x1: w . z = b.
            let (_, df, dg) = loss_and_gradient(forward, &a.x1, &|z: &Tensor| {
                Ok(z.f_gather(1, &a.t.f_unsqueeze(1)?, false)?.f_sub(&z.f_gather(1, &a.y.f_unsqueeze(1)?, false)?)?.f_squeeze_dim(1)?)
            })?;
            let _guard = tch::no_grad_guard();
            let shape = a.x1.size();
            let w = dg.f_flatten(1, -1)?;
            let x1 = a.x1.f_flatten(1, -1)?;
            let x0 = a.x0.f_flatten(1, -1)?;
            let b = w.f_mul(&x1)?.f_sum_dim_intlist([1i64].as_slice(), false, Kind::Float)?.f_sub(&df)?;
            let points = Tensor::f_cat(&[&x1, &x0], 0)?;
            let (w2, b2) = (Tensor::f_cat(&[&w, &w], 0)?, Tensor::f_cat(&[&b, &b], 0)?);
            let d3 = match self.norm {
                Norm::Linf => project_linf(&points, &w2, &b2)?,
                Norm::L2 => project_l2(&points, &w2, &b2)?,
            };
            let m = a.len();
            let (d1, d2) = (d3.f_narrow(0, 0, m)?, d3.f_narrow(0, m, m)?);
            let a0 = lp_norm(&d3, self.norm)?.f_view([-1, 1])?.f_clamp_min(1e-8)?;
            let (a1, a2) = (a0.f_narrow(0, 0, m)?, a0.f_narrow(0, m, m)?);
            let alpha = a1.f_div(&a1.f_add(&a2)?)?.f_clamp(0.0, self.alpha_max)?;
            let from_x1 = x1.f_add(&d1.f_mul_scalar(self.eta)?)?.f_mul(&alpha.f_neg()?.f_add_scalar(1.0)?)?;
            let from_x0 = x0.f_add(&d2.f_mul_scalar(self.eta)?)?.f_mul(&alpha)?;
            a.x1 = from_x1.f_add(&from_x0)?.f_clamp(0.0, 1.0)?.f_view(shape.as_slice())?;
            let is_adv = predict(forward, &a.x1)?.f_ne_tensor(&a.y)?;
            let dist = lp_norm(&a.x1.f_sub(&a.x0)?, self.norm)?.f_flatten(0, -1)?;
            let better = is_adv.f_logical_and(&dist.f_lt_tensor(&a.res)?)?;
            a.adv = a.x1.f_where_self(&better.f_view([-1, 1, 1, 1])?, &a.adv)?;
            a.res = dist.f_where_self(&better, &a.res)?;
            let back = a.x0.f_add(&a.x1.f_sub(&a.x0)?.f_mul_scalar(self.beta)?)?;
            a.x1 = back.f_where_self(&is_adv.f_view([-1, 1, 1, 1])?, &a.x1)?;
            a.retire(&mut out, self.eps)?;
        }
        Ok(out)
    }
}

impl Attack for FabT {
    fn perturb(&self, net: &Network, x: &Tensor, y: &Tensor) -> Result<Tensor> {
        self.check(net, x, y)?;
        let folded = net.folded_eval()?;
        let forward = |x: &Tensor| folded.forward(x);
        let mut rng = Rng::new(self.calls.call_seed(self.seed));
        over_targets(&forward, x, y, self.n_target_classes, self.n_restarts, |xs, ys, targets, restart| {
            let start = if restart > 0 { Some(surface_start(xs, 0.5 * self.eps, self.norm, &mut rng)?) } else { None };
            self.run(&forward, xs, ys, targets, start)
        })
    }
    fn name(&self) -> String {
        let restarts = if self.n_restarts > 1 { format!(" x{} restarts", self.n_restarts) } else { String::new() };
        format!("FAB-T-{} {} eps={} ({} targets){restarts}", self.n_iter, self.norm.label(), format_eps(self.eps), self.n_target_classes)
    }
}

/// The examples of a run without an adversarial example within eps yet.
struct Active {
    idx: Tensor,
    x0: Tensor,
    y: Tensor,
    t: Tensor,
    x1: Tensor,
    /// The smallest adversarial example so far (x0 while there is none) and its norm.
    adv: Tensor,
    res: Tensor,
}

impl Active {
    fn len(&self) -> i64 {
        self.idx.size()[0]
    }
    /// Moves the examples with an adversarial example within eps into the outcome.
    fn retire(&mut self, out: &mut PassOutcome, eps: f64) -> Result<()> {
        let done = self.res.f_le(eps)?;
        if done.f_any()?.f_int64_value(&[])? == 0 {
            return Ok(());
        }
        let rows = done.f_nonzero()?.f_flatten(0, -1)?;
        let dst = self.idx.f_index_select(0, &rows)?;
        out.adv = out.adv.f_index_copy(0, &dst, &self.adv.f_index_select(0, &rows)?)?;
        out.fooled = out.fooled.f_index_fill(0, &dst, 1)?;
        let keep = done.f_logical_not()?.f_nonzero()?.f_flatten(0, -1)?;
        keep_rows(&mut [&mut self.idx, &mut self.x0, &mut self.y, &mut self.t, &mut self.x1, &mut self.adv, &mut self.res], &keep)
    }
}

/// Per row i, the smallest L-inf step d with w_i . (t_i + d) = b_i and t_i + d in [0, 1]
/// (as close as the box allows). Rows of `t`, `w`: points and normals (N x D); `b`: offsets (N).
pub(crate) fn project_linf(t: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    let len = t.size()[1];
    let dot = |u: &Tensor, v: &Tensor| -> Result<Tensor> { Ok(u.f_mul(v)?.f_sum_dim_intlist([1i64].as_slice(), false, Kind::Float)?) };
    let sign = dot(w, t)?.f_sub(b)?.f_ge(0.0)?.f_to_kind(Kind::Float)?.f_mul_scalar(2.0)?.f_sub_scalar(1.0)?;
    let w = w.f_mul(&sign.f_unsqueeze(1)?)?;
    let b = b.f_mul(&sign)?;
    let a = w.f_lt(0.0)?.f_to_kind(Kind::Float)?;
    let nonzero = w.f_ne(0.0)?.f_to_kind(Kind::Float)?;
    let d = a.f_sub(t)?.f_mul(&nonzero)?;
    let p = a.f_sub(&t.f_mul(&a.f_mul_scalar(2.0)?.f_sub_scalar(1.0)?)?)?;
    let indp = p.f_argsort(1, false)?;
    let b = b.f_sub(&dot(&w, t)?)?;
    let b0 = dot(&w, &d)?;
    let indp2 = indp.f_flip([1i64].as_slice())?;
    let ws = w.f_gather(1, &indp2, false)?;
    let bs2 = ws.f_neg()?.f_mul(&d.f_gather(1, &indp2, false)?)?;
    let s = ws.f_abs()?.f_cumsum(1, Kind::Float)?;
    let sb = bs2.f_cumsum(1, Kind::Float)?.f_add(&b0.f_unsqueeze(1)?)?;
    let last = |m: &Tensor| -> Result<Tensor> { Ok(m.f_select(1, len - 1)?) };
    let b2 = last(&sb)?.f_sub(&last(&s)?.f_mul(&p.f_gather(1, &indp.f_narrow(1, 0, 1)?, false)?.f_squeeze_dim(1)?)?)?;
    let c_l = b.f_sub(&b2)?.f_gt(0.0)?;
    let c2 = b.f_sub(&b0)?.f_gt(0.0)?.f_logical_and(&c_l.f_logical_not()?)?;
    // Binary search for the breakpoint (over every row; only the rows of c2 use it).
    let mut lb = b.f_zeros_like()?;
    let mut ub = b.f_full_like(len as f64 - 1.0)?;
    for _ in 0..ceil_log2(len) {
        let mid = lb.f_add(&ub)?.f_div_scalar(2.0)?.f_floor()?;
        let at = mid.f_to_kind(Kind::Int64)?.f_unsqueeze(1)?;
        let indcurr = indp.f_gather(1, &at.f_neg()?.f_add_scalar(len - 1)?, false)?;
        let b2 =
            sb.f_gather(1, &at, false)?.f_sub(&s.f_gather(1, &at, false)?.f_mul(&p.f_gather(1, &indcurr, false)?)?)?.f_squeeze_dim(1)?;
        let c = b.f_sub(&b2)?.f_gt(0.0)?;
        lb = mid.f_where_self(&c, &lb)?;
        ub = ub.f_where_self(&c, &mid)?;
    }
    let lb = lb.f_to_kind(Kind::Int64)?.f_unsqueeze(1)?;
    let lambda_l = b.f_sub(&last(&sb)?)?.f_div(&last(&s)?.f_neg()?)?.f_clamp_min(0.0)?.f_unsqueeze(1)?;
    let d_l = a.f_mul_scalar(2.0)?.f_sub_scalar(1.0)?.f_mul(&lambda_l)?;
    let lambda = b
        .f_sub(&sb.f_gather(1, &lb, false)?.f_squeeze_dim(1)?)?
        .f_div(&s.f_gather(1, &lb, false)?.f_squeeze_dim(1)?.f_neg()?)?
        .f_clamp_min(0.0)?
        .f_unsqueeze(1)?;
    let d_2 = lambda.f_minimum(&d)?.f_mul(&a)?.f_add(&lambda.f_neg()?.f_maximum(&d)?.f_mul(&a.f_neg()?.f_add_scalar(1.0)?)?)?;
    let d = d_l.f_where_self(&c_l.f_unsqueeze(1)?, &d_2.f_where_self(&c2.f_unsqueeze(1)?, &d)?)?;
    Ok(d.f_mul(&nonzero)?)
}

/// Per row i, the smallest L2 step d with w_i . (t_i + d) = b_i and t_i + d in [0, 1] (as close
/// as the box allows).
pub(crate) fn project_l2(t: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    let (n, len) = (t.size()[0], t.size()[1]);
    let c = w.f_mul(t)?.f_sum_dim_intlist([1i64].as_slice(), false, Kind::Float)?.f_sub(b)?;
    let sign = c.f_ge(0.0)?.f_to_kind(Kind::Float)?.f_mul_scalar(2.0)?.f_sub_scalar(1.0)?;
    let w = w.f_mul(&sign.f_unsqueeze(1)?)?;
    let c = c.f_mul(&sign)?;
    let tiny = w.f_abs()?.f_lt(1e-8)?;
    let r = t.f_div(&w)?.f_maximum(&t.f_sub_scalar(1.0)?.f_div(&w)?)?.f_clamp(-1e12, 1e12)?.f_masked_fill(&tiny, 1e12)?;
    let r = r.f_masked_fill(&r.f_eq(-1e12)?, 1e12)?;
    let (rs, indr) = r.f_sort(1, false)?;
    let rs2 = Tensor::f_cat(&[&rs.f_narrow(1, 1, len - 1)?, &Tensor::f_zeros([n, 1], (Kind::Float, t.device()))?], 1)?;
    let rs = rs.f_masked_fill(&rs.f_eq(1e12)?, 0.0)?;
    let rs2 = rs2.f_masked_fill(&rs2.f_eq(1e12)?, 0.0)?;
    let w3s = w.f_square()?.f_gather(1, &indr, false)?;
    let w5 = w3s.f_sum_dim_intlist([1i64].as_slice(), true, Kind::Float)?;
    let ws = w5.f_sub(&w3s.f_cumsum(1, Kind::Float)?)?;
    let keep = tiny.f_logical_not()?.f_to_kind(Kind::Float)?;
    let d = r.f_mul(&w)?.f_neg()?.f_mul(&keep)?;
    let first = w5.f_mul(&rs.f_narrow(1, 0, 1)?)?;
    let s = Tensor::f_cat(&[&first.f_neg()?, &rs.f_sub(&rs2)?.f_mul(&ws)?.f_cumsum(1, Kind::Float)?.f_sub(&first)?], 1)?;
    let c4 = s.f_select(1, 0)?.f_add(&c)?.f_lt(0.0)?;
    let c3 = d.f_mul(&w)?.f_sum_dim_intlist([1i64].as_slice(), false, Kind::Float)?.f_add(&c)?.f_gt(0.0)?;
    let c2 = c4.f_logical_or(&c3)?.f_logical_not()?;
    let mut lb = c.f_zeros_like()?;
    let mut ub = c.f_full_like(len as f64 - 1.0)?;
    for _ in 0..ceil_log2(len) {
        let mid = lb.f_add(&ub)?.f_div_scalar(2.0)?.f_floor()?;
        let at = mid.f_to_kind(Kind::Int64)?.f_unsqueeze(1)?;
        let up = s.f_gather(1, &at, false)?.f_squeeze_dim(1)?.f_add(&c)?.f_gt(0.0)?;
        lb = mid.f_where_self(&up, &lb)?;
        ub = ub.f_where_self(&up, &mid)?;
    }
    let lb = lb.f_to_kind(Kind::Int64)?.f_unsqueeze(1)?;
    let d4 = c.f_div(&w5.f_squeeze_dim(1)?)?.f_unsqueeze(1)?.f_neg()?.f_mul(&w)?;
    let at = |m: &Tensor| -> Result<Tensor> { Ok(m.f_gather(1, &lb, false)?.f_squeeze_dim(1)?) };
    let ws_lb = at(&ws)?;
    let alpha = at(&s)?.f_add(&c)?.f_div(&ws_lb)?.f_add(&at(&rs)?)?;
    let alpha = alpha.f_masked_fill(&ws_lb.f_eq(0.0)?, 0.0)?.f_unsqueeze(1)?;
    let c5 = alpha.f_gt_tensor(&r)?.f_to_kind(Kind::Float)?;
    let d2 = d.f_mul(&c5)?.f_sub(&alpha.f_mul(&w)?.f_mul(&c5.f_neg()?.f_add_scalar(1.0)?)?)?;
    let d = d4.f_where_self(&c4.f_unsqueeze(1)?, &d2.f_where_self(&c2.f_unsqueeze(1)?, &d)?)?;
    Ok(d.f_mul(&keep)?)
}

/// ceil(log2(n)) for n >= 1.
fn ceil_log2(n: i64) -> u32 {
    (n.max(1) as u64).next_power_of_two().trailing_zeros()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Where the box does not bind, the projections are the textbook ones: the L-inf step is
    /// lambda * sign(w) with lambda = (b - w.t) / |w|_1, the L2 step (b - w.t) w / |w|_2^2.
    #[test]
    fn hyperplane_projections_are_minimal_steps() {
        let t = Tensor::full([2, 6], 0.5, (Kind::Float, tch::Device::Cpu));
        let w = Tensor::from_slice(&[1.0f32, -2.0, 0.5, 0.0, 3.0, -1.0, 0.2, 0.1, -0.3, 0.4, 0.0, 1.0]).view([2, 6]);
        let b = Tensor::from_slice(&[1.0f32, 0.3]);
        let gap = &b - (&w * &t).sum_dim_intlist([1i64].as_slice(), false, Kind::Float);
        let linf = project_linf(&t, &w, &b).unwrap();
        let want = w.sign() * (&gap / w.abs().sum_dim_intlist([1i64].as_slice(), true, Kind::Float).squeeze_dim(1)).unsqueeze(1);
        assert!((&linf - &want).abs().max().double_value(&[]) < 1e-5, "{linf} vs {want}");
        let l2 = project_l2(&t, &w, &b).unwrap();
        let want = &w * (&gap / w.square().sum_dim_intlist([1i64].as_slice(), false, Kind::Float)).unsqueeze(1);
        assert!((&l2 - &want).abs().max().double_value(&[]) < 1e-5, "{l2} vs {want}");
        // Both land on the hyperplane.
        for d in [linf, l2] {
            let on = (&w * (&t + d)).sum_dim_intlist([1i64].as_slice(), false, Kind::Float);
            assert!((on - &b).abs().max().double_value(&[]) < 1e-5);
        }
    }
}
