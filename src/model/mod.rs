//! Models: [`Network`] owns its VarStore, its architecture, the input normalisation (applied
//! inside the forward pass, so callers and attacks work with [0, 1] pixels), a classifier head
//! named `fc` and the list of prunable tensors (all convolution weights). Parameter names
//! follow torchvision; see [`io`] for saving, loading and importing checkpoints.

mod convnet;
pub mod io;
mod layers;
mod resnet;

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use tch::{nn, Device, Kind, Tensor};

/// The first layers of a ResNet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Stem {
    /// 3x3 convolution, stride 1, no max-pool (for 32x32 and smaller inputs).
    Cifar,
    /// 7x7 convolution, stride 2, then 3x3 max-pool stride 2 (torchvision's ImageNet ResNets).
    ImageNet,
}

/// A network architecture. Use the constructors (`Arch::convnet()`, `Arch::resnet20()`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum Arch {
    /// conv3x3-BN-ReLU blocks of the given widths, max-pooling between them.
    ConvNet { widths: Vec<i64> },
    /// A linear classifier on the flattened pixels (`fc`): the model whose optimal attacks are
    /// known in closed form, used to test attacks.
    Linear,
    /// A ResNet: `stages[i]` blocks in stage i, stage widths `width * 2^i`, basic or bottleneck blocks.
    ResNet { stages: Vec<usize>, width: i64, bottleneck: bool, stem: Stem },
}

impl Arch {
    /// Whether the architecture keeps its convolutions channels-last ([`channels_last`]):
    /// measured faster for the ConvNet (sparse PGD training, attacks) and 5-25% slower for the
    /// CIFAR ResNet-18 rows of the benchmark (CPU, 32x32, batch 16), which stay NCHW.
    pub fn channels_last(&self) -> bool {
        matches!(self, Arch::ConvNet { .. })
    }

    /// The small CPU ConvNet: widths 32, 64, 128 (~94k parameters).
    pub fn convnet() -> Arch {
        Arch::ConvNet { widths: vec![32, 64, 128] }
    }
    /// A ConvNet with every width times `factor` (the ladder's wider rungs); other architectures
    /// are refused.
    pub fn widened(&self, factor: i64) -> Result<Arch> {
        match self {
            Arch::ConvNet { widths } if factor >= 1 => Ok(Arch::ConvNet { widths: widths.iter().map(|w| w * factor).collect() }),
            other => Err(Error::invalid(
                format!("widening {} by {factor}", other.name()),
                "widen a ConvNet by a factor of at least 1 (ResNets set their width in their constructor)",
            )),
        }
    }
    /// CIFAR ResNet of depth 6n+2 (20, 32, 44, 56, 110): three stages of n basic blocks, widths 16/32/64.
    pub fn cifar_resnet(depth: usize) -> Result<Arch> {
        if depth < 8 || !(depth - 2).is_multiple_of(6) {
            return Err(Error::invalid(format!("CIFAR ResNet depth {depth} is not 6n+2"), "use 20, 32, 44, 56 or 110"));
        }
        let n = (depth - 2) / 6;
        Ok(Arch::ResNet { stages: vec![n; 3], width: 16, bottleneck: false, stem: Stem::Cifar })
    }
    pub fn resnet20() -> Arch {
        Arch::ResNet { stages: vec![3; 3], width: 16, bottleneck: false, stem: Stem::Cifar }
    }
    /// ResNet-18 with a 3x3 stem and no max-pool, for 32x32 inputs (the usual CIFAR ResNet-18).
    pub fn resnet18_cifar() -> Arch {
        Arch::ResNet { stages: vec![2, 2, 2, 2], width: 64, bottleneck: false, stem: Stem::Cifar }
    }
    /// torchvision's ResNet-18.
    pub fn resnet18() -> Arch {
        Arch::ResNet { stages: vec![2, 2, 2, 2], width: 64, bottleneck: false, stem: Stem::ImageNet }
    }
    /// torchvision's ResNet-50.
    pub fn resnet50() -> Arch {
        Arch::ResNet { stages: vec![3, 4, 6, 3], width: 64, bottleneck: true, stem: Stem::ImageNet }
    }

    /// Parses names used by the CLI and notebooks: convnet, resnet20/32/44/56/110, resnet18-cifar,
    /// resnet18, resnet50.
    pub fn from_name(name: &str) -> Result<Arch> {
        let n = name.trim().to_ascii_lowercase().replace('_', "-");
        match n.as_str() {
            "convnet" => Ok(Arch::convnet()),
            "linear" => Ok(Arch::Linear),
            "resnet18-cifar" => Ok(Arch::resnet18_cifar()),
            "resnet18" => Ok(Arch::resnet18()),
            "resnet50" => Ok(Arch::resnet50()),
            _ => match n.strip_prefix("resnet").and_then(|d| d.parse::<usize>().ok()) {
                Some(d) => Arch::cifar_resnet(d),
                None => Err(Error::invalid(
                    format!("unknown architecture '{name}'"),
                    "use linear, convnet, resnet20, resnet32, resnet44, resnet56, resnet110, resnet18-cifar, resnet18 or resnet50",
                )),
            },
        }
    }

    /// Checks the sizes before anything is built (libtorch would fail deep inside with a C++
    /// backtrace): ConvNet widths and ResNet stages non-empty and positive.
    pub fn check(&self) -> Result<()> {
        let bad = match self {
            Arch::ConvNet { widths } if widths.is_empty() || widths.iter().any(|&w| w < 1) => {
                Some(format!("ConvNet widths {widths:?}: every width must be at least 1, and at least one layer is needed"))
            }
            Arch::ResNet { stages, width, .. } if stages.is_empty() || stages.contains(&0) || *width < 1 => {
                Some(format!("ResNet stages {stages:?}, width {width}: every stage needs a block and the width must be at least 1"))
            }
            _ => None,
        };
        match bad {
            Some(problem) => {
                Err(Error::invalid(format!("architecture: {problem}"), "use e.g. `convnet` (widths [32, 64, 128]) or `resnet20`"))
            }
            None => Ok(()),
        }
    }

    /// A short human-readable name.
    pub fn name(&self) -> String {
        match self {
            Arch::ConvNet { widths } => format!("convnet{widths:?}"),
            Arch::Linear => "linear".into(),
            Arch::ResNet { stages, width, bottleneck, stem } => {
                let per_block = if *bottleneck { 3 } else { 2 };
                let depth = stages.iter().sum::<usize>() * per_block + 2;
                let suffix = match (stem, width) {
                    (Stem::Cifar, 64) => "-cifar",
                    _ => "",
                };
                format!("resnet{depth}{suffix}")
            }
        }
    }
}

/// Per-channel normalisation applied inside the network: (x - mean) / std, x in [0, 1].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Normalization {
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
}

impl Normalization {
    pub fn identity(channels: usize) -> Normalization {
        Normalization { mean: vec![0.0; channels], std: vec![1.0; channels] }
    }
    /// ImageNet statistics, as torchvision's pre-trained models expect.
    pub fn imagenet() -> Normalization {
        Normalization { mean: vec![0.485, 0.456, 0.406], std: vec![0.229, 0.224, 0.225] }
    }
    /// The statistics of a dataset's pixels.
    pub fn of(data: &crate::data::Dataset) -> Result<Normalization> {
        let (mean, std) = data.channel_stats()?;
        Ok(Normalization { mean, std: std.into_iter().map(|s| s.max(1e-3)).collect() })
    }
}

/// Everything that defines a network apart from its weights (what the JSON sidecar stores).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkSpec {
    pub arch: Arch,
    pub in_channels: i64,
    /// Input side length the network was built for (the ConvNet's pooling depends on it).
    pub input_size: i64,
    pub classes: Vec<String>,
    pub normalization: Normalization,
}

impl NetworkSpec {
    /// A spec fitting a dataset: its channels, size, classes and pixel statistics.
    pub fn for_data(arch: Arch, data: &crate::data::Dataset) -> Result<NetworkSpec> {
        let [c, h, _] = data.image_shape();
        Ok(NetworkSpec { arch, in_channels: c, input_size: h, classes: data.classes().to_vec(), normalization: Normalization::of(data)? })
    }

    fn check(&self) -> Result<()> {
        self.arch.check()?;
        let c = self.in_channels as usize;
        if self.in_channels < 1 || self.normalization.mean.len() != c || self.normalization.std.len() != c {
            return Err(Error::invalid(
                format!(
                    "{} input channels but normalisation for {} / {}",
                    self.in_channels,
                    self.normalization.mean.len(),
                    self.normalization.std.len()
                ),
                "give one mean and std per input channel",
            ));
        }
        if self.normalization.std.iter().any(|&s| s <= 0.0) {
            return Err(Error::invalid("normalisation std must be positive", "check the std values"));
        }
        if self.classes.is_empty() {
            return Err(Error::invalid("a network needs at least one class", "pass the class names"));
        }
        Ok(())
    }
}

#[derive(Debug)]
enum Body {
    ConvNet(convnet::ConvNet),
    Linear(layers::Linear),
    ResNet(resnet::ResNet),
}

/// A classifier: VarStore + architecture + normalisation inside the forward pass.
#[derive(Debug)]
pub struct Network {
    vs: nn::VarStore,
    spec: NetworkSpec,
    body: Body,
    mean: Tensor,
    std: Tensor,
    /// Tensors whose zeros must stay zero (a pruning mask, attached by `prune::Mask::attach`):
    /// name -> 0/1 float tensor on the network's device. The optimizer honours it.
    weight_mask: Option<std::collections::BTreeMap<String, Tensor>>,
}

#[derive(Debug)]
enum FoldedBody {
    ConvNet(convnet::FoldedConvNet),
    Linear(layers::Linear),
    ResNet(resnet::FoldedResNet),
}

/// A network frozen in eval mode for attacks and evaluation ([`Network::folded_eval`]): every
/// batch norm folded into the convolution before it, constant weights (input gradients only).
/// Same logits as `forward(x, false)` up to float rounding; valid while the weights do not change.
#[derive(Debug)]
pub struct FoldedNetwork {
    in_channels: i64,
    device: Device,
    mean: Tensor,
    std: Tensor,
    body: FoldedBody,
}

impl FoldedNetwork {
    /// Logits for a batch of images in [0, 1] (see [`Network::forward`]).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        check_input(x, self.in_channels, self.device)?;
        let x = x.f_sub(&self.mean)?.f_div(&self.std)?;
        match &self.body {
            FoldedBody::ConvNet(m) => m.forward(&channels_last(&x)?),
            FoldedBody::Linear(m) => m.forward(&x.f_flatten(1, -1)?),
            FoldedBody::ResNet(m) => m.forward(&x),
        }
    }
}

fn check_input(x: &Tensor, in_channels: i64, device: Device) -> Result<()> {
    let size = x.size();
    if size.len() != 4 || size[1] != in_channels {
        return Err(Error::invalid(
            format!("input of shape {size:?} for a network that takes N x {in_channels} x H x W"),
            "pass a 4-d batch with the network's number of channels",
        ));
    }
    if x.device() != device {
        return Err(Error::invalid(
            format!("input on {:?}, network on {device:?}", x.device()),
            "move the batch with .to_device(net.device())",
        ));
    }
    Ok(())
}

/// A 4-d tensor with the same values laid out channels-last (NHWC strides, shape unchanged);
/// other tensors are returned as they are. The ConvNet keeps its convolution weights (and its
/// input) this way ([`Arch::channels_last`]): libtorch's oneDNN convolutions, pooling and batch
/// norm then run in NHWC end to end, which measured 1.16-1.39x faster for its sparse PGD
/// training (BENCHMARKS.md). tch has no memory-format
/// argument, so the layout is made by a copy into a tensor with NHWC strides. Files store the plain layout
/// ([`io::write_tensors`]); values and every result are the same up to floating-point order.
/// Differentiable (inputs go through it in the forward pass).
pub fn channels_last(t: &Tensor) -> Result<Tensor> {
    if t.dim() != 4 {
        return Ok(t.shallow_clone());
    }
    let size = t.size();
    let strides = nhwc_strides(&size);
    if t.stride() == strides {
        return Ok(t.shallow_clone());
    }
    let mut out = Tensor::f_empty_strided(&size, strides, (t.kind(), t.device()))?;
    out.f_copy_(t)?;
    Ok(out)
}

/// The exact NHWC strides of a 4-d shape, also for size-1 dimensions: libtorch reads a 1-channel
/// tensor with plain strides as NCHW, which would keep the first convolution (the largest) NCHW.
fn nhwc_strides(size: &[i64]) -> [i64; 4] {
    let (c, h, w) = (size[1], size[2], size[3]);
    [h * w * c, 1, w * c, c]
}

/// `t` laid out like `like`: channels-last if `like` is, plain (contiguous) otherwise.
pub fn layout_like(t: &Tensor, like: &Tensor) -> Result<Tensor> {
    if like.dim() == 4 && like.stride() == nhwc_strides(&like.size()) {
        channels_last(t)
    } else {
        Ok(t.f_contiguous()?)
    }
}

/// A detached copy of a tensor with its own storage.
pub fn deep_copy(t: &Tensor) -> Result<Tensor> {
    let _guard = tch::no_grad_guard();
    let mut copy = t.f_zeros_like()?;
    copy.f_copy_(t)?;
    Ok(copy)
}

/// Serialises weight initialisation, which draws from libtorch's global generator.
static INIT_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Name of the classifier head's module in every architecture.
pub const HEAD: &str = "fc";

impl Network {
    /// Builds a freshly initialised network. Initialisation draws from a generator seeded with
    /// `seed` on the CPU, so the same seed gives the same weights on any device.
    pub fn new(spec: NetworkSpec, device: Device, seed: u64) -> Result<Network> {
        spec.check()?;
        let mut net = {
            // libtorch's generator is global: hold the lock from seeding to the last draw so
            // networks built on other threads cannot interleave their draws with ours.
            let _lock = INIT_LOCK.lock().unwrap_or_else(|e| e.into_inner());
            tch::manual_seed(seed as i64);
            Self::build(nn::VarStore::new(Device::Cpu), spec)?
        };
        net.vs.set_device(device);
        net.refresh_normalizer()?;
        Ok(net)
    }

    fn build(vs: nn::VarStore, spec: NetworkSpec) -> Result<Network> {
        let root = vs.root();
        let classes = spec.classes.len() as i64;
        let body = match &spec.arch {
            Arch::Linear => Body::Linear(layers::Linear::new(&root / HEAD, spec.in_channels * spec.input_size * spec.input_size, classes)?),
            Arch::ConvNet { widths } => Body::ConvNet(convnet::ConvNet::new(&root, spec.in_channels, widths, spec.input_size, classes)?),
            Arch::ResNet { stages, width, bottleneck, stem } => {
                Body::ResNet(resnet::ResNet::new(&root, spec.in_channels, stages, *width, *bottleneck, *stem, classes)?)
            }
        };
        let _guard = tch::no_grad_guard();
        for (_, mut w) in vs.variables() {
            if w.dim() == 4 && spec.arch.channels_last() {
                w.f_set_data(&channels_last(&w)?)?;
            }
        }
        let (mean, std) = Self::normalizer(&spec.normalization, vs.device())?;
        Ok(Network { vs, spec, body, mean, std, weight_mask: None })
    }

    fn normalizer(n: &Normalization, device: Device) -> Result<(Tensor, Tensor)> {
        let c = n.mean.len() as i64;
        let t =
            |v: &[f64]| -> Result<Tensor> { Ok(Tensor::from_slice(v).f_to_kind(Kind::Float)?.f_view([1, c, 1, 1])?.f_to_device(device)?) };
        Ok((t(&n.mean)?, t(&n.std)?))
    }

    fn refresh_normalizer(&mut self) -> Result<()> {
        (self.mean, self.std) = Self::normalizer(&self.spec.normalization, self.vs.device())?;
        Ok(())
    }

    /// Logits for a batch of images in [0, 1], N x C x H x W. `train` selects batch statistics
    /// (and updates BN running averages) instead of the running averages.
    pub fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        check_input(x, self.spec.in_channels, self.device())?;
        let x = x.f_sub(&self.mean)?.f_div(&self.std)?;
        match &self.body {
            Body::ConvNet(m) => m.forward(&channels_last(&x)?, train),
            Body::Linear(m) => m.forward(&x.f_flatten(1, -1)?),
            Body::ResNet(m) => m.forward(&x, train),
        }
    }

    /// The network frozen in eval mode with batch norms folded into the convolutions, for the
    /// many forward / input-backward passes of an attack or an evaluation (see [`FoldedNetwork`]).
    pub fn folded_eval(&self) -> Result<FoldedNetwork> {
        let body = match &self.body {
            Body::ConvNet(m) => FoldedBody::ConvNet(m.folded()?),
            Body::Linear(m) => FoldedBody::Linear(m.detached()?),
            Body::ResNet(m) => FoldedBody::ResNet(m.folded()?),
        };
        Ok(FoldedNetwork {
            in_channels: self.spec.in_channels,
            device: self.device(),
            mean: self.mean.shallow_clone(),
            std: self.std.shallow_clone(),
            body,
        })
    }

    /// Sets (or clears) the 0/1 masks the optimizer keeps pruned weights zero with; used by
    /// `prune::Mask::attach`, which also zeroes the pruned weights.
    pub fn set_weight_mask(&mut self, masks: Option<std::collections::BTreeMap<String, Tensor>>) -> Result<()> {
        self.weight_mask = match masks {
            None => None,
            Some(m) => {
                // Each mask in its parameter's layout, so the masked update runs on matching strides.
                let params: std::collections::HashMap<String, Tensor> = self.named_tensors().into_iter().collect();
                Some(
                    m.into_iter()
                        .map(|(k, v)| {
                            let v = v.f_to_device(self.device())?.f_to_kind(Kind::Float)?;
                            let v = match params.get(&k) {
                                Some(p) => layout_like(&v, p)?,
                                None => v,
                            };
                            Ok((k, v))
                        })
                        .collect::<Result<_>>()?,
                )
            }
        };
        Ok(())
    }

    /// The 0/1 mask of a tensor, if a pruning mask is attached and covers it.
    pub fn weight_mask(&self, name: &str) -> Option<&Tensor> {
        self.weight_mask.as_ref().and_then(|m| m.get(name))
    }

    /// Whether a pruning mask is attached.
    pub fn is_masked(&self) -> bool {
        self.weight_mask.is_some()
    }

    /// Predicted class indices for a batch (eval mode, no gradients).
    pub fn predict(&self, x: &Tensor) -> Result<Vec<i64>> {
        let _guard = tch::no_grad_guard();
        Ok(Vec::<i64>::try_from(self.forward(x, false)?.f_argmax(-1, false)?.f_to_device(Device::Cpu)?)?)
    }

    /// Checks that `data` is what this network was built for: same channels, image size and
    /// classes (by name). Evaluating a network on another task's data would print a number
    /// that means nothing; transfer gives the network a new head first
    /// ([`Network::with_new_head`]).
    pub fn check_fits(&self, data: &crate::data::Dataset) -> Result<()> {
        let [c, h, w] = data.image_shape();
        let spec = &self.spec;
        let mut problems = Vec::new();
        if c != spec.in_channels {
            problems.push(format!("{c} channels, the network takes {}", spec.in_channels));
        }
        if h != spec.input_size || w != spec.input_size {
            problems.push(format!("{h}x{w} images, the network was built for {0}x{0}", spec.input_size));
        }
        if data.classes() != spec.classes.as_slice() {
            let show = |c: &[String]| if c.len() > 4 { format!("{}, ... ({} classes)", c[..4].join(", "), c.len()) } else { c.join(", ") };
            problems.push(format!("classes [{}], the network predicts [{}]", show(data.classes()), show(&spec.classes)));
        }
        if problems.is_empty() {
            return Ok(());
        }
        Err(Error::invalid(
            format!("{} does not fit the network: {}", data.name(), problems.join("; ")),
            "evaluate on the data the network was trained for, build a network for this dataset (NetworkSpec::for_data), \
             or transfer it (new head) first",
        ))
    }

    pub fn spec(&self) -> &NetworkSpec {
        &self.spec
    }
    pub fn arch(&self) -> &Arch {
        &self.spec.arch
    }
    pub fn classes(&self) -> &[String] {
        &self.spec.classes
    }
    pub fn num_classes(&self) -> usize {
        self.spec.classes.len()
    }
    pub fn device(&self) -> Device {
        self.vs.device()
    }
    pub fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }
    pub fn var_store_mut(&mut self) -> &mut nn::VarStore {
        &mut self.vs
    }

    /// All tensors (trainable parameters and BN buffers), sorted by name.
    pub fn named_tensors(&self) -> Vec<(String, Tensor)> {
        let mut v: Vec<(String, Tensor)> = self.vs.variables().into_iter().collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Trainable parameters, sorted by name.
    pub fn parameters(&self) -> Vec<(String, Tensor)> {
        self.named_tensors().into_iter().filter(|(_, t)| t.requires_grad()).collect()
    }

    /// Number of trainable scalars.
    pub fn num_parameters(&self) -> i64 {
        self.parameters().iter().map(|(_, t)| t.numel() as i64).sum()
    }

    /// Names of the tensors IMP prunes by default: every convolution weight (4-d), head excluded.
    pub fn prunable_names(&self) -> Vec<String> {
        self.named_tensors().into_iter().filter(|(n, t)| t.dim() == 4 && n.ends_with(".weight")).map(|(n, _)| n).collect()
    }

    /// Deep copies of all tensors (for rewinding and best-checkpoint selection).
    pub fn snapshot(&self) -> Result<Vec<(String, Tensor)>> {
        self.named_tensors().into_iter().map(|(n, t)| Ok((n, deep_copy(&t)?))).collect()
    }

    /// Copies values from a snapshot or from another network's tensors into this network.
    /// Every tensor of the network must be present with the same shape.
    pub fn restore(&mut self, values: &[(String, Tensor)]) -> Result<()> {
        let source: std::collections::HashMap<&str, &Tensor> = values.iter().map(|(n, t)| (n.as_str(), t)).collect();
        let _guard = tch::no_grad_guard();
        for (name, mut dst) in self.named_tensors() {
            let src = source.get(name.as_str()).ok_or_else(|| {
                Error::not_found(format!("tensor '{name}' in the values to restore"), "restore from a snapshot of the same architecture")
            })?;
            if src.size() != dst.size() {
                return Err(Error::invalid(
                    format!("'{name}' has shape {:?}, the values {:?}", dst.size(), src.size()),
                    "restore from the same architecture",
                ));
            }
            dst.f_copy_(src)?;
        }
        Ok(())
    }

    /// A copy of this network with the same weights but a freshly initialised head for
    /// `classes` (for transfer). The new head's init is seeded by `seed`.
    pub fn with_new_head(&self, classes: Vec<String>, seed: u64) -> Result<Network> {
        let spec = NetworkSpec { classes, ..self.spec.clone() };
        let mut fresh = Network::new(spec, self.device(), seed)?;
        let keep: Vec<(String, Tensor)> = self.named_tensors().into_iter().filter(|(n, _)| !n.starts_with(&format!("{HEAD}."))).collect();
        let head: Vec<(String, Tensor)> = fresh.named_tensors().into_iter().filter(|(n, _)| n.starts_with(&format!("{HEAD}."))).collect();
        fresh.restore(&keep.into_iter().chain(head).collect::<Vec<_>>())?;
        fresh.weight_mask = self.weight_mask.as_ref().map(|m| m.iter().map(|(k, v)| (k.clone(), v.shallow_clone())).collect());
        Ok(fresh)
    }

    /// A copy with its own weights (deep copy).
    pub fn try_clone(&self) -> Result<Network> {
        let mut net = {
            let _lock = INIT_LOCK.lock().unwrap_or_else(|e| e.into_inner());
            Self::build(nn::VarStore::new(Device::Cpu), self.spec.clone())?
        };
        net.vs.set_device(self.device());
        net.refresh_normalizer()?;
        net.restore(&self.named_tensors())?;
        net.weight_mask = self.weight_mask.as_ref().map(|m| m.iter().map(|(k, v)| (k.clone(), v.shallow_clone())).collect());
        Ok(net)
    }

    /// Moves all tensors to `device`.
    pub fn to_device(&mut self, device: Device) -> Result<()> {
        self.vs.set_device(device);
        if let Some(m) = self.weight_mask.take() {
            self.set_weight_mask(Some(m))?;
        }
        self.refresh_normalizer()
    }

    /// Replaces the normalisation (e.g. with the downstream dataset's statistics for transfer).
    pub fn set_normalization(&mut self, n: Normalization) -> Result<()> {
        let spec = NetworkSpec { normalization: n, ..self.spec.clone() };
        spec.check()?;
        self.spec = spec;
        self.refresh_normalizer()
    }

    /// Adapts the network to square inputs of `size` pixels, for transfer to data of another
    /// size: convolutional networks end in global pooling and take any size; a linear model
    /// (whose weights depend on the input size) cannot.
    pub fn set_input_size(&mut self, size: i64) -> Result<()> {
        if size == self.spec.input_size {
            return Ok(());
        }
        if matches!(self.spec.arch, Arch::Linear) {
            return Err(Error::invalid(
                format!("a linear model built for {0}x{0} inputs cannot take {size}x{size}", self.spec.input_size),
                "transfer between datasets with the same image size",
            ));
        }
        self.spec = NetworkSpec { input_size: size, ..self.spec.clone() };
        Ok(())
    }

    /// SHA-256 over names, shapes and values of every tensor: identifies weights independent
    /// of file format.
    pub fn content_hash(&self) -> Result<String> {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        for (name, t) in self.named_tensors() {
            h.update(name.as_bytes());
            h.update(format!("{:?}", t.size()).as_bytes());
            let cpu = t.f_to_device(Device::Cpu)?.f_to_kind(Kind::Float)?.f_contiguous()?;
            let v = Vec::<f32>::try_from(cpu.f_flatten(0, -1)?)?;
            for x in v {
                h.update(x.to_le_bytes());
            }
        }
        Ok(crate::fsio::hex(&h.finalize()))
    }
}

impl std::fmt::Display for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({} input channels, {} classes, {} parameters, {} prunable tensors) on {:?}",
            self.spec.arch.name(),
            self.spec.in_channels,
            self.num_classes(),
            self.num_parameters(),
            self.prunable_names().len(),
            self.device()
        )
    }
}
