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

/// Every workload id, in report order. `--only` selects those containing a given text.
pub const WORKLOADS: [&str; 15] = [
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
    /// Whole passes over the workloads (each: ours, then the peer, workload by workload); the
    /// timed runs of all passes are pooled. Several passes spread slow phases of a shared
    /// machine over both sides instead of letting one side's block of runs absorb them.
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
    /// Peer median over our median in each round (a round times our side, then the peer, back
    /// to back), so a slow phase of a shared machine falls on both sides of one ratio.
    #[serde(default)]
    pub round_ratios: Vec<f64>,
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
    /// Peer time over our time: > 1 means the project is faster. With several rounds, the
    /// median of the per-round ratios (each pairs runs taken minutes apart at most); with one,
    /// the ratio of the medians.
    pub fn ratio(&self) -> Option<f64> {
        self.peer.as_ref()?;
        if self.round_ratios.len() > 1 {
            return Some(Timing { seconds: self.round_ratios.clone() }.median());
        }
        self.peer.as_ref().map(|p| p.timing.median() / self.ours.timing.median())
    }
    /// The per-round ratios' [min, max] (None with fewer than two rounds).
    pub fn ratio_range(&self) -> Option<(f64, f64)> {
        let t = Timing { seconds: self.round_ratios.clone() };
        (self.peer.is_some() && self.round_ratios.len() > 1).then(|| (t.min(), t.max()))
    }
    /// This round's ratio, from the timings gathered so far in it.
    fn record_round_ratio(&mut self) {
        if let Some(p) = &self.peer {
            self.round_ratios.push(p.timing.median() / self.ours.timing.median());
        }
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
                if self.config.rounds > 1 { "; with several rounds, the median of the per-round ratios [min, max]" } else { "" }
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

fn time_runs(warmup: usize, repeats: usize, mut run: impl FnMut() -> Result<()>) -> Result<Timing> {
    for _ in 0..warmup {
        run()?;
    }
    let mut seconds = Vec::with_capacity(repeats);
    for _ in 0..repeats {
        let t = Instant::now();
        run()?;
        seconds.push(t.elapsed().as_secs_f64());
    }
    Ok(Timing { seconds })
}

/// Adds a result and prints its median to stderr (progress while the benchmark runs).
fn push(results: &mut Vec<WorkloadResult>, r: WorkloadResult) {
    eprintln!("[doublewin] {}: median {:.1} ms ({})", r.id, 1e3 * r.ours.timing.median(), r.ours.outcome);
    results.push(r);
}

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

/// What the peer is asked to run (written as JSON next to the exchange files).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct PeerWorkload {
    id: String,
    kind: String,
    model: String,
    batch: i64,
    steps: usize,
    eps: f64,
    step: f64,
    attack_steps: usize,
    lr: f64,
    n: i64,
    fraction: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct PeerConfig {
    threads: usize,
    repeats: usize,
    warmup: usize,
    seed: u64,
    dir: PathBuf,
    workloads: Vec<PeerWorkload>,
}

#[derive(Debug, Clone, Deserialize)]
struct PeerResult {
    id: String,
    seconds: Vec<f64>,
    outcome: String,
    #[serde(default)]
    values: BTreeMap<String, f64>,
}

#[derive(Debug, Clone, Deserialize)]
struct PeerOutput {
    torch: String,
    torchvision: String,
    python: String,
    results: Vec<PeerResult>,
}

fn python(cfg: &BenchConfig) -> PathBuf {
    if let Some(p) = &cfg.python {
        return p.clone();
    }
    if let Some(p) = std::env::var_os("DOUBLEWIN_PYTHON") {
        return PathBuf::from(p);
    }
    if let Some(v) = std::env::var_os("VIRTUAL_ENV") {
        let p = PathBuf::from(v).join("bin").join("python");
        if p.exists() {
            return p;
        }
    }
    let venv = workspace_root().join(".venv/bin/python");
    if venv.exists() {
        return venv;
    }
    PathBuf::from("python3")
}

/// The workspace root (the benchmark runs from a checkout: it needs the peer script, the
/// notebook scripts and the project venv).
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The PyTorch peer, `crates/bench/peer.py`.
fn peer_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("peer.py")
}

fn run_peer(cfg: &BenchConfig, peer_cfg: &PeerConfig) -> Result<PeerOutput> {
    let dir = &cfg.workdir;
    let script = peer_script();
    if !script.exists() {
        return Err(Error::not_found(format!("the peer script {}", script.display()), "run the benchmark from a doublewin checkout"));
    }
    let config = dir.join("peer-config.json");
    doublewin::fsio::write_json(&config, peer_cfg)?;
    let out = dir.join("peer-results.json");
    let _ = std::fs::remove_file(&out);
    let py = python(cfg);
    let status = std::process::Command::new(&py).arg(&script).arg(&config).arg(&out).status().map_err(|e| {
        Error::invalid(
            format!("cannot start the peer with {} ({e})", py.display()),
            "set DOUBLEWIN_PYTHON to a python with torch, or pass --no-peer",
        )
    })?;
    if !status.success() {
        return Err(Error::invalid(
            format!("the PyTorch peer ({} {}) failed with {status}", py.display(), script.display()),
            "see its output above; it needs torch, torchvision and safetensors (the project venv has them), or pass --no-peer",
        ));
    }
    doublewin::fsio::read_json(&out)
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
    report.results.iter_mut().for_each(WorkloadResult::record_round_ratio);
    for round in 2..=cfg.rounds {
        println!("[bench] round {round}/{}", cfg.rounds);
        let mut next = run_round(cfg)?;
        report.matmul_peak = report.matmul_peak.max(next.matmul_peak);
        for (mine, other) in report.results.iter_mut().zip(next.results.iter_mut()) {
            other.record_round_ratio();
            mine.round_ratios.extend(other.round_ratios.drain(..));
            mine.ours.timing.seconds.append(&mut other.ours.timing.seconds);
            if let (Some(a), Some(b)) = (mine.peer.as_mut(), other.peer.as_mut()) {
                a.timing.seconds.append(&mut b.timing.seconds);
            }
        }
    }
    if cfg.rounds > 1 {
        report.notes.push(format!(
            "{} rounds of {} timed runs per side: run times pooled over the rounds; ratio = median of the per-round ratios",
            cfg.rounds, cfg.repeats
        ));
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

/// One pass: our side of every selected workload, each followed by the peer on the same files.
fn run_round(cfg: &BenchConfig) -> Result<BenchReport> {
    cfg.check()?;
    if cfg.threads > 0 {
        tch::set_num_threads(cfg.threads as i32);
    }
    let threads = tch::get_num_threads().max(1) as usize;
    let device = Device::Cpu;
    let sizes = Sizes::of(cfg.quick);
    std::fs::create_dir_all(&cfg.workdir).map_err(|e| Error::io(&cfg.workdir, e))?;
    let dir = cfg.workdir.clone();
    let (warmup, repeats) = (cfg.warmup, cfg.repeats);
    let matmul_peak = matmul_peak(sizes.matmul, if cfg.quick { 2 } else { 10 }, device)?;
    let mut results: Vec<WorkloadResult> = Vec::new();
    let mut peer_workloads = Vec::new();
    let mut machine = machine(threads, device);
    let lr = 0.01;

    let needs = |model: &str| WORKLOADS.iter().any(|w| w.ends_with(model) && !w.starts_with("prune") && cfg.selected(w));
    let mut fixtures = Vec::new();
    if needs("convnet") {
        fixtures.push(convnet_fixture(cfg, &sizes, device)?);
    }
    if needs("resnet18") {
        fixtures.push(resnet18_fixture(cfg, &sizes, device)?);
    }
    for f in &fixtures {
        let (batch, train_steps) =
            if f.name == "convnet" { (sizes.convnet_batch, sizes.train_steps) } else { (sizes.resnet_batch, sizes.resnet_train_steps) };
        let fwd = forward_flops(f.net.spec());
        let dense = Mask::dense_for(&f.net)?;
        let sparse = strategy::global_magnitude(&f.net, &dense, 0.9)?;
        write_fixture(&dir, f, &sparse)?;
        let (eps, step) = (f.eps, f.eps / 4.0);
        let pw = |id: &str, kind: &str, b: i64, steps: usize, attack_steps: usize, n: i64| PeerWorkload {
            id: id.into(),
            kind: kind.into(),
            model: f.name.into(),
            batch: b,
            steps,
            eps,
            step: if kind == "fast" { 1.25 * eps } else { step },
            attack_steps,
            lr,
            n,
            fraction: 0.9,
        };

        // (a) PGD-10 attack throughput, eval mode.
        let id = format!("pgd-{}", f.name);
        if cfg.selected(&id) {
            let pgd = Pgd::linf(eps, step, 10).seed(cfg.seed);
            let (x, y) = (f.x.f_narrow(0, 0, batch)?, f.y.f_narrow(0, 0, batch)?);
            let mut adv = x.shallow_clone();
            let timing = time_runs(warmup, repeats, || {
                adv = pgd.perturb(&f.net, &x, &y)?;
                Ok(())
            })?;
            let (clean, adv_acc) = (100.0 * accuracy(&f.net, &x, &y)?, 100.0 * accuracy(&f.net, &adv, &y)?);
            let outcome = format!("clean {clean:.1}%, adv {adv_acc:.1}%");
            let values = BTreeMap::from([("clean %".to_string(), clean), ("adv %".to_string(), adv_acc)]);
            push(
                &mut results,
                WorkloadResult {
                    id: id.clone(),
                    description: format!(
                        "PGD-10 L-inf eps {} attack, {} batch {batch}",
                        doublewin::attack::format_eps(eps),
                        f.net.arch().name()
                    ),
                    items_per_run: batch as f64,
                    unit: "img".into(),
                    flops_per_run: Some(batch as f64 * fwd * 2.0 * 10.0),
                    ours: Side { timing, outcome, values },
                    peer: None,
                    agreement: String::new(),
                    round_ratios: Vec::new(),
                },
            );
            peer_workloads.push(pw(&id, "pgd", batch, 1, 10, batch));
            flush_peer(cfg, &mut peer_workloads, &mut results, &mut machine, None)?;
        }

        // APGD-CE and AutoAttack's fast ensemble (APGD-CE, then APGD-T with 9 target classes on
        // the points still robust): torchattacks in the peer, same iterations and batch.
        let iters = if f.name == "convnet" { sizes.apgd_iters } else { sizes.apgd_iters_resnet };
        for (kind, id) in [("apgd", format!("apgd-ce-{}", f.name)), ("aa-fast", format!("autoattack-fast-{}", f.name))] {
            if !cfg.selected(&id) {
                continue;
            }
            let aa = AutoAttack::fast(Norm::Linf, eps).n_iter(iters).seed(cfg.seed);
            let attacks: Vec<AttackSpec> = if kind == "apgd" { aa.attacks()[..1].to_vec() } else { aa.attacks() };
            let data = tensors_dataset(&f.x.f_narrow(0, 0, batch)?, &f.y.f_narrow(0, 0, batch)?, f.net.classes())?;
            let mut e = None;
            let timing = time_runs(warmup, repeats, || {
                e = Some(robust_evaluate(&f.net, &data, &attacks, batch as usize)?);
                Ok(())
            })?;
            let e = e.ok_or_else(|| Error::invalid("no timed run", "use --repeats 1 or more"))?;
            let (sa, ra) = (100.0 * e.sa, 100.0 * e.ra);
            let what = if kind == "apgd" {
                format!("APGD-CE-{iters}")
            } else {
                format!("AutoAttack fast (APGD-CE-{iters}, APGD-T-{iters} x 9 targets)")
            };
            push(
                &mut results,
                WorkloadResult {
                    id: id.clone(),
                    description: format!(
                        "{what} L-inf eps {} on the clean-correct points, {} batch {batch}",
                        doublewin::attack::format_eps(eps),
                        f.net.arch().name()
                    ),
                    items_per_run: batch as f64,
                    unit: "img".into(),
                    flops_per_run: None,
                    ours: Side {
                        timing,
                        outcome: format!("SA {sa:.1}%, RA {ra:.1}%"),
                        values: BTreeMap::from([("SA %".to_string(), sa), ("RA %".to_string(), ra)]),
                    },
                    peer: None,
                    agreement: String::new(),
                    round_ratios: Vec::new(),
                },
            );
            peer_workloads.push(pw(&id, kind, batch, 1, iters, batch));
            flush_peer(cfg, &mut peer_workloads, &mut results, &mut machine, None)?;
        }

        // (b) PGD-10 adversarial training of the 90%-sparse network, against two peers: the mask
        // through torch.nn.utils.prune ("at") and an in-place multiply after each optimizer step
        // ("at-mul"); (c) FGSM-RS training.
        for (kind, id) in
            [("at", format!("at-sparse-{}", f.name)), ("at-mul", format!("at-sparse-mul-{}", f.name)), ("fast", format!("fast-{}", f.name))]
        {
            if !cfg.selected(&id) {
                continue;
            }
            let sparse_at = kind != "fast";
            let mut net = f.net.try_clone()?;
            let regime = if sparse_at {
                sparse.attach(&mut net)?;
                Regime::Adversarial(Pgd::linf(eps, step, 10).train_mode(true))
            } else {
                Regime::Fast { attack: Fgsm::random_start(eps).train_mode(true), guard: None }
            };
            let mut sgd = Sgd::new(&net, SgdConfig { lr, ..SgdConfig::default() })?;
            let data = batches(f, batch, train_steps)?;
            let mut last = f64::NAN;
            let mut call = 0u64;
            let timing = time_runs(warmup, repeats, || {
                for (x, y) in &data {
                    call += 1;
                    let (loss, _) = train_step(&net, &mut sgd, &regime, x, y, cfg.seed.wrapping_add(call), lr)?;
                    last = loss.f_double_value(&[])?;
                }
                Ok(())
            })?;
            let attack_steps = if sparse_at { 10.0 } else { 1.0 };
            let mut outcome = format!("last loss {last:.3}");
            let values = BTreeMap::from([("loss".to_string(), last)]);
            if sparse_at {
                outcome += &format!(", sparsity {:.1}% held: {}", 100.0 * sparse.sparsity(), sparse.holds_in(&net)?);
            }
            let images = (batch * train_steps as i64) as f64;
            let what = match kind {
                "at" => "PGD-10 adversarial training, 90% sparse (mask attached; peer: torch.nn.utils.prune)",
                "at-mul" => "PGD-10 adversarial training, 90% sparse (mask attached; peer: mul_ after each step)",
                _ => "FGSM-RS fast adversarial training",
            };
            push(
                &mut results,
                WorkloadResult {
                    id: id.clone(),
                    description: format!("{what}, {} batch {batch} x {train_steps} steps", net.arch().name()),
                    items_per_run: images,
                    unit: "img".into(),
                    flops_per_run: Some(images * fwd * (2.0 * attack_steps + 3.0)),
                    ours: Side { timing, outcome, values },
                    peer: None,
                    agreement: String::new(),
                    round_ratios: Vec::new(),
                },
            );
            peer_workloads.push(pw(&id, kind, batch, train_steps, attack_steps as usize, images as i64));
            flush_peer(cfg, &mut peer_workloads, &mut results, &mut machine, None)?;
        }

        // (e) evaluation: SA, then RA under PGD-20 on the points still correct.
        let id = format!("eval-{}", f.name);
        if cfg.selected(&id) {
            let n = if f.name == "convnet" { sizes.eval_convnet } else { sizes.eval_resnet };
            let data = tensors_dataset(&f.x.f_narrow(0, 0, n)?, &f.y.f_narrow(0, 0, n)?, f.net.classes())?;
            let attacks: Vec<AttackSpec> = vec![Pgd::linf(eps, step, 20).seed(cfg.seed).into()];
            let mut eval = None;
            let timing = time_runs(warmup, repeats, || {
                eval = Some(robust_evaluate(&f.net, &data, &attacks, sizes.eval_batch)?);
                Ok(())
            })?;
            let e = eval.ok_or_else(|| Error::invalid("no evaluation ran", "use --repeats 1 or more"))?;
            let attacked = e.sa * n as f64;
            push(
                &mut results,
                WorkloadResult {
                    id: id.clone(),
                    description: format!(
                        "SA + RA (PGD-20 eps {} on the clean-correct points), {} on {n} images, batch {}",
                        doublewin::attack::format_eps(eps),
                        f.net.arch().name(),
                        sizes.eval_batch
                    ),
                    items_per_run: n as f64,
                    unit: "img".into(),
                    flops_per_run: Some(n as f64 * fwd + attacked * fwd * (2.0 * 20.0 + 1.0)),
                    ours: Side {
                        timing,
                        outcome: format!("SA {:.1}%, RA {:.1}%", 100.0 * e.sa, 100.0 * e.ra),
                        values: BTreeMap::from([("SA %".to_string(), 100.0 * e.sa), ("RA %".to_string(), 100.0 * e.ra)]),
                    },
                    peer: None,
                    agreement: String::new(),
                    round_ratios: Vec::new(),
                },
            );
            peer_workloads.push(pw(&id, "eval", sizes.eval_batch as i64, 1, 20, n));
            flush_peer(cfg, &mut peer_workloads, &mut results, &mut machine, None)?;
        }
    }

    // (d) one global magnitude pruning step (20% of the conv weights) over ResNet-50.
    if cfg.selected("prune-resnet50") {
        let spec = NetworkSpec {
            arch: Arch::resnet50(),
            in_channels: 3,
            input_size: 224,
            classes: (0..1000).map(|i| i.to_string()).collect(),
            normalization: Normalization::imagenet(),
        };
        let net = Network::new(spec, device, cfg.seed)?;
        let dense = Mask::dense_for(&net)?;
        let convs: Vec<(String, Tensor)> = net.named_tensors().into_iter().filter(|(n, _)| dense.get(n).is_some()).collect();
        doublewin::model::io::write_tensors(&dir.join("resnet50.weights.safetensors"), &convs)?;
        let mut mask = None;
        let timing = time_runs(warmup, repeats, || {
            mask = Some(strategy::global_magnitude(&net, &dense, 0.2)?);
            Ok(())
        })?;
        let mask = mask.ok_or_else(|| Error::invalid("no pruning ran", "use --repeats 1 or more"))?;
        let total: i64 = dense.per_layer().iter().map(|l| l.total).sum();
        push(
            &mut results,
            WorkloadResult {
                id: "prune-resnet50".into(),
                description: format!("one global magnitude pruning step (20%) over ResNet-50's {} conv tensors", dense.names().count()),
                items_per_run: total as f64 / 1e6,
                unit: "M weights".into(),
                flops_per_run: None,
                ours: Side {
                    timing,
                    outcome: format!("pruned {}", total - mask.kept()),
                    values: BTreeMap::from([("pruned".to_string(), (total - mask.kept()) as f64)]),
                },
                peer: None,
                agreement: String::new(),
                round_ratios: Vec::new(),
            },
        );
        peer_workloads.push(PeerWorkload {
            id: "prune-resnet50".into(),
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
        });
        flush_peer(cfg, &mut peer_workloads, &mut results, &mut machine, Some(&mask))?;
    }

    let mut notes = Vec::new();
    // The exchange files (ResNet-50's weights among them) are large: keep them only on request.
    if std::env::var_os("DOUBLEWIN_BENCH_KEEP").is_none() {
        let _ = std::fs::remove_dir_all(&cfg.workdir);
    }
    if !cfg.peer {
        notes.push("peer not run (--no-peer): no ratios".into());
    }
    Ok(BenchReport { config: cfg.clone(), machine, matmul_peak, matmul_size: sizes.matmul, results, notes, first_result: Vec::new() })
}

/// Runs the peer on the pending workloads (right after our side of them, so both see the same
/// machine state) and fills in its results.
fn flush_peer(
    cfg: &BenchConfig,
    pending: &mut Vec<PeerWorkload>,
    results: &mut [WorkloadResult],
    machine: &mut Machine,
    ours_mask: Option<&Mask>,
) -> Result<()> {
    if !cfg.peer || pending.is_empty() {
        pending.clear();
        return Ok(());
    }
    let peer_cfg = PeerConfig {
        threads: machine.threads,
        repeats: cfg.repeats,
        warmup: cfg.warmup,
        seed: cfg.seed,
        dir: cfg.workdir.clone(),
        workloads: std::mem::take(pending),
    };
    let out = run_peer(cfg, &peer_cfg)?;
    (machine.torch, machine.torchvision, machine.python) = (out.torch, out.torchvision, out.python);
    for p in out.results {
        let Some(r) = results.iter_mut().find(|r| r.id == p.id) else { continue };
        r.agreement = agreement(r, &p, ours_mask, &cfg.workdir)?;
        r.peer = Some(Side { timing: Timing { seconds: p.seconds }, outcome: p.outcome, values: p.values });
    }
    Ok(())
}

/// Whether both sides computed the same thing: for pruning, the masks weight by weight; else
/// the differences of the shared values (accuracies in points, losses).
fn agreement(r: &WorkloadResult, p: &PeerResult, ours_mask: Option<&Mask>, dir: &Path) -> Result<String> {
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
    fn several_rounds_give_the_median_of_paired_ratios() {
        let side = |secs: Vec<f64>| Side { timing: Timing { seconds: secs }, outcome: String::new(), values: BTreeMap::new() };
        let mut r = WorkloadResult {
            id: "at-sparse-mul-convnet".into(),
            description: String::new(),
            items_per_run: 1.0,
            unit: "img".into(),
            flops_per_run: None,
            ours: side(vec![1.0]),
            peer: Some(side(vec![1.5])),
            agreement: String::new(),
            round_ratios: Vec::new(),
        };
        r.record_round_ratio();
        assert_eq!((r.ratio(), r.ratio_range()), (Some(1.5), None));
        // A slow second round (both sides twice as slow) and a third where only the peer was slow:
        // pooled medians would mix the phases; the paired ratios keep each round's comparison.
        r.round_ratios.extend([1.5 * 2.0 / 2.0, 3.0]);
        r.ours.timing.seconds.extend([2.0, 1.0]);
        r.peer.as_mut().unwrap().timing.seconds.extend([3.0, 3.0]);
        assert_eq!(r.ratio(), Some(1.5));
        assert_eq!(r.ratio_range(), Some((1.5, 3.0)));
        r.peer = None;
        assert_eq!((r.ratio(), r.ratio_range()), (None, None));
    }
}
