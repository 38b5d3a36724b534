//! Benchmarks (`doublewin bench`, `cargo bench`): the project's hot paths timed side by side
//! with a PyTorch peer (`crates/bench/peer.py`, eager PyTorch written the way practitioners write it)
//! in one run on one machine, with the same thread count, shapes, seeds, weights and data.
//!
//! This module owns the workloads (PGD-10 attack throughput, PGD-10 adversarial training of a
//! 90%-sparse masked network, FGSM-RS fast adversarial training, one global magnitude pruning
//! step over ResNet-50's conv weights, SA + RA evaluation with PGD-20), the timing (warm-up,
//! repeats, median and min/max), the large-matmul FLOP/s peak measured in the same run, FLOP
//! counts from layer shapes, the exchange with the peer (weights, masks and data written as
//! safetensors, results read back as JSON) and the report ([`BenchReport`], rendered as a
//! Markdown or HTML table through [`Table`]).

use doublewin::attack::{robust_evaluate, Attack, AttackSpec, AutoAttack, Fgsm, Norm, Pgd};
use doublewin::data::{Dataset, DatasetMeta, Embedded};
use doublewin::display::{evcxr_emit, Table};
use doublewin::error::{Error, Result};
use doublewin::model::{Arch, Network, NetworkSpec, Normalization, Stem};
use doublewin::prune::{strategy, Mask};
use doublewin::train::{train_step, Regime, Sgd, SgdConfig};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tch::{Device, Kind, Tensor};

/// The report's prose, kept as Markdown files beside this crate's sources.
const METHOD: &str = include_str!("../method.md");
const ANALYSIS: &str = include_str!("../analysis.md");
/// Whole-study and end-to-end figures measured outside the bench run (workers, AutoAttack).
const STUDIES: &str = include_str!("../studies.md");

mod peer;

use peer::{python, workspace_root, Peer, PeerOutcome, PeerWorkload};

/// Every workload id, in report order. `--only` selects those containing a given text.
pub const WORKLOADS: [&str; 18] = [
    "pgd-convnet",
    "pgd-resnet18",
    "apgd-ce-convnet",
    "apgd-ce-resnet18",
    "autoattack-fast-convnet",
    "autoattack-fast-resnet18",
    "at-sparse-convnet",
    "at-sparse-resnet18",
    "at-sparse-mul-convnet",
    "at-sparse-mul-resnet18",
    "fast-convnet",
    "fast-resnet18",
    "prune-resnet50",
    "eval-convnet",
    "eval-resnet18",
    "seeds-loop-convnet",
    "seeds-vmap-convnet",
    "seeds-grouped-convnet",
];

/// What to run and how often.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchConfig {
    /// Short mode: tiny batches and repeats, to check that everything still works (no timing
    /// value in it).
    pub quick: bool,
    /// Timed runs per workload and side (median and min/max over them).
    pub repeats: usize,
    /// Untimed runs before the timed ones.
    pub warmup: usize,
    /// Run only workloads whose id contains one of these texts (empty: all).
    pub only: Vec<String>,
    /// Run the PyTorch peer.
    pub peer: bool,
    /// Intra-op threads for both sides (0: libtorch's current setting).
    pub threads: usize,
    pub seed: u64,
    /// Where the exchange files for the peer go.
    pub workdir: PathBuf,
    /// The Python interpreter for the peer (default: $DOUBLEWIN_PYTHON, $VIRTUAL_ENV/bin/python, the
    /// project's .venv, python3).
    pub python: Option<PathBuf>,
    /// Whole passes over the workloads, each pairing our runs with the peer's run by run; the
    /// timed runs and pairs of all passes are pooled (more pairs, spread over more minutes).
    #[serde(default = "one_round")]
    pub rounds: usize,
    /// Also time a notebook's first result in a fresh kernel session, cold and warm
    /// (`scripts/time_first_result.sh`, a few minutes: the cold session compiles tch).
    #[serde(default)]
    pub first_result: bool,
}

fn one_round() -> usize {
    1
}

impl Default for BenchConfig {
    fn default() -> Self {
        BenchConfig {
            quick: false,
            repeats: 5,
            warmup: 1,
            only: Vec::new(),
            peer: true,
            threads: 0,
            seed: 0,
            workdir: std::env::temp_dir().join(format!("doublewin-bench-{}", std::process::id())),
            python: None,
            rounds: 1,
            first_result: false,
        }
    }
}

impl BenchConfig {
    /// The short mode: one warm-up-free run of each workload on tiny batches.
    pub fn quick() -> BenchConfig {
        BenchConfig { quick: true, repeats: 1, warmup: 0, ..BenchConfig::default() }
    }

    fn selected(&self, id: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|o| id.contains(o.as_str()))
    }

    fn check(&self) -> Result<()> {
        if self.repeats == 0 {
            return Err(Error::invalid("0 repeats", "use --repeats 1 or more"));
        }
        if let Some(o) = self.only.iter().find(|o| !WORKLOADS.iter().any(|w| w.contains(o.as_str()))) {
            return Err(Error::invalid(format!("no workload matches '{o}'"), format!("use a part of one of: {}", WORKLOADS.join(", "))));
        }
        Ok(())
    }
}

/// Shapes and counts of one mode (full or quick).
#[derive(Debug, Clone, Copy)]
struct Sizes {
    convnet_batch: i64,
    resnet_batch: i64,
    /// Training steps per timed run (ConvNet, ResNet-18).
    train_steps: usize,
    resnet_train_steps: usize,
    eval_convnet: i64,
    eval_resnet: i64,
    eval_batch: usize,
    matmul: i64,
    /// Standard-training steps that give the ConvNet non-trivial accuracy before the benchmark.
    pretrain_steps: usize,
    /// Iterations of APGD-CE and APGD-T (ConvNet, ResNet-18): AutoAttack uses 100.
    apgd_iters: usize,
    apgd_iters_resnet: usize,
}

impl Sizes {
    fn of(quick: bool) -> Sizes {
        if quick {
            Sizes {
                convnet_batch: 16,
                resnet_batch: 2,
                train_steps: 1,
                resnet_train_steps: 1,
                eval_convnet: 32,
                eval_resnet: 4,
                eval_batch: 16,
                matmul: 256,
                pretrain_steps: 5,
                apgd_iters: 5,
                apgd_iters_resnet: 2,
            }
        } else {
            Sizes {
                convnet_batch: 128,
                resnet_batch: 16,
                train_steps: 2,
                resnet_train_steps: 1,
                eval_convnet: 512,
                eval_resnet: 64,
                eval_batch: 256,
                matmul: 2048,
                pretrain_steps: 60,
                apgd_iters: 100,
                apgd_iters_resnet: 20,
            }
        }
    }
}

/// Wall-clock seconds of the timed runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timing {
    pub seconds: Vec<f64>,
}

impl Timing {
    fn sorted(&self) -> Vec<f64> {
        let mut v = self.seconds.clone();
        v.sort_by(f64::total_cmp);
        v
    }
    pub fn median(&self) -> f64 {
        let v = self.sorted();
        match v.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => v[n / 2],
            n => 0.5 * (v[n / 2 - 1] + v[n / 2]),
        }
    }
    pub fn min(&self) -> f64 {
        self.sorted().first().copied().unwrap_or(f64::NAN)
    }
    pub fn max(&self) -> f64 {
        self.sorted().last().copied().unwrap_or(f64::NAN)
    }
}

/// One side's measurement of a workload: its timings and what it computed (for the
/// equal-results check).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Side {
    pub timing: Timing,
    /// The workload's result in words (accuracy, loss, pruned count, ...).
    pub outcome: String,
    /// The same as numbers (accuracies in %, losses), compared between the sides.
    #[serde(default)]
    pub values: BTreeMap<String, f64>,
}

/// One workload, both sides.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkloadResult {
    pub id: String,
    pub description: String,
    /// Images (or weights, for pruning) processed per run.
    pub items_per_run: f64,
    pub unit: String,
    /// Floating-point operations per run counted from the layer shapes (None where not counted).
    pub flops_per_run: Option<f64>,
    pub ours: Side,
    pub peer: Option<Side>,
    /// Whether both sides computed the same thing, in words.
    pub agreement: String,
    /// Peer time over our time of each pair of runs (one of ours and one of the peer's, back to
    /// back), over all rounds: a slow phase of a shared machine falls on both sides of a ratio.
    #[serde(default)]
    pub paired_ratios: Vec<f64>,
}

impl WorkloadResult {
    /// Items per second at the median run time.
    pub fn throughput(side: &Side, items: f64) -> f64 {
        items / side.timing.median()
    }
    /// The issue's target ratio: 2x for pruning, 1.2x for the small ConvNet, 1.0x for ResNet-18.
    pub fn target(&self) -> f64 {
        if self.id.starts_with("prune") {
            2.0
        } else if self.id.ends_with("convnet") {
            1.2
        } else {
            1.0
        }
    }
    /// Peer time over our time: > 1 means the project is faster. The median of the paired
    /// ratios (each of our runs with the peer's run next to it); without pairs, the ratio of the
    /// medians.
    pub fn ratio(&self) -> Option<f64> {
        let p = self.peer.as_ref()?;
        Some(if self.paired_ratios.is_empty() { p.timing.median() / self.ours.timing.median() } else { self.paired_ratios().median() })
    }
    /// The paired ratios' [min, max] (None with fewer than two pairs).
    pub fn ratio_range(&self) -> Option<(f64, f64)> {
        let t = self.paired_ratios();
        (self.peer.is_some() && t.seconds.len() > 1).then(|| (t.min(), t.max()))
    }
    fn paired_ratios(&self) -> Timing {
        Timing { seconds: self.paired_ratios.clone() }
    }
    /// Achieved FLOP/s at the median.
    pub fn flops_per_second(&self, side: &Side) -> Option<f64> {
        self.flops_per_run.map(|f| f / side.timing.median())
    }
}

/// The machine a report was measured on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub threads: usize,
    pub device: String,
    pub doublewin: String,
    pub libtorch: String,
    /// From the peer (empty without it).
    pub torch: String,
    pub torchvision: String,
    pub python: String,
}

/// Everything a benchmark run measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchReport {
    pub config: BenchConfig,
    pub machine: Machine,
    /// FLOP/s of a large f32 matmul (best of the runs), measured by this process in the same run.
    pub matmul_peak: f64,
    pub matmul_size: i64,
    pub results: Vec<WorkloadResult>,
    /// Peer per-op profile lines (where the peer was asked for one), by workload.
    pub notes: Vec<String>,
    /// (kernel session, seconds to the first result) when `first_result` was asked for.
    #[serde(default)]
    pub first_result: Vec<(String, f64)>,
}

fn fmt_rate(x: f64) -> String {
    if !x.is_finite() {
        "-".into()
    } else if x >= 100.0 {
        format!("{x:.0}")
    } else if x >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

fn fmt_ms(s: f64) -> String {
    fmt_rate(1e3 * s)
}

impl BenchReport {
    /// The results table: per side, throughput at the median and the run time's median
    /// [min, max]; the ratio peer time / our time (> 1 means doublewin is faster); achieved
    /// GFLOP/s and its share of the matmul peak; what each side computed.
    pub fn table(&self) -> Table {
        let mut t = Table::new(
            format!(
                "doublewin vs PyTorch eager ({} threads, {}{} timed runs after {} warm-up{}); ratio = peer time / doublewin time, > 1 means doublewin is faster{}",
                self.machine.threads,
                if self.config.rounds > 1 { format!("{} rounds of ", self.config.rounds) } else { String::new() },
                self.config.repeats,
                self.config.warmup,
                if self.config.quick { ", QUICK MODE: not a measurement" } else { "" },
                if self.config.peer { "; ratio = median [min, max] over pairs of runs, one of each side back to back" } else { "" }
            ),
            &[
                "workload",
                "doublewin /s",
                "doublewin ms/run median [min, max]",
                "peer /s",
                "peer ms/run median [min, max]",
                "ratio",
                "target",
                "doublewin GFLOP/s (% peak)",
                "peer GFLOP/s (% peak)",
                "results (doublewin | peer)",
            ],
        );
        let peak = self.matmul_peak;
        for r in &self.results {
            let side_cells = |s: Option<&Side>| -> (String, String, String) {
                match s {
                    None => ("-".into(), "-".into(), "-".into()),
                    Some(s) => {
                        let rate = format!("{} {}", fmt_rate(WorkloadResult::throughput(s, r.items_per_run)), r.unit);
                        let ms = format!("{} [{}, {}]", fmt_ms(s.timing.median()), fmt_ms(s.timing.min()), fmt_ms(s.timing.max()));
                        let fl = match r.flops_per_second(s) {
                            Some(f) => format!("{:.1} ({:.0}%)", f / 1e9, 100.0 * f / peak),
                            None => "-".into(),
                        };
                        (rate, ms, fl)
                    }
                }
            };
            let (our_rate, our_ms, our_fl) = side_cells(Some(&r.ours));
            let (peer_rate, peer_ms, peer_fl) = side_cells(r.peer.as_ref());
            let ratio = match (r.ratio(), r.ratio_range()) {
                (Some(x), Some((lo, hi))) => format!("{x:.2}x [{lo:.2}, {hi:.2}]"),
                (Some(x), None) => format!("{x:.2}x"),
                _ => "-".into(),
            };
            let results = match &r.peer {
                Some(p) => format!("{} \\| {}; {}", r.ours.outcome, p.outcome, r.agreement),
                None => r.ours.outcome.clone(),
            };
            let target = match r.ratio() {
                Some(x) if x >= r.target() => format!("{:.1}x met", r.target()),
                Some(_) => format!("{:.1}x MISSED", r.target()),
                None => format!("{:.1}x", r.target()),
            };
            t.push(vec![
                format!("{}: {}", r.id, r.description),
                our_rate,
                our_ms,
                peer_rate,
                peer_ms,
                ratio,
                target,
                our_fl,
                peer_fl,
                results,
            ]);
        }
        t
    }

    /// The machine and versions, as a small table.
    pub fn machine_table(&self) -> Table {
        let m = &self.machine;
        let mut t = Table::new("Machine and versions", &["what", "value"]);
        let rows = [
            ("CPU", m.cpu.clone()),
            ("cores (available to the process)", m.cores.to_string()),
            ("threads used (both sides)", m.threads.to_string()),
            ("device", m.device.clone()),
            ("doublewin", m.doublewin.clone()),
            ("libtorch (tch 0.26)", m.libtorch.clone()),
            ("torch (peer)", m.torch.clone()),
            ("torchvision (peer)", m.torchvision.clone()),
            ("python (peer)", m.python.clone()),
            (
                "f32 matmul peak",
                format!("{:.1} GFLOP/s ({}x{} matmul, best run)", self.matmul_peak / 1e9, self.matmul_size, self.matmul_size),
            ),
        ];
        for (k, v) in rows {
            t.push(vec![k.into(), if v.is_empty() { "-".into() } else { v }]);
        }
        t
    }

    /// The report as Markdown: machine table, results table, notes.
    pub fn markdown(&self) -> String {
        let mut s = self.machine_table().to_markdown();
        s += &self.table().to_markdown();
        for n in &self.notes {
            s += &format!("- {n}\n");
        }
        s
    }

    pub fn evcxr_display(&self) {
        evcxr_emit("text/html", &(self.machine_table().to_html() + &self.table().to_html()));
    }
}

impl std::fmt::Display for BenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}\n{}", self.machine_table(), self.table())?;
        for n in &self.notes {
            writeln!(f, "- {n}")?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// FLOP counting

/// Multiply-adds of a convolution with square kernel `k` on a square input of side `side`;
/// returns (MACs, output side).
fn conv_macs(c_in: i64, c_out: i64, k: i64, stride: i64, pad: i64, side: i64) -> (f64, i64) {
    let out = (side + 2 * pad - k) / stride + 1;
    ((c_in * c_out * k * k * out * out) as f64, out)
}

/// Forward FLOPs (2 x multiply-adds of the convolutions and the linear head; batch norm,
/// activations and pooling are not counted) of one image through a network.
pub fn forward_flops(spec: &NetworkSpec) -> f64 {
    let classes = spec.classes.len() as i64;
    let mut macs = 0.0;
    let mut side = spec.input_size;
    let mut c = spec.in_channels;
    match &spec.arch {
        Arch::Linear => macs += (c * side * side * classes) as f64,
        Arch::ConvNet { widths } => {
            for (i, &w) in widths.iter().enumerate() {
                let (m, _) = conv_macs(c, w, 3, 1, 1, side);
                macs += m;
                if i + 1 < widths.len() && side >= 4 {
                    side /= 2;
                }
                c = w;
            }
            macs += (c * classes) as f64;
        }
        Arch::ResNet { stages, width, bottleneck, stem } => {
            let (m, s) = match stem {
                Stem::Cifar => conv_macs(c, *width, 3, 1, 1, side),
                Stem::ImageNet => conv_macs(c, *width, 7, 2, 3, side),
            };
            macs += m;
            side = if *stem == Stem::ImageNet { (s + 2 - 3) / 2 + 1 } else { s };
            c = *width;
            for (si, &n) in stages.iter().enumerate() {
                let w = width << si;
                for j in 0..n {
                    let stride = if si > 0 && j == 0 { 2 } else { 1 };
                    let c_out = if *bottleneck { 4 * w } else { w };
                    let out_side = if *bottleneck {
                        let (m1, s1) = conv_macs(c, w, 1, 1, 0, side);
                        let (m2, s2) = conv_macs(w, w, 3, stride, 1, s1);
                        let (m3, _) = conv_macs(w, c_out, 1, 1, 0, s2);
                        macs += m1 + m2 + m3;
                        s2
                    } else {
                        let (m1, s1) = conv_macs(c, w, 3, stride, 1, side);
                        let (m2, _) = conv_macs(w, w, 3, 1, 1, s1);
                        macs += m1 + m2;
                        s1
                    };
                    if stride != 1 || c != c_out {
                        macs += conv_macs(c, c_out, 1, stride, 0, side).0;
                    }
                    side = out_side;
                    c = c_out;
                }
            }
            macs += (c * classes) as f64;
        }
    }
    2.0 * macs
}

// ---------------------------------------------------------------------------------------------
// Timing

/// FLOP/s of an n x n f32 matmul on `device`, best of `runs`.
pub fn matmul_peak(n: i64, runs: usize, device: Device) -> Result<f64> {
    let a = Tensor::f_randn([n, n], (Kind::Float, device))?;
    let b = Tensor::f_randn([n, n], (Kind::Float, device))?;
    let mut out = a.f_matmul(&b)?;
    let mut best = f64::INFINITY;
    for _ in 0..runs.max(1) {
        let t = Instant::now();
        out = a.f_matmul_out(&out, &b)?;
        let _ = out.f_double_value(&[0, 0])?;
        best = best.min(t.elapsed().as_secs_f64());
    }
    Ok(2.0 * (n as f64).powi(3) / best)
}

// ---------------------------------------------------------------------------------------------
// Workload set-up shared with the peer

/// One model's fixture: network, data (floats in [0, 1] and labels) and its 90%-sparse mask.
struct Fixture {
    name: &'static str,
    net: Network,
    x: Tensor,
    y: Tensor,
    eps: f64,
}

fn fashion_mnist(quick: bool) -> Result<(Dataset, Dataset)> {
    let (train, test) = Embedded::FashionMnist.load()?;
    let n = if quick { 512 } else { 8192 };
    Ok((train.subset(&(0..n.min(train.len() as i64)).collect::<Vec<_>>(), "fashion-mnist/bench-train")?, test))
}

/// The ConvNet, briefly trained on Fashion-MNIST so accuracies mean something.
fn convnet_fixture(cfg: &BenchConfig, sizes: &Sizes, device: Device) -> Result<Fixture> {
    let (train, test) = fashion_mnist(cfg.quick)?;
    let net = Network::new(NetworkSpec::for_data(Arch::convnet(), &train)?, device, cfg.seed)?;
    let mut sgd = Sgd::new(&net, SgdConfig { lr: 0.05, ..SgdConfig::default() })?;
    let mut steps = 0;
    'outer: for epoch in 0.. {
        for b in train.batches(128, Some(cfg.seed + epoch), doublewin::data::Augment::none(), device)? {
            let b = b?;
            let _ = train_step(&net, &mut sgd, &Regime::Standard, &b.images, &b.labels, 0, 0.05)?;
            steps += 1;
            if steps >= sizes.pretrain_steps {
                break 'outer;
            }
        }
    }
    let n = sizes.eval_convnet.max(sizes.convnet_batch * sizes.train_steps as i64);
    let x = test.float_images(0, n)?.f_to_device(device)?;
    let y = test.labels().f_narrow(0, 0, x.size()[0])?.f_to_device(device)?;
    Ok(Fixture { name: "convnet", net, x, y, eps: 0.1 })
}

/// CIFAR ResNet-18 (3x3 stem) at its initialisation with batch-norm statistics calibrated on
/// the data; inputs are Fashion-MNIST test images padded to 32x32 and repeated to 3 channels
/// (real pixels at CIFAR's shape; the embedded data hold no colour set).
fn resnet18_fixture(cfg: &BenchConfig, sizes: &Sizes, device: Device) -> Result<Fixture> {
    let (_, test) = fashion_mnist(cfg.quick)?;
    let n = sizes.eval_resnet.max(sizes.resnet_batch * sizes.resnet_train_steps as i64);
    let x = test.float_images(0, n)?.f_constant_pad_nd([2, 2, 2, 2])?.f_repeat([1, 3, 1, 1])?.f_contiguous()?.f_to_device(device)?;
    let y = test.labels().f_narrow(0, 0, x.size()[0])?.f_to_device(device)?;
    let spec = NetworkSpec {
        arch: Arch::resnet18_cifar(),
        in_channels: 3,
        input_size: 32,
        classes: test.classes().to_vec(),
        normalization: Normalization { mean: vec![0.29; 3], std: vec![0.35; 3] },
    };
    let net = Network::new(spec, device, cfg.seed)?;
    {
        let _guard = tch::no_grad_guard();
        for _ in 0..3 {
            let _ = net.forward(&x, true)?;
        }
    }
    Ok(Fixture { name: "resnet18", net, x, y, eps: 8.0 / 255.0 })
}

fn write_fixture(dir: &Path, f: &Fixture, mask: &Mask) -> Result<()> {
    doublewin::model::io::write_tensors(&dir.join(format!("{}.weights.safetensors", f.name)), &f.net.named_tensors())?;
    let masks: Vec<(String, Tensor)> = mask.iter().map(|(n, m)| Ok((n.clone(), m.f_to_kind(Kind::Float)?))).collect::<Result<_>>()?;
    doublewin::model::io::write_tensors(&dir.join(format!("{}.mask.safetensors", f.name)), &masks)?;
    let n = &f.net.spec().normalization;
    let stats = |v: &[f64]| Tensor::from_slice(&v.iter().map(|&a| a as f32).collect::<Vec<f32>>());
    doublewin::model::io::write_tensors(
        &dir.join(format!("{}.data.safetensors", f.name)),
        &[
            ("x".into(), f.x.shallow_clone()),
            ("y".into(), f.y.shallow_clone()),
            ("mean".into(), stats(&n.mean)),
            ("std".into(), stats(&n.std)),
        ],
    )
}

fn machine(threads: usize, device: Device) -> Machine {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("model name")).and_then(|l| l.split_once(':')).map(|(_, v)| v.trim().to_string()))
        .unwrap_or_else(|| "unknown".into());
    Machine {
        cpu,
        cores: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        threads,
        device: format!("{device:?}"),
        doublewin: doublewin::VERSION.into(),
        libtorch: doublewin::LIBTORCH_VERSION.into(),
        torch: String::new(),
        torchvision: String::new(),
        python: String::new(),
    }
}

fn accuracy(net: &Network, x: &Tensor, y: &Tensor) -> Result<f64> {
    let _guard = tch::no_grad_guard();
    let ok = net.forward(x, false)?.f_argmax(-1, false)?.f_eq_tensor(y)?.f_to_kind(Kind::Float)?.f_mean(Kind::Float)?;
    Ok(ok.f_double_value(&[])?)
}

/// Fixed training batches: `steps` consecutive slices of `batch` examples.
fn batches(f: &Fixture, batch: i64, steps: usize) -> Result<Vec<(Tensor, Tensor)>> {
    (0..steps as i64).map(|i| Ok((f.x.f_narrow(0, i * batch, batch)?, f.y.f_narrow(0, i * batch, batch)?))).collect()
}

/// Runs the benchmark `cfg.rounds` times and pools the timed runs of each side per workload
/// (results and outcomes are those of the first round).
pub fn run(cfg: &BenchConfig) -> Result<BenchReport> {
    let mut report = run_round(cfg)?;
    for round in 2..=cfg.rounds {
        println!("[bench] round {round}/{}", cfg.rounds);
        let next = run_round(cfg)?;
        report.matmul_peak = report.matmul_peak.max(next.matmul_peak);
        for (mine, other) in report.results.iter_mut().zip(next.results) {
            mine.ours.timing.seconds.extend(other.ours.timing.seconds);
            mine.paired_ratios.extend(other.paired_ratios);
            if let (Some(a), Some(b)) = (mine.peer.as_mut(), other.peer) {
                a.timing.seconds.extend(b.timing.seconds);
            }
        }
    }
    if cfg.rounds > 1 {
        report.notes.push(format!("{} rounds of {} timed runs per side, pooled", cfg.rounds, cfg.repeats));
    }
    if cfg.first_result {
        report.first_result = time_first_result()?;
    }
    Ok(report)
}

/// Runs `scripts/time_first_result.sh` of this source tree and reads its
/// `[first-result] <session> kernel session: <seconds> s` lines.
fn time_first_result() -> Result<Vec<(String, f64)>> {
    let script = workspace_root().join("scripts").join("time_first_result.sh");
    println!("[bench] notebook time to first result ({})", script.display());
    let out = std::process::Command::new("bash").arg(&script).output().map_err(|e| {
        Error::invalid(format!("cannot run {}: {e}", script.display()), "run from a doublewin checkout after scripts/setup.sh")
    })?;
    if !out.status.success() {
        return Err(Error::invalid(
            format!("{} failed: {}", script.display(), String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or_default()),
            "check that `bash scripts/setup.sh` installed the notebook kernel",
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("[first-result] ")?;
            let (session, secs) = rest.split_once(" kernel session: ")?;
            Some((session.to_string(), secs.trim_end_matches(" s").trim().parse().ok()?))
        })
        .collect())
}

/// One pass over the selected workloads: the sizes, the peer process and the results so far.
struct Round<'a> {
    cfg: &'a BenchConfig,
    sizes: Sizes,
    peer: Option<Peer>,
    results: Vec<WorkloadResult>,
}

/// Our timed runs of a workload and the peer's, run by run.
struct Paired {
    ours: Timing,
    peer: Option<Timing>,
}

impl Round<'_> {
    /// Times `warmup` + `repeats` runs of ours, each paired with one run of the peer's `w` (when
    /// the peer runs), the side that goes first alternating so that a drift within a pair
    /// favours neither; the warm-up pairs are not kept.
    fn time(&mut self, w: &PeerWorkload, mut ours: impl FnMut() -> Result<()>) -> Result<Paired> {
        if let Some(p) = self.peer.as_mut() {
            p.setup(w)?;
        }
        let (mut mine, mut theirs) = (Vec::new(), Vec::new());
        for i in 0..self.cfg.warmup + self.cfg.repeats {
            let peer_first = i % 2 == 1;
            let mut peer_seconds = None;
            if let (true, Some(p)) = (peer_first, self.peer.as_mut()) {
                peer_seconds = Some(p.run()?);
            }
            let t = Instant::now();
            ours()?;
            let our_seconds = t.elapsed().as_secs_f64();
            if let (false, Some(p)) = (peer_first, self.peer.as_mut()) {
                peer_seconds = Some(p.run()?);
            }
            if i >= self.cfg.warmup {
                mine.push(our_seconds);
                theirs.extend(peer_seconds);
            }
        }
        Ok(Paired { ours: Timing { seconds: mine }, peer: self.peer.is_some().then_some(Timing { seconds: theirs }) })
    }

    /// [`Round::time`] for a workload that yields a value: the timings and the last run's value.
    fn time_value<T>(&mut self, w: &PeerWorkload, mut ours: impl FnMut() -> Result<T>) -> Result<(Paired, T)> {
        let mut last = None;
        let paired = self.time(w, || {
            last = Some(ours()?);
            Ok(())
        })?;
        let value = last.ok_or_else(|| Error::invalid("no timed run", "use --repeats 1 or more"))?;
        Ok((paired, value))
    }

    /// Records a workload measured by [`Round::time`]: our side as `r` has it, the peer's side and
    /// the paired ratios, and whether both computed the same thing (`ours_mask`: the pruning
    /// workload's mask, compared weight by weight).
    fn record(&mut self, mut r: WorkloadResult, paired: Paired, ours_mask: Option<&Mask>) -> Result<()> {
        r.ours.timing = paired.ours;
        if let (Some(p), Some(timing)) = (self.peer.as_mut(), paired.peer) {
            let out = p.finish()?;
            r.agreement = agreement(&r, &out, ours_mask, &self.cfg.workdir)?;
            r.paired_ratios = timing.seconds.iter().zip(&r.ours.timing.seconds).map(|(peer, ours)| peer / ours).collect();
            r.peer = Some(Side { timing, outcome: out.outcome, values: out.values });
        }
        let peer = r.peer.as_ref().map(|p| format!("; peer {:.1} ms ({})", 1e3 * p.timing.median(), p.outcome)).unwrap_or_default();
        eprintln!("[bench] {}: median {:.1} ms ({}){peer}", r.id, 1e3 * r.ours.timing.median(), r.ours.outcome);
        self.results.push(r);
        Ok(())
    }
}

impl Fixture {
    /// A workload of this fixture for the peer, with the fixture's eps and PGD step; the caller
    /// sets the sizes.
    fn workload(&self, id: &str, kind: &str) -> PeerWorkload {
        PeerWorkload {
            id: id.into(),
            kind: kind.into(),
            model: self.name.into(),
            batch: 0,
            steps: 1,
            eps: self.eps,
            step: if kind == "fast" { 1.25 * self.eps } else { self.eps / 4.0 },
            attack_steps: 0,
            lr: TRAIN_LR,
            n: 0,
            fraction: SPARSITY,
            seeds: 0,
        }
    }
    /// Examples per batch of the attack and training workloads.
    fn batch(&self, z: &Sizes) -> i64 {
        if self.name == "convnet" {
            z.convnet_batch
        } else {
            z.resnet_batch
        }
    }
}

/// Learning rate of the training workloads, both sides.
const TRAIN_LR: f64 = 0.01;
/// Sparsity of the masked network of the sparse-training workloads.
const SPARSITY: f64 = 0.9;

/// A workload's result with our side's outcome (timings and the peer's side are filled in by
/// [`Round::record`]).
fn our_result(
    id: &str,
    description: String,
    items_per_run: f64,
    unit: &str,
    flops_per_run: Option<f64>,
    ours: (String, BTreeMap<String, f64>),
) -> WorkloadResult {
    WorkloadResult {
        id: id.into(),
        description,
        items_per_run,
        unit: unit.into(),
        flops_per_run,
        ours: Side { timing: Timing { seconds: Vec::new() }, outcome: ours.0, values: ours.1 },
        peer: None,
        agreement: String::new(),
        paired_ratios: Vec::new(),
    }
}

/// An evaluation's outcome: SA and RA in words and as numbers (in %).
fn sa_ra(sa: f64, ra: f64) -> (String, BTreeMap<String, f64>) {
    let (sa, ra) = (100.0 * sa, 100.0 * ra);
    (format!("SA {sa:.1}%, RA {ra:.1}%"), BTreeMap::from([("SA %".to_string(), sa), ("RA %".to_string(), ra)]))
}

/// One pass: every selected workload, our runs paired run by run with the peer's on the same files.
fn run_round(cfg: &BenchConfig) -> Result<BenchReport> {
    cfg.check()?;
    // As every doublewin run does (the CLI and notebooks through `Runtime::new`); the peer is a
    // separate process with Python's defaults.
    doublewin::runtime::keep_freed_memory();
    if cfg.threads > 0 {
        tch::set_num_threads(cfg.threads as i32);
    }
    let threads = tch::get_num_threads().max(1) as usize;
    let device = Device::Cpu;
    let sizes = Sizes::of(cfg.quick);
    std::fs::create_dir_all(&cfg.workdir).map_err(|e| Error::io(&cfg.workdir, e))?;
    let matmul_peak = matmul_peak(sizes.matmul, if cfg.quick { 2 } else { 10 }, device)?;
    let mut machine = machine(threads, device);
    let peer = if cfg.peer { Some(Peer::start(&python(cfg.python.as_deref()), &cfg.workdir, threads, cfg.seed)?) } else { None };
    if let Some(p) = &peer {
        (machine.torch, machine.torchvision, machine.python) =
            (p.versions.torch.clone(), p.versions.torchvision.clone(), p.versions.python.clone());
    }
    let mut round = Round { cfg, sizes, peer, results: Vec::new() };

    let needs = |model: &str| WORKLOADS.iter().any(|w| w.ends_with(model) && !w.starts_with("prune") && cfg.selected(w));
    let mut fixtures = Vec::new();
    if needs("convnet") {
        fixtures.push(convnet_fixture(cfg, &round.sizes, device)?);
    }
    if needs("resnet18") {
        fixtures.push(resnet18_fixture(cfg, &round.sizes, device)?);
    }
    for f in &fixtures {
        let sparse = strategy::global_magnitude(&f.net, &Mask::dense_for(&f.net)?, SPARSITY)?;
        write_fixture(&cfg.workdir, f, &sparse)?;
        attack_throughput(&mut round, f)?;
        autoattack(&mut round, f)?;
        training(&mut round, f, &sparse)?;
        evaluation(&mut round, f)?;
        if f.name == "convnet" {
            seeds(&mut round, f)?;
        }
    }
    pruning(&mut round, device)?;

    let mut notes = Vec::new();
    // The exchange files (ResNet-50's weights among them) are large: keep them only on request.
    drop(round.peer.take());
    if std::env::var_os("DOUBLEWIN_BENCH_KEEP").is_none() {
        let _ = std::fs::remove_dir_all(&cfg.workdir);
    }
    if !cfg.peer {
        notes.push("peer not run (--no-peer): no ratios".into());
    }
    Ok(BenchReport {
        config: cfg.clone(),
        machine,
        matmul_peak,
        matmul_size: round.sizes.matmul,
        results: round.results,
        notes,
        first_result: Vec::new(),
    })
}

/// (a) PGD-10 attack throughput, eval mode.
fn attack_throughput(round: &mut Round, f: &Fixture) -> Result<()> {
    let id = format!("pgd-{}", f.name);
    if !round.cfg.selected(&id) {
        return Ok(());
    }
    let batch = f.batch(&round.sizes);
    let w = PeerWorkload { batch, attack_steps: 10, n: batch, ..f.workload(&id, "pgd") };
    let pgd = Pgd::linf(w.eps, w.step, 10).seed(round.cfg.seed);
    let (x, y) = (f.x.f_narrow(0, 0, batch)?, f.y.f_narrow(0, 0, batch)?);
    let mut adv = x.shallow_clone();
    let paired = round.time(&w, || {
        adv = pgd.perturb(&f.net, &x, &y)?;
        Ok(())
    })?;
    let (clean, adv_acc) = (100.0 * accuracy(&f.net, &x, &y)?, 100.0 * accuracy(&f.net, &adv, &y)?);
    let r = our_result(
        &id,
        format!("PGD-10 L-inf eps {} attack, {} batch {batch}", doublewin::attack::format_eps(w.eps), f.net.arch().name()),
        batch as f64,
        "img",
        Some(batch as f64 * forward_flops(f.net.spec()) * 2.0 * 10.0),
        (format!("clean {clean:.1}%, adv {adv_acc:.1}%"), BTreeMap::from([("clean %".to_string(), clean), ("adv %".to_string(), adv_acc)])),
    );
    round.record(r, paired, None)
}

/// APGD-CE and AutoAttack's fast ensemble (APGD-CE, then APGD-T with 9 target classes on the
/// points still robust): torchattacks in the peer, same iterations and batch.
fn autoattack(round: &mut Round, f: &Fixture) -> Result<()> {
    let batch = f.batch(&round.sizes);
    let iters = if f.name == "convnet" { round.sizes.apgd_iters } else { round.sizes.apgd_iters_resnet };
    for (kind, id) in [("apgd", format!("apgd-ce-{}", f.name)), ("aa-fast", format!("autoattack-fast-{}", f.name))] {
        if !round.cfg.selected(&id) {
            continue;
        }
        let w = PeerWorkload { batch, attack_steps: iters, n: batch, ..f.workload(&id, kind) };
        let aa = AutoAttack::fast(Norm::Linf, w.eps).n_iter(iters).seed(round.cfg.seed);
        let attacks: Vec<AttackSpec> = if kind == "apgd" { aa.attacks()[..1].to_vec() } else { aa.attacks() };
        let data = tensors_dataset(&f.x.f_narrow(0, 0, batch)?, &f.y.f_narrow(0, 0, batch)?, f.net.classes())?;
        let (paired, e) = round.time_value(&w, || robust_evaluate(&f.net, &data, &attacks, batch as usize))?;
        let what = if kind == "apgd" {
            format!("APGD-CE-{iters}")
        } else {
            format!("AutoAttack fast (APGD-CE-{iters}, APGD-T-{iters} x 9 targets)")
        };
        let r = our_result(
            &id,
            format!(
                "{what} L-inf eps {} on the clean-correct points, {} batch {batch}",
                doublewin::attack::format_eps(w.eps),
                f.net.arch().name()
            ),
            batch as f64,
            "img",
            None,
            sa_ra(e.sa, e.ra),
        );
        round.record(r, paired, None)?;
    }
    Ok(())
}

/// (b) PGD-10 adversarial training of the 90%-sparse network, against two peers: the mask
/// through torch.nn.utils.prune ("at") and an in-place multiply after each optimizer step
/// ("at-mul"); (c) FGSM-RS training of the dense network.
fn training(round: &mut Round, f: &Fixture, sparse: &Mask) -> Result<()> {
    let (batch, train_steps) = if f.name == "convnet" {
        (round.sizes.convnet_batch, round.sizes.train_steps)
    } else {
        (round.sizes.resnet_batch, round.sizes.resnet_train_steps)
    };
    for (kind, id) in
        [("at", format!("at-sparse-{}", f.name)), ("at-mul", format!("at-sparse-mul-{}", f.name)), ("fast", format!("fast-{}", f.name))]
    {
        if !round.cfg.selected(&id) {
            continue;
        }
        let sparse_at = kind != "fast";
        let attack_steps = if sparse_at { 10 } else { 1 };
        let images = batch * train_steps as i64;
        let w = PeerWorkload { batch, steps: train_steps, attack_steps, n: images, ..f.workload(&id, kind) };
        let mut net = f.net.try_clone()?;
        let regime = if sparse_at {
            sparse.attach(&mut net)?;
            Regime::Adversarial(Pgd::linf(w.eps, w.step, 10).train_mode(true))
        } else {
            Regime::Fast { attack: Fgsm::random_start(w.eps).train_mode(true), guard: None }
        };
        let mut sgd = Sgd::new(&net, SgdConfig { lr: TRAIN_LR, ..SgdConfig::default() })?;
        let data = batches(f, batch, train_steps)?;
        let (mut last, mut call) = (f64::NAN, 0u64);
        let seed = round.cfg.seed;
        let paired = round.time(&w, || {
            for (x, y) in &data {
                call += 1;
                let (loss, _) = train_step(&net, &mut sgd, &regime, x, y, seed.wrapping_add(call), TRAIN_LR)?;
                last = loss.f_double_value(&[])?;
            }
            Ok(())
        })?;
        let mut outcome = format!("last loss {last:.3}");
        if sparse_at {
            outcome += &format!(", sparsity {:.1}% held: {}", 100.0 * sparse.sparsity(), sparse.holds_in(&net)?);
        }
        let what = match kind {
            "at" => "PGD-10 adversarial training, 90% sparse (mask attached; peer: torch.nn.utils.prune)",
            "at-mul" => "PGD-10 adversarial training, 90% sparse (mask attached; peer: mul_ after each step)",
            _ => "FGSM-RS fast adversarial training",
        };
        let r = our_result(
            &id,
            format!("{what}, {} batch {batch} x {train_steps} steps", net.arch().name()),
            images as f64,
            "img",
            Some(images as f64 * forward_flops(f.net.spec()) * (2.0 * attack_steps as f64 + 3.0)),
            (outcome, BTreeMap::from([("loss".to_string(), last)])),
        );
        round.record(r, paired, None)?;
    }
    Ok(())
}

/// (f) The seeds of one cell of the `small` study, fine-tuned adversarially: K networks (the
/// study's seed count) from one source network, each with its own head, its own 1% subset of
/// MNIST-8x8 in its own order and its own attack starts, one epoch each (the study's batch size
/// and training PGD). Ours trains them one at a time, as the study does; the peers train them
/// the three ways practitioners batch a family of small models: an eager loop over the models
/// ("loop"), `torch.func.stack_module_state` + `vmap` ("vmap"), and the models stacked along the
/// channels of grouped convolutions ("grouped"). The ratios say what batching the seeds would
/// buy on this machine.
fn seeds(round: &mut Round, f: &Fixture) -> Result<()> {
    let ids = ["loop", "vmap", "grouped"].map(|kind| (kind, format!("seeds-{kind}-{}", f.name)));
    if !ids.iter().any(|(_, id)| round.cfg.selected(id)) {
        return Ok(());
    }
    let family = SeedFamily::of(round, f)?;
    for (kind, id) in ids {
        if round.cfg.selected(&id) {
            family.time(round, f, kind, &id)?;
        }
    }
    Ok(())
}

/// The networks and data of the seeds workload: per seed of the `small` study's first cell, the
/// fixture's network with its own head, and one epoch of its own data subset's batches.
struct SeedFamily {
    /// How many seeds (2 in a quick round).
    k: usize,
    batch: usize,
    /// The study's training PGD.
    pgd: Pgd,
    nets: Vec<Network>,
    data: Vec<Vec<(Tensor, Tensor)>>,
}

impl SeedFamily {
    /// Builds the family and writes it (heads and batches) to `seeds.safetensors` in the round's
    /// workdir, where the peers read it.
    fn of(round: &Round, f: &Fixture) -> Result<SeedFamily> {
        let study = doublewin::study::Profile::Small.study();
        let downstream =
            *study.downstream.first().ok_or_else(|| Error::invalid("the small study has no downstream data", "report this as a bug"))?;
        let fraction =
            *study.fractions.first().ok_or_else(|| Error::invalid("the small study has no data fraction", "report this as a bug"))?;
        let k = if round.cfg.quick { 2 } else { study.seeds.len() };
        let batch = study.transfer.recipe.batch_size;
        let Regime::Adversarial(pgd) = Regime::of(doublewin::train::RegimeKind::Adversarial, &study.threat)? else {
            return Err(Error::invalid("the small study's adversarial fine-tuning is not PGD", "report this as a bug"));
        };
        let splits = doublewin::study::steps::HoldOut::STUDY.splits(downstream)?;
        // Per seed: the network with its head and its data (one epoch of batches).
        let mut nets = Vec::new();
        let mut data = Vec::new();
        let mut exchange: Vec<(String, Tensor)> = Vec::new();
        for &seed in study.seeds.iter().take(k) {
            let subset = splits.with_train_fraction(fraction, seed)?;
            let mut net = f.net.with_new_head(subset.classes().to_vec(), seed)?;
            net.set_input_size(subset.image_shape()[1])?;
            let batches: Vec<(Tensor, Tensor)> = subset
                .train
                .batches(batch, Some(seed), doublewin::data::Augment::none(), Device::Cpu)?
                .map(|b| b.map(|b| (b.images, b.labels)))
                .collect::<Result<_>>()?;
            let i = nets.len();
            for (n, t) in net.named_tensors().into_iter().filter(|(n, _)| n.starts_with("fc.")) {
                exchange.push((format!("{i}.{n}"), t));
            }
            for (j, (x, y)) in batches.iter().enumerate() {
                exchange.push((format!("{i}.x.{j}"), x.shallow_clone()));
                exchange.push((format!("{i}.y.{j}"), y.shallow_clone()));
            }
            nets.push(net);
            data.push(batches);
        }
        doublewin::model::io::write_tensors(&round.cfg.workdir.join("seeds.safetensors"), &exchange)?;
        Ok(SeedFamily { k, batch, pgd, nets, data })
    }

    /// Times one epoch of adversarial fine-tuning of every seed, one after the other, against
    /// the peer batching them the `kind` way, and records it as `id`.
    fn time(&self, round: &mut Round, f: &Fixture, kind: &str, id: &str) -> Result<()> {
        let (k, batch, pgd) = (self.k, self.batch, &self.pgd);
        let images: usize = self.data.iter().flatten().map(|(x, _)| x.size()[0] as usize).sum();
        let spec = self.nets[0].spec().clone();
        let regime = Regime::Adversarial(pgd.clone());
        let w = PeerWorkload {
            batch: batch as i64,
            steps: self.data[0].len(),
            attack_steps: pgd.steps,
            eps: pgd.eps,
            step: pgd.step,
            n: images as i64,
            seeds: k,
            ..f.workload(id, &format!("seeds-{kind}"))
        };
        // Every workload starts from the same networks, as the peer's do.
        let nets = self.nets.iter().map(Network::try_clone).collect::<Result<Vec<_>>>()?;
        let mut sgds = nets.iter().map(|n| Sgd::new(n, SgdConfig { lr: TRAIN_LR, ..SgdConfig::default() })).collect::<Result<Vec<_>>>()?;
        let (mut losses, mut call) = (vec![f64::NAN; k], 0u64);
        let paired = round.time(&w, || {
            for (((net, sgd), batches), loss) in nets.iter().zip(sgds.iter_mut()).zip(&self.data).zip(losses.iter_mut()) {
                for (x, y) in batches {
                    call += 1;
                    let (l, _) = train_step(net, sgd, &regime, x, y, round_seed(call), TRAIN_LR)?;
                    *loss = l.f_double_value(&[])?;
                }
            }
            Ok(())
        })?;
        let mean = losses.iter().sum::<f64>() / k as f64;
        let r = our_result(
            id,
            format!(
                "{k} seeds x one epoch of adversarial fine-tuning ({}, batch {batch}, {} images per seed, PGD-{}; peer: {kind})",
                spec.arch.name(),
                images / k,
                pgd.steps
            ),
            images as f64,
            "img",
            Some(images as f64 * forward_flops(&spec) * (2.0 * pgd.steps as f64 + 3.0)),
            (format!("mean last loss {mean:.3}"), BTreeMap::from([("mean last loss".to_string(), mean)])),
        );
        round.record(r, paired, None)
    }
}

/// The attack seed of our `call`-th training step in the seeds workload.
fn round_seed(call: u64) -> u64 {
    call.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// (e) evaluation: SA, then RA under PGD-20 on the points still correct.
fn evaluation(round: &mut Round, f: &Fixture) -> Result<()> {
    let id = format!("eval-{}", f.name);
    if !round.cfg.selected(&id) {
        return Ok(());
    }
    let z = &round.sizes;
    let n = if f.name == "convnet" { z.eval_convnet } else { z.eval_resnet };
    let eval_batch = z.eval_batch;
    let w = PeerWorkload { batch: eval_batch as i64, attack_steps: 20, n, ..f.workload(&id, "eval") };
    let data = tensors_dataset(&f.x.f_narrow(0, 0, n)?, &f.y.f_narrow(0, 0, n)?, f.net.classes())?;
    let attacks: Vec<AttackSpec> = vec![Pgd::linf(w.eps, w.step, 20).seed(round.cfg.seed).into()];
    let (paired, e) = round.time_value(&w, || robust_evaluate(&f.net, &data, &attacks, eval_batch))?;
    let (fwd, attacked) = (forward_flops(f.net.spec()), e.sa * n as f64);
    let r = our_result(
        &id,
        format!(
            "SA + RA (PGD-20 eps {} on the clean-correct points), {} on {n} images, batch {eval_batch}",
            doublewin::attack::format_eps(w.eps),
            f.net.arch().name()
        ),
        n as f64,
        "img",
        Some(n as f64 * fwd + attacked * fwd * (2.0 * 20.0 + 1.0)),
        sa_ra(e.sa, e.ra),
    );
    round.record(r, paired, None)
}

/// (d) one global magnitude pruning step (20% of the conv weights) over ResNet-50.
fn pruning(round: &mut Round, device: Device) -> Result<()> {
    let id = "prune-resnet50";
    if !round.cfg.selected(id) {
        return Ok(());
    }
    let spec = NetworkSpec {
        arch: Arch::resnet50(),
        in_channels: 3,
        input_size: 224,
        classes: (0..1000).map(|i| i.to_string()).collect(),
        normalization: Normalization::imagenet(),
    };
    let net = Network::new(spec, device, round.cfg.seed)?;
    let dense = Mask::dense_for(&net)?;
    let convs: Vec<(String, Tensor)> = net.named_tensors().into_iter().filter(|(n, _)| dense.get(n).is_some()).collect();
    doublewin::model::io::write_tensors(&round.cfg.workdir.join("resnet50.weights.safetensors"), &convs)?;
    let total: i64 = dense.per_layer().iter().map(|l| l.total).sum();
    let w = PeerWorkload {
        id: id.into(),
        kind: "prune".into(),
        model: "resnet50".into(),
        batch: 0,
        steps: 1,
        eps: 0.0,
        step: 0.0,
        attack_steps: 0,
        lr: 0.0,
        n: total,
        fraction: 0.2,
        seeds: 0,
    };
    let (paired, mask) = round.time_value(&w, || strategy::global_magnitude(&net, &dense, 0.2))?;
    let pruned = total - mask.kept();
    let r = our_result(
        id,
        format!("one global magnitude pruning step (20%) over ResNet-50's {} conv tensors", dense.names().count()),
        total as f64 / 1e6,
        "M weights",
        None,
        (format!("pruned {pruned}"), BTreeMap::from([("pruned".to_string(), pruned as f64)])),
    );
    round.record(r, paired, Some(&mask))
}

/// Whether both sides computed the same thing: for pruning, the masks weight by weight; else
/// the differences of the shared values (accuracies in points, losses).
fn agreement(r: &WorkloadResult, p: &PeerOutcome, ours_mask: Option<&Mask>, dir: &Path) -> Result<String> {
    if r.id == "prune-resnet50" {
        let Some(mask) = ours_mask else { return Ok(String::new()) };
        let path = dir.join("resnet50.peer-mask.safetensors");
        let peer = Tensor::read_safetensors(&path)
            .map_err(|e| Error::bad_file_fix(&path, format!("cannot read the peer's mask ({e})"), "run the benchmark again"))?;
        let mut differ = 0i64;
        for (n, t) in peer {
            let ours = mask.get(&n).ok_or_else(|| {
                Error::bad_file_fix(&path, format!("the peer pruned '{n}', which our mask lacks"), "report this as a bug")
            })?;
            differ += t.f_ne(0.0)?.f_ne_tensor(ours)?.f_sum(Kind::Int64)?.f_int64_value(&[])?;
        }
        return Ok(if differ == 0 {
            "masks identical".into()
        } else {
            format!("masks differ in {differ} weights (ties at the threshold)")
        });
    }
    let diffs: Vec<String> =
        r.ours.values.iter().filter_map(|(k, ours)| p.values.get(k).map(|peer| format!("{k} diff {:+.2}", peer - ours))).collect();
    Ok(if diffs.is_empty() { String::new() } else { diffs.join(", ") })
}

fn tensors_dataset(x: &Tensor, y: &Tensor, classes: &[String]) -> Result<Dataset> {
    let images = x.f_mul_scalar(255.0)?.f_round()?.f_to_kind(Kind::Uint8)?.f_to_device(Device::Cpu)?;
    Dataset::new(
        images,
        y.f_to_device(Device::Cpu)?,
        classes.to_vec(),
        DatasetMeta { name: "bench".into(), provenance: "bench fixture".into(), hflip: false },
    )
}

/// BENCHMARKS.md: how to reproduce, machine and versions, the table, what is measured and how,
/// the workloads that miss their target, and the notebook section.
pub fn markdown_document(report: &BenchReport, args: &[String]) -> String {
    let command = {
        let mut a = args.to_vec();
        if let Some(first) = a.first_mut() {
            *first = "target/release/doublewin".into();
        }
        a.join(" ")
    };
    let mut s = String::from("# Benchmarks: doublewin vs PyTorch eager\n\n");
    s += "Produced by one command (after `bash scripts/setup.sh`):\n\n```bash\n";
    s += "source scripts/env.sh && cargo build --release && target/release/doublewin bench --rounds 3 --repeats 3 --first-result --out BENCHMARKS.md\n```\n\n";
    s += &format!(
        "This file was written by `{command}`. `cargo bench` runs the quick mode (`DOUBLEWIN_BENCH=full cargo bench` the full one); "
    );
    s += "CI runs `doublewin bench --quick` (scripts/test.sh) to check that the benchmark still works, without timing assertions. ";
    s += "Every number below was measured in that one run: no figure is copied from elsewhere.\n\n";
    if report.config.quick {
        s += "**QUICK MODE**: tiny batches and a single run; the times below only show that the benchmark works.\n\n";
    }
    s += &report.machine_table().to_markdown();
    s += &report.table().to_markdown();
    for n in &report.notes {
        s += &format!("- {n}\n");
    }
    s += "\n";
    s += METHOD;
    let misses: Vec<&WorkloadResult> = report.results.iter().filter(|r| r.ratio().is_some_and(|x| x < r.target())).collect();
    s += "\n## Workloads that miss their target in this run\n\n";
    if misses.is_empty() {
        s += if report.results.iter().any(|r| r.peer.is_some()) { "None.\n" } else { "No peer run, no ratios.\n" };
    } else {
        for r in misses {
            s += &format!("- `{}`: {:.2}x against a target of {:.1}x.\n", r.id, r.ratio().unwrap_or(f64::NAN), r.target());
        }
        s += "\nWhy (see the profile in the analysis section below): both sides spend almost all of their time in the same ";
        s += "libtorch kernels (oneDNN convolutions and their backward passes), so the remaining gap is what our code ";
        s += "cannot remove around them.\n";
    }
    s += "\n";
    s += ANALYSIS;
    s += "\n## Notebook time to first result\n\n";
    s += "Time from a fresh kernel session to the first rendered result, cold (empty kernel build folder: the `:dep` ";
    s += "line compiles tch and doublewin) and warm (a second session re-using that build folder).\n\n";
    if report.first_result.is_empty() {
        s += "Not measured in this run (pass `--first-result`).\n";
    } else {
        s += "Measured in this run by `scripts/time_first_result.sh`: a notebook of the `:dep` line and one result, executed \
              headless (`jupyter nbconvert --execute`) in a fresh kernel session, so the time includes starting the kernel.\n\n";
        s += "| kernel session | seconds to first result |\n| --- | --- |\n";
        for (session, secs) in &report.first_result {
            s += &format!("| {session} | {secs:.1} |\n");
        }
    }
    s += STUDIES;
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(arch: Arch, c: i64, side: i64, classes: usize) -> NetworkSpec {
        NetworkSpec {
            arch,
            in_channels: c,
            input_size: side,
            classes: (0..classes).map(|i| i.to_string()).collect(),
            normalization: Normalization::identity(c as usize),
        }
    }

    #[test]
    fn benchmarks_md_carries_the_current_prose() {
        // BENCHMARKS.md is generated with method.md, analysis.md and studies.md pasted in; an edit
        // of one of them must reach it, or the repository's front page on speed goes stale.
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../BENCHMARKS.md");
        let benchmarks = std::fs::read_to_string(path).unwrap();
        for (name, text) in [("method.md", METHOD), ("analysis.md", ANALYSIS), ("studies.md", STUDIES)] {
            assert!(
                benchmarks.contains(text),
                "BENCHMARKS.md does not carry the current crates/bench/{name}: regenerate it (its first lines say how), or \
                 paste the file over its old copy there"
            );
        }
        assert!(benchmarks.ends_with(STUDIES), "BENCHMARKS.md must end with crates/bench/studies.md, as `markdown_document` writes it");
    }

    #[test]
    fn flop_counts_match_known_figures() {
        // ConvNet by hand: 1*32*9*784 + 32*64*9*196 + 64*128*9*49 + 128*10 multiply-adds.
        assert_eq!(forward_flops(&spec(Arch::convnet(), 1, 28, 10)), 2.0 * 7_452_416.0);
        // CIFAR ResNet-18: 0.557 GMACs; torchvision ResNet-50 at 224: 4.09 GMACs.
        let r18 = forward_flops(&spec(Arch::resnet18_cifar(), 3, 32, 10)) / 2e9;
        assert!((r18 - 0.557).abs() < 0.005, "{r18}");
        let r50 = forward_flops(&spec(Arch::resnet50(), 3, 224, 1000)) / 2e9;
        assert!((r50 - 4.09).abs() < 0.03, "{r50}");
    }

    #[test]
    fn timing_statistics_and_selection() {
        let t = Timing { seconds: vec![3.0, 1.0, 2.0, 10.0] };
        assert_eq!((t.median(), t.min(), t.max()), (2.5, 1.0, 10.0));
        let cfg = BenchConfig { only: vec!["convnet".into()], ..BenchConfig::quick() };
        assert!(cfg.selected("pgd-convnet") && !cfg.selected("pgd-resnet18"));
        let bad = BenchConfig { only: vec!["nothing".into()], ..BenchConfig::quick() };
        assert!(bad.check().unwrap_err().to_string().contains("pgd-convnet"));
    }

    #[test]
    fn the_ratio_is_the_median_of_paired_runs() {
        let side = |secs: Vec<f64>| Side { timing: Timing { seconds: secs }, outcome: String::new(), values: BTreeMap::new() };
        let mut r = WorkloadResult {
            id: "at-sparse-mul-convnet".into(),
            description: String::new(),
            items_per_run: 1.0,
            unit: "img".into(),
            flops_per_run: None,
            ours: side(vec![1.0, 2.0, 1.0]),
            peer: Some(side(vec![1.5, 3.0, 3.0])),
            agreement: String::new(),
            paired_ratios: Vec::new(),
        };
        // Without pairs: the ratio of the medians.
        assert_eq!((r.ratio(), r.ratio_range()), (Some(3.0), None));
        // A slow pair (both sides twice as slow) and one where only the peer was slow: the medians
        // mix the phases (3.0x); the paired ratios keep each comparison (1.5, 1.5, 3.0).
        r.paired_ratios = vec![1.5, 1.5, 3.0];
        assert_eq!(r.ratio(), Some(1.5));
        assert_eq!(r.ratio_range(), Some((1.5, 3.0)));
        r.peer = None;
        assert_eq!((r.ratio(), r.ratio_range()), (None, None));
    }
}
