//! Pruning strategies: small functions over (network, current mask) that prune a fraction of
//! the weights the mask still keeps. Ties are broken deterministically: among equal scores the
//! weight that comes first (tensor name order, then position) is pruned first.

use super::mask::Mask;
use crate::error::{Error, Result};
use crate::model::Network;
use crate::runtime::Rng;
use std::collections::BTreeMap;
use tch::{Device, Kind, Tensor};

/// How many of `kept` weights a fraction prunes: round(fraction * kept), as PyTorch's pruning does.
pub fn count_to_prune(fraction: f64, kept: i64) -> i64 {
    ((fraction * kept as f64).round() as i64).clamp(0, kept)
}

fn check_fraction(fraction: f64) -> Result<()> {
    if !(0.0..=1.0).contains(&fraction) {
        return Err(Error::invalid(format!("pruning fraction {fraction} is not in [0, 1]"), "use e.g. 0.2 (20% of the remaining weights)"));
    }
    Ok(())
}

/// Prunes the `k` lowest-scoring kept entries of one flat score vector (pruned entries are
/// ignored); returns the new flat keep-vector.
///
/// Linear time: the k-th smallest kept score is found by selection (`kthvalue`), not by sorting;
/// every score below it is pruned, and among the scores equal to it the first ones by position,
/// as many as are still needed (the deterministic tie rule of this module).
fn prune_lowest(scores: &Tensor, keep: &Tensor, k: i64) -> Result<Tensor> {
    if k <= 0 {
        return crate::model::deep_copy(keep);
    }
    // Already-pruned entries get +inf so they are never selected again.
    let all_kept = keep.f_all()?.f_int64_value(&[])? != 0;
    let masked = if all_kept { scores.shallow_clone() } else { scores.f_masked_fill(&keep.f_logical_not()?, f64::INFINITY)? };
    let (threshold, _) = masked.f_kthvalue(k, 0, false)?;
    let below = masked.f_lt_tensor(&threshold)?;
    let need = k - below.f_sum(Kind::Int64)?.f_int64_value(&[])?;
    let at = masked.f_eq_tensor(&threshold)?;
    let at = if all_kept { at } else { at.f_logical_and(keep)? };
    let prune = if at.f_sum(Kind::Int64)?.f_int64_value(&[])? <= need {
        below.f_logical_or(&at)?
    } else {
        // Ties at the threshold: the first `need` of them by position.
        let rank = at.f_cumsum(0, Kind::Int64)?;
        below.f_logical_or(&at.f_logical_and(&rank.f_le(need)?)?)?
    };
    Ok(keep.f_logical_and(&prune.f_logical_not()?)?)
}

/// |w| of every tensor of `mask`, flattened and concatenated in name order (one copy, made on
/// the CPU, then made absolute in place).
fn flat_magnitudes(net: &Network, mask: &Mask) -> Result<Tensor> {
    mask.check_fits(net)?;
    let tensors: BTreeMap<String, Tensor> = net.named_tensors().into_iter().collect();
    let _guard = tch::no_grad_guard();
    let flat = mask
        .names()
        .map(|n| Ok(tensors[n].f_detach()?.f_to_device(Device::Cpu)?.f_to_kind(Kind::Float)?.f_reshape([-1])?))
        .collect::<Result<Vec<_>>>()?;
    let mut cat = Tensor::f_cat(&flat, 0)?;
    let _ = cat.f_abs_()?;
    Ok(cat)
}

fn magnitudes(net: &Network, mask: &Mask) -> Result<BTreeMap<String, Tensor>> {
    mask.check_fits(net)?;
    let tensors: BTreeMap<String, Tensor> = net.named_tensors().into_iter().collect();
    mask.names().map(|n| Ok((n.clone(), tensors[n].f_detach()?.f_to_device(Device::Cpu)?.f_abs()?.f_to_kind(Kind::Float)?))).collect()
}

fn with_masks(mask: &Mask, masks: BTreeMap<String, Tensor>) -> Result<Mask> {
    Mask::new(masks, mask.meta.clone())
}

/// The kept entries of every tensor of `mask`, flattened and concatenated in name order.
fn flat_keep(mask: &Mask) -> Result<Tensor> {
    Ok(Tensor::f_cat(&mask.iter().map(|(_, m)| m.f_flatten(0, -1)).collect::<std::result::Result<Vec<_>, _>>()?, 0)?)
}

/// Prunes the `k` lowest of `flat_scores` (one score per entry of `mask`, flattened in name
/// order) among the entries `mask` keeps, and splits the result back into tensors.
fn prune_global(mask: &Mask, flat_scores: &Tensor, k: i64) -> Result<Mask> {
    let new_keep = prune_lowest(flat_scores, &flat_keep(mask)?, k)?;
    let mut out = BTreeMap::new();
    let mut offset = 0;
    for (n, m) in mask.iter() {
        let len = m.numel() as i64;
        out.insert(n.clone(), new_keep.f_narrow(0, offset, len)?.f_view(m.size().as_slice())?);
        offset += len;
    }
    with_masks(mask, out)
}

/// Global unstructured magnitude pruning (the paper's IMP step): over all tensors of `mask`
/// together, prunes the `fraction` of still-kept weights with the smallest |w|.
pub fn global_magnitude(net: &Network, mask: &Mask, fraction: f64) -> Result<Mask> {
    check_fraction(fraction)?;
    let k = count_to_prune(fraction, mask.kept());
    prune_global(mask, &flat_magnitudes(net, mask)?, k)
}

/// One-shot global magnitude pruning of `net`'s weights to exactly as many kept weights as
/// `like` keeps, over the same tensors: the control that tells an IMP ticket from a single
/// pruning step of the pre-trained weights at the same sparsity.
pub fn one_shot_like(net: &Network, like: &Mask) -> Result<Mask> {
    let dense = Mask::new(
        like.iter().map(|(n, m)| Ok((n.clone(), Tensor::f_ones(m.size(), (Kind::Bool, Device::Cpu))?))).collect::<Result<_>>()?,
        like.meta.clone(),
    )?;
    let total: i64 = like.per_layer().iter().map(|l| l.total).sum();
    let mut mask = prune_global(&dense, &flat_magnitudes(net, &dense)?, total - like.kept())?;
    mask.meta.regime = "one-shot magnitude (kept count of a ticket)".into();
    Ok(mask)
}

/// Layer-wise magnitude pruning: prunes `fraction` of each tensor's kept weights separately.
pub fn layerwise_magnitude(net: &Network, mask: &Mask, fraction: f64) -> Result<Mask> {
    check_fraction(fraction)?;
    let mags = magnitudes(net, mask)?;
    let mut out = BTreeMap::new();
    for (n, m) in mask.iter() {
        let keep = m.f_flatten(0, -1)?;
        let k = count_to_prune(fraction, keep.f_sum(Kind::Int64)?.f_int64_value(&[])?);
        out.insert(n.clone(), prune_lowest(&mags[n].f_flatten(0, -1)?, &keep, k)?.f_view(m.size().as_slice())?);
    }
    with_masks(mask, out)
}

fn random_scores(shape: &[i64], rng: &mut Rng) -> Result<Tensor> {
    rng.uniform_tensor(shape, 0.0, 1.0, Device::Cpu)
}

/// Random global pruning: `fraction` of the kept weights, chosen uniformly (seeded).
pub fn random_global(mask: &Mask, fraction: f64, seed: u64) -> Result<Mask> {
    check_fraction(fraction)?;
    let mut rng = Rng::derive(seed, "random-prune");
    let scores = mask.iter().map(|(_, m)| random_scores(&[m.numel() as i64], &mut rng)).collect::<Result<Vec<_>>>()?;
    let mut mask = prune_global(mask, &Tensor::f_cat(&scores, 0)?, count_to_prune(fraction, mask.kept()))?;
    mask.meta.regime = "random".into();
    Ok(mask)
}

/// A random mask with exactly the per-tensor kept counts of `like` (the usual random-ticket
/// baseline), seeded.
pub fn random_like(like: &Mask, seed: u64) -> Result<Mask> {
    let mut rng = Rng::derive(seed, "random-like");
    let mut out = BTreeMap::new();
    for (n, m) in like.iter() {
        let total = m.numel() as i64;
        let kept = m.f_sum(Kind::Int64)?.f_int64_value(&[])?;
        let all = Tensor::f_ones([total], (Kind::Bool, Device::Cpu))?;
        let keep = prune_lowest(&random_scores(&[total], &mut rng)?, &all, total - kept)?;
        out.insert(n.clone(), keep.f_view(m.size().as_slice())?);
    }
    let mut mask = Mask::new(out, like.meta.clone())?;
    mask.meta.regime = "random (layer-wise counts of a ticket)".into();
    Ok(mask)
}
