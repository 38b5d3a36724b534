//! Masks, pruning strategies and IMP.

mod common;

use common::*;
use doublewin::prelude::*;
use doublewin::prune::{global_magnitude, imp, layerwise_magnitude, random_global, random_like, ImpConfig, Mask};
use std::collections::BTreeMap;

fn digits() -> Splits {
    Embedded::Digits.splits(0.1, 0).unwrap()
}

fn net(data: &Splits, seed: u64) -> Network {
    Network::new(NetworkSpec::for_data(Arch::convnet(), &data.train).unwrap(), Device::Cpu, seed).unwrap()
}

/// Masks by brute force: sort all kept |w| (ties by position) and drop the k smallest.
fn brute_force(net: &Network, mask: &Mask, fraction: f64) -> BTreeMap<String, Vec<bool>> {
    let tensors: BTreeMap<String, Tensor> = net.named_tensors().into_iter().collect();
    let mut entries = Vec::new();
    let mut keep: BTreeMap<String, Vec<bool>> = BTreeMap::new();
    for (name, m) in mask.iter() {
        let w = Vec::<f32>::try_from(tensors[name].flatten(0, -1)).unwrap();
        let k = Vec::<bool>::try_from(m.flatten(0, -1)).unwrap();
        for (i, (&wi, &ki)) in w.iter().zip(&k).enumerate() {
            if ki {
                entries.push((wi.abs(), name.clone(), i));
            }
        }
        keep.insert(name.clone(), k);
    }
    entries.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    let n = ((fraction * entries.len() as f64).round()) as usize;
    for (_, name, i) in entries.into_iter().take(n) {
        keep.get_mut(&name).unwrap()[i] = false;
    }
    keep
}

fn as_vecs(mask: &Mask) -> BTreeMap<String, Vec<bool>> {
    mask.iter().map(|(n, m)| (n.clone(), Vec::<bool>::try_from(m.flatten(0, -1)).unwrap())).collect()
}

#[test]
fn global_magnitude_prunes_exactly_the_smallest_weights() {
    let data = digits();
    let net = net(&data, 1);
    let mut mask = Mask::dense_for(&net).unwrap();
    for _ in 0..3 {
        let expected = brute_force(&net, &mask, 0.2);
        mask = global_magnitude(&net, &mask, 0.2).unwrap();
        assert_eq!(as_vecs(&mask), expected);
    }
    // Ties (here: all weights equal) are broken by position, deterministically.
    let flat = net.try_clone().unwrap();
    let _guard = tch::no_grad_guard();
    for (_, mut t) in flat.named_tensors() {
        let _ = t.fill_(1.0);
    }
    let a = global_magnitude(&flat, &Mask::dense_for(&flat).unwrap(), 0.5).unwrap();
    assert_eq!(as_vecs(&a), brute_force(&flat, &Mask::dense_for(&flat).unwrap(), 0.5));
}

#[test]
fn global_magnitude_matches_pytorch_global_unstructured() {
    let data = digits();
    let net = net(&data, 2);
    let dir = temp_dir("prune-parity");
    let convs: Vec<(String, Tensor)> = net.named_tensors().into_iter().filter(|(n, _)| net.prunable_names().contains(n)).collect();
    doublewin::model::io::write_tensors(&dir.join("w.safetensors"), &convs).unwrap();
    run_python("global_unstructured.py", &[dir.join("w.safetensors").to_str().unwrap(), dir.join("m.safetensors").to_str().unwrap(), "3"]);
    let theirs: BTreeMap<String, Tensor> = Tensor::read_safetensors(dir.join("m.safetensors")).unwrap().into_iter().collect();
    let mut ours = Mask::dense_for(&net).unwrap();
    for _ in 0..3 {
        ours = global_magnitude(&net, &ours, 0.2).unwrap();
    }
    for (name, m) in ours.iter() {
        assert!(m.equal(&theirs[name].to_kind(Kind::Bool)), "{name} differs from torch.nn.utils.prune");
    }
}

#[test]
fn sparsity_follows_one_minus_point_eight_to_the_k() {
    let data = digits();
    let net = net(&data, 3);
    let mut mask = Mask::dense_for(&net).unwrap();
    let total = mask.per_layer().iter().map(|l| l.total).sum::<i64>();
    let mut kept = total;
    for k in 1..=8 {
        mask = global_magnitude(&net, &mask, 0.2).unwrap();
        kept -= (0.2 * kept as f64).round() as i64;
        assert_eq!(mask.kept(), kept, "round {k}");
        assert!((mask.sparsity() - (1.0 - 0.8f64.powi(k))).abs() < 1.0 / total as f64 * k as f64, "round {k}: {}", mask.sparsity());
    }
    let lw = layerwise_magnitude(&net, &Mask::dense_for(&net).unwrap(), 0.2).unwrap();
    for l in lw.per_layer() {
        assert_eq!(l.kept, l.total - (0.2 * l.total as f64).round() as i64);
    }
    let r = random_like(&mask, 9).unwrap();
    assert_eq!(r.per_layer(), mask.per_layer());
    assert_ne!(as_vecs(&r), as_vecs(&mask));
    assert!((random_global(&Mask::dense_for(&net).unwrap(), 0.2, 1).unwrap().sparsity() - 0.2).abs() < 1e-4);
}

#[test]
fn masked_weights_stay_exactly_zero_through_training() {
    let data = digits();
    let mut n = net(&data, 4);
    let mask = random_global(&Mask::dense_for(&n).unwrap(), 0.7, 5).unwrap();
    mask.attach(&mut n).unwrap();
    let before = n.snapshot().unwrap();
    let cfg = TrainConfig::default().epochs(2).batch_size(64).weight_decay(5e-3).momentum(0.9).nesterov(true).select_best(false);
    train_with(&mut n, &data, &cfg, &mut Callbacks::none(), None).unwrap();
    assert!(mask.holds_in(&n).unwrap());
    // The kept weights did train.
    let changed = n.named_tensors().iter().zip(&before).filter(|((_, a), (_, b))| !a.equal(b)).count();
    assert!(changed > 0);
    // Adversarial training keeps them zero too.
    let cfg = cfg.regime(Regime::adversarial(0.1).unwrap()).epochs(1);
    train_with(&mut n, &data, &cfg, &mut Callbacks::none(), None).unwrap();
    assert!(mask.holds_in(&n).unwrap());
}

#[test]
fn rewinding_restores_every_tensor_bit_for_bit() {
    let data = digits();
    let mut n = net(&data, 6);
    let pretrained = n.snapshot().unwrap();
    train_with(&mut n, &data, &TrainConfig::default().epochs(1).batch_size(64), &mut Callbacks::none(), None).unwrap();
    let moved =
        n.named_tensors().iter().zip(&pretrained).filter(|((_, a), (_, b))| !a.equal(b)).map(|((k, _), _)| k.clone()).collect::<Vec<_>>();
    assert!(moved.iter().any(|k| k.ends_with("running_mean")), "training moved BN statistics");
    n.restore(&pretrained).unwrap();
    for ((k, a), (_, b)) in n.named_tensors().iter().zip(&pretrained) {
        assert!(a.equal(b), "{k} not restored");
    }
}

#[test]
fn masks_save_load_export_and_reject_misfits() {
    let data = digits();
    let n = net(&data, 7);
    let mask = global_magnitude(&n, &Mask::dense_for(&n).unwrap(), 0.36).unwrap();
    let dir = temp_dir("mask-io");
    mask.save(dir.join("m.safetensors")).unwrap();
    assert_eq!(Mask::load(dir.join("m.safetensors")).unwrap(), mask);
    mask.export_pytorch(&n, dir.join("pt.safetensors")).unwrap();
    let (back, weights) = Mask::import_pytorch(dir.join("pt.safetensors")).unwrap();
    assert_eq!(back, mask);
    let masked = n.try_clone().unwrap();
    mask.apply(&masked).unwrap();
    let w: BTreeMap<String, Tensor> = weights.into_iter().collect();
    for (k, t) in masked.named_tensors() {
        assert!(t.equal(&w[&k]), "{k}");
    }
    // A mask for another architecture is refused with the differences listed.
    let other = Network::new(NetworkSpec { arch: Arch::ConvNet { widths: vec![16, 32] }, ..n.spec().clone() }, Device::Cpu, 0).unwrap();
    let err = mask.check_fits(&other).unwrap_err().to_string();
    assert!(err.contains("features.2.conv.weight") && err.contains("features.0.conv.weight"), "{err}");
}

#[test]
fn imp_in_the_library_leaves_the_pretrained_network_untouched() {
    let data = digits();
    let pretrained = net(&data, 8);
    let hash = pretrained.content_hash().unwrap();
    let dir = temp_dir("imp-lib");
    let cfg = ImpConfig::default().rounds(2).retrain(TrainConfig::default().epochs(1).batch_size(64));
    let tickets = imp(&pretrained, &data, &cfg, &dir).unwrap();
    assert_eq!(tickets.len(), 2);
    assert_eq!(pretrained.content_hash().unwrap(), hash);
    assert_eq!(tickets.round(2).unwrap().mask.meta.weights_hash, hash);
    // A second call loads the finished rounds instead of recomputing them.
    let start = std::time::Instant::now();
    let again = imp(&pretrained, &data, &cfg, &dir).unwrap();
    assert!(start.elapsed().as_secs_f64() < 1.0);
    assert_eq!(again.round(2).unwrap().mask, tickets.round(2).unwrap().mask);
}

#[test]
fn imp_refuses_to_resume_a_folder_of_other_settings() {
    let data = digits();
    let pretrained = net(&data, 9);
    let dir = temp_dir("imp-other-settings");
    let cfg = ImpConfig::default().rounds(1).retrain(TrainConfig::default().epochs(1).batch_size(64));
    imp(&pretrained, &data, &cfg, &dir).unwrap();
    // Another rate, another re-training regime, other weights: refused, naming what differs.
    let e = imp(&pretrained, &data, &cfg.clone().rate(0.3), &dir).unwrap_err().to_string();
    assert!(e.contains("config.rate") && e.contains("new --out"), "{e}");
    let at = cfg.clone().retrain(cfg.retrain.clone().regime(Regime::adversarial(0.1).unwrap()));
    assert!(imp(&pretrained, &data, &at, &dir).unwrap_err().to_string().contains("config.retrain"));
    assert!(imp(&net(&data, 10), &data, &cfg, &dir).unwrap_err().to_string().contains("weights_hash"));
    // More rounds of the same run continue it.
    assert_eq!(imp(&pretrained, &data, &cfg.clone().rounds(2), &dir).unwrap().len(), 2);
    // Bad values are refused before any work.
    let bad = cfg.clone().retrain(cfg.retrain.clone().regime(Regime::Adversarial(Pgd::linf(-1.0, 0.1, 3))));
    assert!(imp(&pretrained, &data, &bad, &temp_dir("imp-bad")).unwrap_err().to_string().contains("eps = -1"));
}

#[test]
fn imp_records_how_far_each_retraining_came_back_against_the_dense_network() {
    let data = digits();
    let mut pretrained = net(&data, 11);
    // A pre-trained network worth recovering to.
    train_with(&mut pretrained, &data, &TrainConfig::default().epochs(2).batch_size(64), &mut Callbacks::none(), None).unwrap();
    let dir = temp_dir("imp-recovery");
    let retrain = TrainConfig::default().epochs(1).batch_size(64).regime(Regime::adversarial(0.1).unwrap());
    let cfg = ImpConfig::default().rounds(3).retrain(retrain.clone());
    let tickets = imp(&pretrained, &data, &cfg, &dir).unwrap();
    assert!(tickets.round(1).unwrap().retrained.is_none(), "round 1 is cut from the pre-trained weights, untrained");
    let pretrained_sa = evaluate(&pretrained, &data.val, 500).unwrap().accuracy;
    // The reference: the dense network re-trained with the same recipe, by hand.
    let mut dense = pretrained.try_clone().unwrap();
    train_with(&mut dense, &data, &cfg.retrain, &mut Callbacks::none(), None).unwrap();
    let dense_sa = evaluate(&dense, &data.val, 500).unwrap().accuracy;
    for round in [2, 3] {
        let r = tickets.round(round).unwrap().retrained.expect("a re-trained round records its recovery");
        assert_eq!(r.round, round);
        assert_eq!(r.pretrained_sa, pretrained_sa, "the pre-trained network on the same split");
        assert_eq!(r.dense_sa, dense_sa, "the dense network re-trained alike");
        assert!((r.sparsity - tickets.round(round - 1).unwrap().sparsity()).abs() < 1e-12, "re-trained at the previous ticket");
        let (val_ra, dense_ra) = (r.val_ra.expect("adversarial re-training measures RA"), r.dense_ra.unwrap());
        assert!(val_ra <= r.val_sa && dense_ra <= r.dense_sa);
    }
    assert!(!dir.join("dense-train").exists(), "the reference's resume state is removed once recorded");
    // An independent re-run of round 2's re-training by hand gives the recorded SA exactly.
    let mut by_hand = pretrained.try_clone().unwrap();
    tickets.round(1).unwrap().mask.attach(&mut by_hand).unwrap();
    train_with(&mut by_hand, &data, &cfg.retrain, &mut Callbacks::none(), None).unwrap();
    let r2 = tickets.round(2).unwrap().retrained.unwrap();
    assert_eq!(evaluate(&by_hand, &data.val, 500).unwrap().accuracy, r2.val_sa);
    // A resumed run reads the records back; the sentence names the worst shortfall.
    let again = imp(&pretrained, &data, &cfg, &dir).unwrap();
    assert_eq!(again.recovery(), tickets.recovery());
    let line = again.recovery_sentence().unwrap();
    let worst = tickets.recovery().iter().map(|r| r.gap_points().0).fold(f64::INFINITY, f64::min);
    assert!(line.contains(&format!("{worst:+.1} points")) && line.contains("RA"), "{line}");
    // A standard re-training measures SA only.
    let st = imp(
        &pretrained,
        &data,
        &ImpConfig::default().rounds(2).retrain(TrainConfig::default().epochs(1).batch_size(64)),
        &temp_dir("imp-recovery-st"),
    )
    .unwrap();
    assert!(st.round(2).unwrap().retrained.unwrap().val_ra.is_none());
}
