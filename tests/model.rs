//! Networks: shapes, save / load, checkpoint imports checked against PyTorch itself.

mod common;

use common::*;
use doublewin::data::Embedded;
use doublewin::model::{Arch, Network, NetworkSpec, Normalization};
use doublewin::train::evaluate;
use tch::{Device, Kind, Tensor};

fn spec(arch: Arch, channels: i64, size: i64, classes: usize) -> NetworkSpec {
    NetworkSpec {
        arch,
        in_channels: channels,
        input_size: size,
        classes: (0..classes).map(|c| format!("c{c}")).collect(),
        normalization: Normalization { mean: vec![0.5; channels as usize], std: vec![0.25; channels as usize] },
    }
}

#[test]
fn architectures_have_torchvision_names_and_expected_sizes() {
    let r18 = Network::new(spec(Arch::resnet18(), 3, 64, 1000), Device::Cpu, 0).unwrap();
    assert_eq!(r18.num_parameters(), 11_689_512); // torchvision's resnet18
    assert_eq!(r18.prunable_names().len(), 20); // conv1 + 16 block convs + 3 downsample convs
    assert!(r18.named_tensors().iter().any(|(n, _)| n == "layer2.0.downsample.1.running_var"));
    let r50 = Network::new(spec(Arch::resnet50(), 3, 64, 1000), Device::Cpu, 0).unwrap();
    assert_eq!(r50.num_parameters(), 25_557_032); // torchvision's resnet50
    let r20 = Network::new(spec(Arch::resnet20(), 3, 32, 10), Device::Cpu, 0).unwrap();
    assert_eq!(r20.prunable_names().len(), 21);
    let y = r20.forward(&Tensor::rand([2, 3, 32, 32], (Kind::Float, Device::Cpu)), false).unwrap();
    assert_eq!(y.size(), vec![2, 10]);
    assert!(!r20.prunable_names().iter().any(|n| n.starts_with("fc.")));
    let bad = r20.forward(&Tensor::rand([2, 1, 32, 32], (Kind::Float, Device::Cpu)), false).unwrap_err().to_string();
    assert!(bad.contains("3 x H x W"), "{bad}");
    assert!(Arch::from_name("resnet21").unwrap_err().to_string().contains("6n+2"));
}

#[test]
fn save_then_load_gives_identical_outputs_and_detects_tampering() {
    let dir = temp_dir("save-load");
    for arch in [Arch::convnet(), Arch::resnet20()] {
        let net = Network::new(spec(arch.clone(), 3, 32, 10), Device::Cpu, 5).unwrap();
        // Make BN running statistics non-default so the buffers are part of the check.
        let _ = net.forward(&Tensor::rand([8, 3, 32, 32], (Kind::Float, Device::Cpu)), true).unwrap();
        let path = dir.join(format!("{}.safetensors", arch.name()));
        net.save(&path).unwrap();
        let back = Network::load(&path, Device::Cpu).unwrap();
        assert_eq!(back.spec(), net.spec());
        let x = Tensor::rand([4, 3, 32, 32], (Kind::Float, Device::Cpu));
        assert!(net.forward(&x, false).unwrap().equal(&back.forward(&x, false).unwrap()));
        assert_eq!(net.content_hash().unwrap(), back.content_hash().unwrap());
    }
    // A changed weights file no longer matches its sidecar.
    let path = dir.join("convnet[32, 64, 128].safetensors");
    let other = Network::new(spec(Arch::convnet(), 3, 32, 10), Device::Cpu, 6).unwrap();
    doublewin::model::io::write_tensors(&path, &other.named_tensors()).unwrap();
    let err = Network::load(&path, Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("content hash"), "{err}");
    let err = Network::load(dir.join("missing.safetensors"), Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("not found"), "{err}");
}

#[test]
fn new_head_keeps_the_body_and_replaces_the_classifier() {
    let net = Network::new(spec(Arch::convnet(), 1, 28, 10), Device::Cpu, 1).unwrap();
    let moved = net.with_new_head(vec!["a".into(), "b".into(), "c".into()], 9).unwrap();
    assert_eq!(moved.num_classes(), 3);
    let body = |n: &Network| n.named_tensors().into_iter().filter(|(k, _)| !k.starts_with("fc.")).collect::<Vec<_>>();
    for ((a, x), (b, y)) in body(&net).iter().zip(body(&moved)) {
        assert_eq!(a, &b);
        assert!(x.equal(&y), "{a} changed");
    }
    let fc: Vec<_> = moved.named_tensors().into_iter().filter(|(k, _)| k == "fc.weight").collect();
    assert_eq!(fc[0].1.size(), vec![3, 128]);
}

fn check_import(arch: Arch, name: &str, layout: &str) {
    let dir = temp_dir(&format!("import-{name}-{layout}"));
    run_python("torchvision_reference.py", &[dir.to_str().unwrap(), name, layout]);
    let mut s = spec(arch, 3, 64, 10);
    s.normalization = if layout == "robustness" { Normalization::identity(3) } else { Normalization::imagenet() };
    let net = Network::import(dir.join("weights.safetensors"), s, Device::Cpu).unwrap();
    if layout == "robustness" {
        // The normaliser buffers in the file replaced the identity normalisation.
        assert!((net.spec().normalization.std[2] - 0.225).abs() < 1e-6);
    }
    let reference: std::collections::HashMap<String, Tensor> =
        Tensor::read_safetensors(dir.join("reference.safetensors")).unwrap().into_iter().collect();
    let ours = net.forward(&reference["x"], false).unwrap();
    let diff = (ours - &reference["logits"]).abs().max().double_value(&[]);
    assert!(diff < 1e-5, "{name}/{layout}: max |logit difference| = {diff}");
}

#[test]
fn torchvision_resnet18_import_matches_pytorch_logits() {
    check_import(Arch::resnet18(), "resnet18", "plain");
}

#[test]
fn robustness_library_layout_import_matches_pytorch_logits() {
    check_import(Arch::resnet18(), "resnet18", "robustness");
}

#[test]
fn torchvision_resnet50_dataparallel_import_matches_pytorch_logits() {
    check_import(Arch::resnet50(), "resnet50", "module");
}

#[test]
fn import_into_the_wrong_architecture_lists_the_keys() {
    let dir = temp_dir("import-wrong");
    run_python("torchvision_reference.py", &[dir.to_str().unwrap(), "resnet18", "plain"]);
    let err = Network::import(dir.join("weights.safetensors"), spec(Arch::resnet50(), 3, 64, 10), Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("missing from the file") && err.contains("layer1.0.conv3.weight"), "{err}");
    assert!(err.contains("Shape mismatches") || err.contains("no place"), "{err}");
}

#[test]
fn a_network_is_only_evaluated_on_data_it_fits() {
    let fm = Embedded::FashionMnist.load().unwrap().1;
    let digits = Embedded::Digits.load().unwrap().1;
    let net = Network::new(NetworkSpec::for_data(Arch::convnet(), &fm).unwrap(), Device::Cpu, 0).unwrap();
    // Another task (other classes, other size): refused, not a meaningless 10%.
    let e = evaluate(&net, &digits, 500).unwrap_err().to_string();
    assert!(e.contains("8x8") && e.contains("classes"), "{e}");
    assert!(doublewin::attack::robust_evaluate(&net, &digits, &[], 500).is_err());
    // A sidecar that claims another input size is caught when the data do not match it.
    let dir = temp_dir("sidecar-size");
    let path = dir.join("net.safetensors");
    net.save(&path).unwrap();
    let side = dir.join("net.safetensors.json");
    let mut sidecar: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&side).unwrap()).unwrap();
    sidecar["spec"]["input_size"] = serde_json::json!(32);
    std::fs::write(&side, sidecar.to_string()).unwrap();
    let tampered = Network::load(&path, Device::Cpu).unwrap();
    assert!(evaluate(&tampered, &fm, 500).unwrap_err().to_string().contains("built for 32x32"));
    // A missing weights file is reported as such (not as a missing sidecar).
    let e = Network::load(dir.join("none.safetensors"), Device::Cpu).unwrap_err().to_string();
    assert!(e.contains("network file") && e.contains("not found"), "{e}");
}
