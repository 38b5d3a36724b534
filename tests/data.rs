//! Loaders on real files and on corrupt ones; splits and fractions.

mod common;

use common::*;
use doublewin::data::cifar::{load_cifar, Cifar};
use doublewin::data::folder::load_image_folder;
use doublewin::data::idx::{encode_idx_u8, load_idx_pair};
use doublewin::data::svhn::load_svhn;
use doublewin::data::{embedded, DatasetMeta, Embedded, Splits};
use std::io::Write;
use std::path::Path;

fn meta(name: &str) -> DatasetMeta {
    DatasetMeta { name: name.into(), provenance: "test".into(), hflip: false }
}

fn pixels(t: &tch::Tensor) -> Vec<u8> {
    Vec::<u8>::try_from(t.flatten(0, -1)).unwrap()
}

/// CHW bytes of a PNG decoded by the image crate.
fn png_chw(path: &Path) -> Vec<u8> {
    let rgb = image::open(path).unwrap().to_rgb8();
    (0..3).flat_map(|c| rgb.as_raw().iter().skip(c).step_by(3).copied().collect::<Vec<_>>()).collect()
}

#[test]
fn embedded_datasets_load_with_pinned_counts_and_classes() {
    let (train, test) = Embedded::FashionMnist.load().unwrap();
    assert_eq!((train.len(), test.len()), (60_000, 10_000));
    assert_eq!(train.image_shape(), [1, 28, 28]);
    assert_eq!(train.class_counts().unwrap(), vec![6000; 10]);
    assert_eq!(train.classes()[9], "Ankle boot");
    let (train, test) = Embedded::Digits.load().unwrap();
    assert_eq!((train.len(), test.len(), train.image_shape()), (1433, 364, [1, 8, 8]));
    let (train, _) = Embedded::AnimalMnist.load().unwrap();
    assert_eq!(train.class_counts().unwrap(), vec![800; 10]);
    let (train, test) = Embedded::Mnist.load().unwrap();
    assert_eq!(train.len() + test.len(), 10_000);
}

#[test]
fn datasets_at_8x8_are_the_area_averages_of_the_originals() {
    for (small, original) in [(Embedded::FashionMnist8, Embedded::FashionMnist), (Embedded::Mnist8, Embedded::Mnist)] {
        let (big, big_test) = original.load().unwrap();
        let (train, test) = small.load().unwrap();
        assert_eq!((train.len(), test.len()), (big.len(), big_test.len()));
        assert_eq!((train.image_shape(), train.classes()), ([1, 8, 8], big.classes()));
        assert_eq!(train.label_vec().unwrap(), big.label_vec().unwrap());
        assert!(train.name().starts_with(small.name()) && train.meta().provenance.contains("8x8"));
        // Adaptive average pooling's windows, computed here by hand: rows floor(28i/8) to
        // ceil(28(i+1)/8), the mean rounded half up.
        for k in [0i64, 1, 4_321] {
            let x = pixels(&big.images().get(k));
            let y = pixels(&train.images().get(k));
            for i in 0..8usize {
                for j in 0..8usize {
                    let (r0, r1, c0, c1) = (28 * i / 8, (28 * (i + 1)).div_ceil(8), 28 * j / 8, (28 * (j + 1)).div_ceil(8));
                    let sum: u32 = (r0..r1).flat_map(|r| (c0..c1).map(move |c| (r, c))).map(|(r, c)| u32::from(x[r * 28 + c])).sum();
                    let mean = f64::from(sum) / ((r1 - r0) * (c1 - c0)) as f64;
                    assert!((f64::from(y[i * 8 + j]) - mean).abs() <= 0.5 + 1e-4, "{small} image {k} pixel ({i},{j})");
                }
            }
        }
    }
    assert_eq!(Embedded::from_name("mnist-8x8").unwrap(), Embedded::Mnist8);
}

#[test]
fn embedded_loader_rejects_a_modified_file_naming_it() {
    let cache = temp_dir("embedded-corrupt");
    let src = embedded::data_dir().join("digits");
    std::fs::create_dir_all(cache.join("digits")).unwrap();
    for f in std::fs::read_dir(&src).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, cache.join("digits").join(f.file_name().unwrap())).unwrap();
    }
    assert!(Embedded::Digits.load_from(&cache).is_ok());
    let victim = cache.join("digits/train-images.idx");
    let mut bytes = std::fs::read(&victim).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&victim, bytes).unwrap();
    let err = Embedded::Digits.load_from(&cache).unwrap_err().to_string();
    assert!(err.contains("train-images.idx") && err.contains("SHA-256"), "{err}");
    std::fs::remove_file(&victim).unwrap();
    let err = Embedded::Digits.load_from(&cache).unwrap_err().to_string();
    assert!(err.contains("not found") && err.contains("setup.sh"), "{err}");
}

#[test]
fn idx_loader_reads_raw_and_gzip_and_reports_damage() {
    let dir = temp_dir("idx");
    let (_, test) = Embedded::Mnist.load().unwrap();
    let first = test.subset(&(0..50).collect::<Vec<_>>(), "mnist50").unwrap();
    let px = pixels(first.images());
    let labels: Vec<u8> = first.label_vec().unwrap().iter().map(|&l| l as u8).collect();
    let img = encode_idx_u8(&[50, 28, 28], &px);
    let lab = encode_idx_u8(&[50], &labels);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&img).unwrap();
    std::fs::write(dir.join("img.idx.gz"), gz.finish().unwrap()).unwrap();
    std::fs::write(dir.join("img.idx"), &img).unwrap();
    std::fs::write(dir.join("lab.idx"), &lab).unwrap();
    let classes: Vec<String> = (0..10).map(|d| d.to_string()).collect();
    for name in ["img.idx", "img.idx.gz"] {
        let d = load_idx_pair(&dir.join(name), &dir.join("lab.idx"), classes.clone(), meta("m")).unwrap();
        assert_eq!(pixels(d.images()), px);
        assert_eq!(d.label_vec().unwrap(), first.label_vec().unwrap());
    }
    std::fs::write(dir.join("short.idx"), &img[..img.len() - 10]).unwrap();
    let err = load_idx_pair(&dir.join("short.idx"), &dir.join("lab.idx"), classes.clone(), meta("m")).unwrap_err().to_string();
    assert!(err.contains("short.idx") && err.contains("truncated"), "{err}");
    std::fs::write(dir.join("bad.gz"), [0x1f, 0x8b, 8, 0, 1, 2, 3]).unwrap();
    let err = load_idx_pair(&dir.join("bad.gz"), &dir.join("lab.idx"), classes.clone(), meta("m")).unwrap_err().to_string();
    assert!(err.contains("bad.gz") && err.contains("gzip"), "{err}");
    let err = load_idx_pair(&dir.join("img.idx"), &dir.join("img.idx"), classes, meta("m")).unwrap_err().to_string();
    assert!(err.contains("img.idx"), "{err}");
}

fn write_cifar(dir: &Path, kind: Cifar, samples: &[(std::path::PathBuf, u8)]) {
    std::fs::create_dir_all(dir).unwrap();
    let record = |(p, l): &(std::path::PathBuf, u8)| {
        let mut r = match kind {
            Cifar::Ten => vec![*l],
            Cifar::Hundred => vec![0, *l],
        };
        r.extend(png_chw(p));
        r
    };
    let (names_file, train_files, test_file, n_classes): (&str, Vec<String>, &str, usize) = match kind {
        Cifar::Ten => ("batches.meta.txt", (1..=5).map(|i| format!("data_batch_{i}.bin")).collect(), "test_batch.bin", 10),
        Cifar::Hundred => ("fine_label_names.txt", vec!["train.bin".into()], "test.bin", 100),
    };
    let per = 15 / train_files.len();
    for (i, f) in train_files.iter().enumerate() {
        std::fs::write(dir.join(f), samples[i * per..(i + 1) * per].iter().flat_map(record).collect::<Vec<u8>>()).unwrap();
    }
    std::fs::write(dir.join(test_file), samples[15..].iter().flat_map(record).collect::<Vec<u8>>()).unwrap();
    std::fs::write(dir.join(names_file), (0..n_classes).map(|c| format!("class{c}\n")).collect::<String>()).unwrap();
}

#[test]
fn cifar_binary_loader_matches_the_source_images() {
    for (kind, prefix) in [(Cifar::Ten, "cifar10"), (Cifar::Hundred, "cifar100")] {
        let samples = foolbox_samples(prefix);
        assert_eq!(samples.len(), 20);
        let dir = temp_dir(prefix);
        write_cifar(&dir, kind, &samples);
        let (train, test) = load_cifar(kind, &dir).unwrap();
        assert_eq!((train.len(), test.len(), train.num_classes()), (15, 5, if kind == Cifar::Ten { 10 } else { 100 }));
        let expected: Vec<u8> = samples[..15].iter().flat_map(|(p, _)| png_chw(p)).collect();
        assert_eq!(pixels(train.images()), expected);
        assert_eq!(test.label_vec().unwrap(), samples[15..].iter().map(|(_, l)| *l as i64).collect::<Vec<_>>());
        // A truncated record is reported with the file name.
        let f = dir.join(if kind == Cifar::Ten { "test_batch.bin" } else { "test.bin" });
        let bytes = std::fs::read(&f).unwrap();
        std::fs::write(&f, &bytes[..bytes.len() - 7]).unwrap();
        let err = load_cifar(kind, &dir).unwrap_err().to_string();
        assert!(err.contains("test") && err.contains("records"), "{err}");
    }
}

#[test]
fn svhn_mat_loader_reads_scipy_files_compressed_and_not() {
    let dir = temp_dir("svhn");
    run_python("svhn_mat.py", &[foolbox_dir().to_str().unwrap(), dir.to_str().unwrap()]);
    let (train, test) = load_svhn(&dir).unwrap();
    assert_eq!((train.len(), test.len(), train.image_shape()), (12, 8, [3, 32, 32]));
    let samples = foolbox_samples("cifar10");
    assert_eq!(pixels(train.images()), samples[..12].iter().flat_map(|(p, _)| png_chw(p)).collect::<Vec<u8>>());
    // Label 10 in the file is digit 0.
    assert_eq!(test.label_vec().unwrap(), samples[12..].iter().map(|(_, l)| *l as i64).collect::<Vec<_>>());
    let f = dir.join("train_32x32.mat");
    let bytes = std::fs::read(&f).unwrap();
    std::fs::write(&f, &bytes[..bytes.len() / 2]).unwrap();
    let err = load_svhn(&dir).unwrap_err().to_string();
    assert!(err.contains("train_32x32.mat"), "{err}");
    std::fs::write(&f, b"MATLAB 5.0 MAT-file, but not really").unwrap();
    assert!(load_svhn(&dir).unwrap_err().to_string().contains("train_32x32.mat"));
}

#[test]
fn image_folder_loader_matches_the_idx_data() {
    // foolbox's Fashion-MNIST samples are the first 20 test images: the folder loader must
    // reproduce the IDX loader's pixels exactly.
    let root = temp_dir("folder");
    let samples = foolbox_samples("fashionMNIST");
    for (i, (p, l)) in samples.iter().enumerate() {
        let class = root.join(format!("c{l}"));
        std::fs::create_dir_all(&class).unwrap();
        std::fs::copy(p, class.join(format!("{i:02}.png"))).unwrap();
    }
    let d = load_image_folder(&root, None, true).unwrap();
    assert_eq!((d.len(), d.image_shape()), (20, [1, 28, 28]));
    let (_, test) = Embedded::FashionMnist.load().unwrap();
    // The folder orders by class then file name; compare each image with its IDX twin.
    let labels = d.label_vec().unwrap();
    let mut order: Vec<(u8, usize)> = samples.iter().enumerate().map(|(i, (_, l))| (*l, i)).collect();
    order.sort();
    for (k, (l, i)) in order.iter().enumerate() {
        assert_eq!(d.classes()[labels[k] as usize], format!("c{l}"));
        assert_eq!(pixels(&d.images().get(k as i64)), pixels(&test.images().get(*i as i64)), "image {i}");
    }
    std::fs::write(root.join("c0/broken.png"), b"\x89PNG not really").unwrap();
    let err = load_image_folder(&root, None, true).unwrap_err().to_string();
    assert!(err.contains("broken.png"), "{err}");
}

#[test]
fn fractions_are_exact_stratified_deterministic_and_nested() {
    let (train, _) = Embedded::FashionMnist.load().unwrap();
    for (f, per_class) in [(1.0, 6000), (0.1, 600), (0.01, 60)] {
        let sub = train.fraction(f, 7).unwrap();
        assert_eq!(sub.class_counts().unwrap(), vec![per_class; 10], "fraction {f}");
    }
    let a = train.fraction(0.01, 7).unwrap();
    let b = train.fraction(0.01, 7).unwrap();
    let c = train.fraction(0.01, 8).unwrap();
    assert!(a.images().equal(b.images()) && a.labels().equal(b.labels()));
    assert!(!a.images().equal(c.images()));
    // The 1% subset lies inside the 10% subset of the same seed.
    let ten = train.fraction(0.1, 7).unwrap();
    let key = |d: &doublewin::data::Dataset| -> std::collections::HashSet<Vec<u8>> {
        (0..d.len() as i64).map(|i| pixels(&d.images().get(i))).collect()
    };
    assert!(key(&a).is_subset(&key(&ten)));
    let err = train.fraction(0.0, 1).unwrap_err().to_string();
    assert!(err.contains("fraction 0"), "{err}");
}

#[test]
fn validation_split_is_held_out_stratified_and_disjoint() {
    let (train, test) = Embedded::Digits.load().unwrap();
    let s = Splits::new(train.clone(), test, 0.1, 3).unwrap();
    assert_eq!(s.train.len() + s.val.len(), train.len());
    let counts = s.val.class_counts().unwrap();
    let full = train.class_counts().unwrap();
    for (v, n) in counts.iter().zip(&full) {
        assert_eq!(*v, ((*n as f64) * 0.1).round() as usize);
    }
    let key = |d: &doublewin::data::Dataset| -> std::collections::HashSet<Vec<u8>> {
        (0..d.len() as i64).map(|i| pixels(&d.images().get(i))).collect()
    };
    // Digits has a few duplicate images; require near-disjointness by content and exact by count.
    assert!(key(&s.train).intersection(&key(&s.val)).count() <= 3);
}

#[test]
fn batches_cover_the_data_once_and_augmentation_keeps_shapes() {
    let (train, _) = Embedded::Digits.load().unwrap();
    let aug = doublewin::data::Augment::standard(&train);
    assert_eq!((aug.crop_padding, aug.hflip), (1, false));
    let mut seen = 0;
    let mut label_sum = 0;
    for b in train.batches(100, Some(1), aug, tch::Device::Cpu).unwrap() {
        let b = b.unwrap();
        assert_eq!(&b.images.size()[1..], &[1, 8, 8]);
        let max = b.images.max().double_value(&[]);
        assert!((0.0..=1.0).contains(&max));
        seen += b.labels.size()[0];
        label_sum += b.labels.sum(tch::Kind::Int64).int64_value(&[]);
    }
    assert_eq!(seen as usize, train.len());
    assert_eq!(label_sum, train.labels().sum(tch::Kind::Int64).int64_value(&[]));
}
