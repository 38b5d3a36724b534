//! Loss landscapes: the plane's directions, the grid's centre, masked weights, the figure.

mod common;

use common::*;
use doublewin::landscape::{landscape, load_trajectory, Directions, LandscapeConfig, LandscapeLoss, Plane};
use doublewin::prelude::*;
use doublewin::prune::{global_magnitude, Mask};

/// A 50%-sparse ConvNet fine-tuned 3 epochs on digits with per-epoch checkpoints (epoch 0 =
/// before training): the trajectory, the mask and the data.
fn trained_trajectory(name: &str) -> (Vec<Network>, Mask, Splits) {
    let data = Embedded::Digits.splits(0.1, 0).unwrap();
    let mut net = Network::new(NetworkSpec::for_data(Arch::convnet(), &data.train).unwrap(), Device::Cpu, 3).unwrap();
    let mask = global_magnitude(&net, &Mask::dense_for(&net).unwrap(), 0.5).unwrap();
    mask.attach(&mut net).unwrap();
    let dir = temp_dir(name);
    let saver = EpochCheckpoints::new(&dir);
    net.save(saver.path(0)).unwrap();
    let cfg = TrainConfig::default().epochs(3).lr(0.05).batch_size(64).select_best(false);
    train_with(&mut net, &data, &cfg, &mut Callbacks::none().with(saver), None).unwrap();
    (load_trajectory(&dir, Device::Cpu).unwrap(), mask, data)
}

fn flat_mask(mask: &Mask) -> Vec<f64> {
    mask.iter().flat_map(|(_, m)| Vec::<f64>::try_from(m.to_kind(Kind::Double).flatten(0, -1)).unwrap()).collect()
}

#[test]
fn pca_directions_are_orthonormal_and_zero_where_pruned() {
    let (trajectory, mask, _) = trained_trajectory("landscape-pca");
    assert_eq!(trajectory.len(), 4);
    let plane = Plane::pca(trajectory.last().unwrap(), &trajectory, Some(&mask)).unwrap();
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
    let origin = Tensor::cat(
        &mask
            .names()
            .map(|n| trajectory[3].named_tensors().into_iter().find(|t| &t.0 == n).unwrap().1.to_kind(Kind::Double).flatten(0, -1))
            .collect::<Vec<_>>(),
        0,
    );
    let (x, y) = plane.project(&origin, &trajectory[3]).unwrap();
    assert!(x.abs() < 1e-9 && y.abs() < 1e-9);
    let (x, y) = plane.project(&origin, &trajectory[0]).unwrap();
    assert!(x.abs() + y.abs() > 1e-3);
}

#[test]
fn filter_normalized_directions_match_filter_norms_and_respect_the_mask() {
    let (trajectory, mask, _) = trained_trajectory("landscape-random");
    let last = trajectory.last().unwrap();
    let plane = Plane::filter_normalized(last, Some(&mask), 7).unwrap();
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
    let (trajectory, mask, data) = trained_trajectory("landscape-grid");
    let last = trajectory.last().unwrap();
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
    let (trajectory, mask, data) = trained_trajectory("landscape-bad");
    let even = LandscapeConfig::default().resolution(4);
    let e = landscape("x", &trajectory, Some(&mask), &data.test, &even).unwrap_err().to_string();
    assert!(e.contains("odd"), "{e}");
    let e = landscape("x", &trajectory[..2], Some(&mask), &data.test, &LandscapeConfig::default().resolution(3)).unwrap_err().to_string();
    assert!(e.contains("at least 3"), "{e}");
    assert!(load_trajectory(temp_dir("landscape-empty"), Device::Cpu).is_err());
}
