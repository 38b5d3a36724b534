//! Loss landscapes: the plane's directions, the grid's centre, masked weights, the figure.

mod common;

use common::*;
use doublewin::landscape::{landscape, Directions, LandscapeConfig, LandscapeLoss, Plane, Trajectory};
use doublewin::prelude::*;
use doublewin::prune::{global_magnitude, Mask};

/// A 50%-sparse ConvNet fine-tuned 3 epochs on digits with per-epoch checkpoints (epoch 0 =
/// before training): the trajectory, the mask, the data and the checkpoints' folder (the
/// trajectory reads them from it).
fn trained_trajectory(name: &str) -> (Trajectory, Mask, Splits, TestDir) {
    let data = Embedded::Digits.splits(0.1, 0).unwrap();
    let mut net = Network::new(NetworkSpec::for_data(Arch::convnet(), &data.train).unwrap(), Device::Cpu, 3).unwrap();
    let mask = global_magnitude(&net, &Mask::dense_for(&net).unwrap(), 0.5).unwrap();
    mask.attach(&mut net).unwrap();
    let dir = temp_dir(name);
    let saver = EpochCheckpoints::new(&dir);
    net.save(saver.path(0)).unwrap();
    let cfg = TrainConfig::default().epochs(3).lr(0.05).batch_size(64).select_best(false);
    train_with(&mut net, &data, &cfg, &mut Callbacks::none().with(saver), None).unwrap();
    (Trajectory::open(&dir, Device::Cpu).unwrap(), mask, data, dir)
}

fn flat_mask(mask: &Mask) -> Vec<f64> {
    mask.iter().flat_map(|(_, m)| Vec::<f64>::try_from(m.to_kind(Kind::Double).flatten(0, -1)).unwrap()).collect()
}

#[test]
fn pca_directions_are_orthonormal_and_zero_where_pruned() {
    let (trajectory, mask, _, _checkpoints) = trained_trajectory("landscape-pca");
    assert_eq!(trajectory.len(), 4);
    let plane = Plane::pca(&trajectory, Some(&mask)).unwrap();
    let dot = |a: &Tensor, b: &Tensor| a.dot(b).double_value(&[]);
    assert!((dot(&plane.d1, &plane.d1) - 1.0).abs() < 1e-9);
    assert!((dot(&plane.d2, &plane.d2) - 1.0).abs() < 1e-9);
    assert!(dot(&plane.d1, &plane.d2).abs() < 1e-9);
    let [a, b] = plane.explained_variance.unwrap();
    assert!(a >= b && b > 0.0 && a + b <= 1.0 + 1e-9, "explained variance {a} {b}");
    let keep = flat_mask(&mask);
    for d in [&plane.d1, &plane.d2] {
        let v = Vec::<f64>::try_from(d).unwrap();
        assert_eq!(v.len(), keep.len());
        assert!(v.iter().zip(&keep).all(|(x, k)| *k == 1.0 || *x == 0.0), "a direction moves a pruned weight");
        assert!(v.iter().zip(&keep).any(|(x, k)| *k == 1.0 && *x != 0.0));
    }
    // The last checkpoint projects onto the origin, the first one away from it.
    let last = trajectory.get(3).unwrap();
    let origin = Tensor::cat(
        &mask
            .names()
            .map(|n| last.named_tensors().into_iter().find(|t| &t.0 == n).unwrap().1.to_kind(Kind::Double).flatten(0, -1))
            .collect::<Vec<_>>(),
        0,
    );
    let (x, y) = plane.project(&origin, &last).unwrap();
    assert!(x.abs() < 1e-9 && y.abs() < 1e-9);
    let (x, y) = plane.project(&origin, &trajectory.get(0).unwrap()).unwrap();
    assert!(x.abs() + y.abs() > 1e-3);
}

#[test]
fn filter_normalized_directions_match_filter_norms_and_respect_the_mask() {
    let (trajectory, mask, _, _checkpoints) = trained_trajectory("landscape-random");
    let last = trajectory.last().unwrap();
    let plane = Plane::filter_normalized(&last, Some(&mask), 7).unwrap();
    let weights: std::collections::HashMap<String, Tensor> = last.named_tensors().into_iter().collect();
    let mut offset = 0;
    for (name, shape) in plane.names.iter().zip(&plane.shapes) {
        let len: i64 = shape.iter().product();
        let d = plane.d1.narrow(0, offset, len).reshape([shape[0], -1]);
        let w = weights[name].to_kind(Kind::Double).reshape([shape[0], -1]);
        let (dn, wn) = (
            Vec::<f64>::try_from(d.norm_scalaropt_dim(2.0, [1i64].as_slice(), false)).unwrap(),
            Vec::<f64>::try_from(w.norm_scalaropt_dim(2.0, [1i64].as_slice(), false)).unwrap(),
        );
        for (a, b) in dn.iter().zip(&wn) {
            assert!((a - b).abs() < 1e-6 * b.max(1.0), "{name}: direction filter norm {a} vs weight filter norm {b}");
        }
        offset += len;
    }
    let keep = flat_mask(&mask);
    let v = Vec::<f64>::try_from(&plane.d2).unwrap();
    assert!(v.iter().zip(&keep).all(|(x, k)| *k == 1.0 || *x == 0.0));
}

#[test]
fn grid_centre_is_the_loss_at_the_final_weights_and_the_figure_carries_the_trajectory() {
    let (trajectory, mask, data, _checkpoints) = trained_trajectory("landscape-grid");
    let last = &trajectory.last().unwrap();
    let cfg = LandscapeConfig::default().resolution(5).examples(60);
    let l = landscape("test", &trajectory, Some(&mask), &data.test, &cfg).unwrap();
    // The same stratified subset, evaluated independently of the landscape code.
    let subset = data.test.fraction(60.0 / data.test.len() as f64, 0).unwrap();
    let direct = evaluate(last, &subset, 1000).unwrap().loss;
    assert!((l.origin_loss() - direct).abs() < 1e-5, "centre {} vs loss at the final weights {direct}", l.origin_loss());
    assert!((l.final_loss - direct).abs() < 1e-5);
    assert_eq!(l.loss.len(), 5);
    assert!(l.loss.iter().flatten().all(|v| v.is_finite()));
    // The grid is not flat, and the trajectory ends at the origin.
    assert!(l.loss.iter().flatten().any(|v| (v - direct).abs() > 1e-4));
    assert_eq!(*l.trajectory.last().unwrap(), (0.0, 0.0));
    // Computing the landscape left the network's weights untouched.
    assert!((evaluate(last, &subset, 1000).unwrap().loss - direct).abs() < 1e-12);
    assert!(mask.holds_in(last).unwrap());
    // The figure's SVG carries the trajectory it was drawn from.
    let series = Figure::series_in_svg(&l.figure().unwrap().svg()).unwrap();
    let drawn = series.iter().find(|s| s.name.starts_with("trajectory")).unwrap();
    assert_eq!(drawn.points, l.trajectory);

    // Adversarial loss: the centre is still the loss at the final weights, and it is higher.
    let adv = LandscapeConfig {
        loss: LandscapeLoss::Adversarial { eps: 0.1, steps: 2 },
        directions: Directions::FilterNormalizedRandom { seed: 1 },
        ..cfg
    };
    let a = landscape("adv", &trajectory, Some(&mask), &data.test, &adv).unwrap();
    assert!((a.origin_loss() - a.final_loss).abs() < 1e-6);
    assert!(a.final_loss > direct);
    assert!(a.explained_variance.is_none());
}

#[test]
fn bad_landscape_input_is_refused_with_a_fix() {
    let (trajectory, mask, data, _checkpoints) = trained_trajectory("landscape-bad");
    let even = LandscapeConfig::default().resolution(4);
    let e = landscape("x", &trajectory, Some(&mask), &data.test, &even).unwrap_err().to_string();
    assert!(e.contains("odd"), "{e}");
    let two = Trajectory::from_networks(vec![trajectory.get(0).unwrap(), trajectory.get(1).unwrap()]).unwrap();
    let e = landscape("x", &two, Some(&mask), &data.test, &LandscapeConfig::default().resolution(3)).unwrap_err().to_string();
    assert!(e.contains("at least 3"), "{e}");
    assert!(Trajectory::open(temp_dir("landscape-empty"), Device::Cpu).is_err());
    // A landscape of another task's data is refused.
    let fm = Embedded::FashionMnist.load().unwrap().1;
    assert!(landscape("x", &trajectory, Some(&mask), &fm, &LandscapeConfig::default().resolution(3))
        .unwrap_err()
        .to_string()
        .contains("does not fit"));
}

#[test]
fn a_trajectory_past_a_thousand_epochs_loads_in_epoch_order_and_ends_at_the_grid_centre() {
    // A one-layer ConvNet of 4 filters on a few digits: 1,001 cheap epochs, every checkpoint saved.
    let data = Embedded::Digits.splits(0.1, 0).unwrap().with_train_fraction(0.05, 0).unwrap();
    let arch = Arch::ConvNet { widths: vec![4] };
    let mut net = Network::new(NetworkSpec::for_data(arch, &data.train).unwrap(), Device::Cpu, 1).unwrap();
    let dir = temp_dir("landscape-1001");
    let saver = EpochCheckpoints::new(&dir);
    net.save(saver.path(0)).unwrap();
    let cfg =
        TrainConfig::default().epochs(1001).lr(0.01).batch_size(128).select_best(false).augment(doublewin::train::AugmentChoice::None);
    train_with(&mut net, &data, &cfg, &mut Callbacks::none().with(saver), None).unwrap();
    let trajectory = Trajectory::open(&dir, Device::Cpu).unwrap();
    assert_eq!(trajectory.epochs(), (0..=1001).collect::<Vec<_>>().as_slice(), "numeric order: 1000 after 999");
    assert_eq!(trajectory.last().unwrap().content_hash().unwrap(), net.content_hash().unwrap());
    // The cap keeps at most 41 checkpoints, the first and the last among them.
    let kept = EpochCheckpoints::spaced(1001, 41);
    assert_eq!((kept.len(), kept[0], kept[40]), (41, 0, 1001));
    let capped = temp_dir("landscape-1001-capped");
    for &e in &kept {
        std::fs::copy(dir.join(format!("epoch-{e:06}.safetensors")), capped.join(format!("epoch-{e}.safetensors"))).unwrap();
        std::fs::copy(dir.join(format!("epoch-{e:06}.safetensors.json")), capped.join(format!("epoch-{e}.safetensors.json"))).unwrap();
    }
    let trajectory = Trajectory::open(&capped, Device::Cpu).unwrap();
    assert_eq!(trajectory.epochs(), kept.as_slice(), "unpadded names sort by number too");
    let l = landscape("long", &trajectory, None, &data.test, &LandscapeConfig::default().resolution(3).examples(64)).unwrap();
    let subset = data.test.fraction(64.0 / data.test.len() as f64, 0).unwrap();
    assert!((l.origin_loss() - evaluate(&net, &subset, 1000).unwrap().loss).abs() < 1e-5, "the grid centre is the final weights");
    assert_eq!(l.epochs, kept);
}
