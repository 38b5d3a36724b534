//! Loss landscapes with training trajectories (the paper's Fig. 6, after Li et al. 2018): a 2-D
//! plane through the final weights, spanned by the top-2 PCA directions of the per-epoch weight
//! differences (w_i - w_final) or by two filter-normalised random directions; clean or
//! adversarial loss on an N x N grid over a fixed data subset; the checkpoints projected onto the
//! plane. Only the prunable weights move in the plane, and pruned weights stay exactly zero.

use crate::attack::{Attack, AttackSpec, Norm, Pgd};
use crate::data::{Augment, Dataset};
use crate::display::{evcxr_emit, Table};
use crate::error::{Error, Result};
use crate::model::Network;
use crate::plot::{contour_segments, palette, Figure, Layer, Panel, Series};
use crate::prune::Mask;
use crate::runtime::Rng;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tch::{Kind, Reduction, Tensor};

/// How the plane is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Directions {
    /// Top-2 principal directions of the trajectory (centred, as Li et al.'s code does).
    Pca,
    /// Two Gaussian directions, each filter rescaled to the norm of the weights' filter.
    FilterNormalizedRandom { seed: u64 },
}

/// The loss drawn on the grid.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LandscapeLoss {
    Clean,
    /// Cross-entropy on PGD examples (L-inf, random start seeded identically at every point).
    Adversarial {
        eps: f64,
        steps: usize,
    },
}

impl LandscapeLoss {
    pub fn name(&self) -> String {
        match self {
            LandscapeLoss::Clean => "clean loss".into(),
            LandscapeLoss::Adversarial { eps, steps } => format!("PGD-{steps} loss (eps {})", crate::attack::format_eps(*eps)),
        }
    }
    fn attack(&self) -> Option<AttackSpec> {
        match *self {
            LandscapeLoss::Clean => None,
            LandscapeLoss::Adversarial { eps, steps } => Some(Pgd::spanning(Norm::Linf, eps, steps).seed(0).into()),
        }
    }
}

/// Grid, plane and loss of a landscape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, derive_setters::Setters)]
#[serde(deny_unknown_fields)]
#[setters(generate = false)]
pub struct LandscapeConfig {
    #[setters(generate)]
    pub directions: Directions,
    #[setters(generate)]
    pub loss: LandscapeLoss,
    /// Points per axis (odd, so the final weights sit on the grid).
    #[setters(generate)]
    pub resolution: usize,
    /// The grid spans this multiple of the trajectory's extent along each axis (PCA), or
    /// [-margin, margin] in units of the filter-normalised directions (random).
    #[setters(generate)]
    pub margin: f64,
    /// When set, the grid spans [-radius, radius] along both directions instead, in absolute
    /// units (distance in weight space for PCA planes, filter-normalised units for random ones):
    /// landscapes drawn with one radius share a scale and can be compared side by side.
    #[serde(default)]
    pub radius: Option<f64>,
    /// Size of the fixed, stratified evaluation subset.
    #[setters(generate)]
    pub examples: usize,
    pub seed: u64,
}

impl Default for LandscapeConfig {
    fn default() -> Self {
        LandscapeConfig {
            directions: Directions::Pca,
            loss: LandscapeLoss::Clean,
            resolution: 21,
            margin: 1.3,
            radius: None,
            examples: 256,
            seed: 0,
        }
    }
}

impl LandscapeConfig {
    pub fn radius(mut self, r: f64) -> Self {
        self.radius = Some(r);
        self
    }
    /// Checks the values before any work starts.
    pub fn check(&self) -> Result<()> {
        if self.resolution < 3 || self.resolution.is_multiple_of(2) {
            return Err(Error::invalid(format!("grid resolution {}", self.resolution), "use an odd number >= 3, e.g. 21"));
        }
        if self.margin.is_nan() || self.margin <= 0.0 || self.examples == 0 || self.radius.is_some_and(|r| r.is_nan() || r <= 0.0) {
            return Err(Error::invalid("landscape margin or example count is not positive", "use e.g. margin 1.3, 256 examples"));
        }
        Ok(())
    }
}

/// Two directions over the prunable weights, flattened in name order.
#[derive(Debug)]
pub struct Plane {
    pub names: Vec<String>,
    pub shapes: Vec<Vec<i64>>,
    pub d1: Tensor,
    pub d2: Tensor,
    /// Fraction of the trajectory's variance along each PCA direction.
    pub explained_variance: Option<[f64; 2]>,
}

/// The prunable weights of `tensors` (by `names`), flattened into one float vector on the CPU.
fn flatten(tensors: &HashMap<String, Tensor>, names: &[String]) -> Result<Tensor> {
    let parts = names
        .iter()
        .map(|n| {
            let t =
                tensors.get(n).ok_or_else(|| Error::not_found(format!("tensor '{n}' in a checkpoint"), "use checkpoints of one run"))?;
            Ok(t.f_detach()?.f_to_device(tch::Device::Cpu)?.f_to_kind(Kind::Double)?.f_reshape([-1])?)
        })
        .collect::<Result<Vec<Tensor>>>()?;
    Ok(Tensor::f_cat(&parts, 0)?)
}

fn tensors_of(net: &Network) -> HashMap<String, Tensor> {
    net.named_tensors().into_iter().collect()
}

fn dot(a: &Tensor, b: &Tensor) -> Result<f64> {
    Ok(a.f_dot(b)?.f_double_value(&[])?)
}

impl Plane {
    /// Names of the weights that move in the plane: the mask's, or every prunable weight.
    fn moving(net: &Network, mask: Option<&Mask>) -> Vec<String> {
        match mask {
            Some(m) => m.names().cloned().collect(),
            None => net.prunable_names(),
        }
    }

    /// The mask over `names` as 0 / 1 floats, flattened like the weights (all ones without a mask).
    fn flat_mask(mask: Option<&Mask>, names: &[String], len: i64) -> Result<Tensor> {
        match mask {
            Some(m) => flatten(&m.iter().map(|(n, t)| (n.clone(), t.shallow_clone())).collect(), names),
            None => Ok(Tensor::f_ones([len], (Kind::Double, tch::Device::Cpu))?),
        }
    }

    /// The top-2 PCA directions of `trajectory` relative to its last checkpoint (the final
    /// weights), zeroed where the mask prunes and orthonormalised. The checkpoints are read one
    /// at a time; only their moving weights are kept (memory: parameters x checkpoints).
    pub fn pca(trajectory: &Trajectory, mask: Option<&Mask>) -> Result<Plane> {
        if trajectory.len() < 3 {
            return Err(Error::invalid(
                format!("{} checkpoints: PCA of a trajectory needs at least 3", trajectory.len()),
                "fine-tune for at least 2 epochs with per-epoch checkpoints, or use random directions",
            ));
        }
        let last = trajectory.last()?;
        let names = Plane::moving(&last, mask);
        let shapes = shapes_of(&last, &names);
        let w_final = flatten(&tensors_of(&last), &names)?;
        drop(last);
        // One row per checkpoint (w_i - w_final), filled in place and centred in place: the only
        // large allocation is this checkpoints x parameters matrix.
        let mut centred = Tensor::f_zeros([trajectory.len() as i64, w_final.size()[0]], (Kind::Double, tch::Device::Cpu))?;
        let mut row = 0;
        trajectory.each(|_, net| {
            centred.f_select(0, row)?.f_copy_(&flatten(&tensors_of(net), &names)?.f_sub(&w_final)?)?;
            row += 1;
            Ok(())
        })?;
        let mean = centred.f_mean_dim(0, true, Kind::Double)?;
        let _ = centred.f_sub_(&mean)?;
        let gram = centred.f_matmul(&centred.f_transpose(0, 1)?)?;
        let (values, vectors) = gram.f_linalg_eigh("L")?;
        let n = values.size()[0];
        let ev: Vec<f64> = Vec::<f64>::try_from(&values)?;
        let total: f64 = ev.iter().map(|v| v.max(0.0)).sum();
        if ev[(n - 2) as usize].is_nan() || ev[(n - 2) as usize] <= 1e-12 * total.max(1e-300) {
            return Err(Error::invalid("the trajectory does not span two directions (weights barely moved)", "use random directions"));
        }
        let mask_flat = Plane::flat_mask(mask, &names, w_final.size()[0])?;
        let dir = |k: i64| -> Result<Tensor> { Ok(centred.f_transpose(0, 1)?.f_matmul(&vectors.f_select(1, k)?)?.f_mul(&mask_flat)?) };
        let (d1, d2) = orthonormal(dir(n - 1)?, dir(n - 2)?)?;
        Ok(Plane { shapes, names, d1, d2, explained_variance: Some([ev[(n - 1) as usize] / total, ev[(n - 2) as usize] / total]) })
    }

    /// Two filter-normalised Gaussian directions (Li et al.): each output filter of each weight
    /// gets the norm of that filter in `net`; pruned entries are zero.
    pub fn filter_normalized(net: &Network, mask: Option<&Mask>, seed: u64) -> Result<Plane> {
        let names = Plane::moving(net, mask);
        let tensors = tensors_of(net);
        let mut rng = Rng::new(seed);
        let mut direction = || -> Result<Tensor> {
            let mut parts = Vec::new();
            for n in &names {
                let w = tensors[n].f_detach()?.f_to_device(tch::Device::Cpu)?.f_to_kind(Kind::Double)?;
                let mut d = rng.normal_tensor(&w.size(), tch::Device::Cpu)?.f_to_kind(Kind::Double)?;
                if let Some(m) = mask.and_then(|m| m.get(n)) {
                    d = d.f_mul(&m.f_to_kind(Kind::Double)?.f_to_device(tch::Device::Cpu)?)?;
                }
                let rows = w.size()[0];
                let (w2, d2) = (w.f_reshape([rows, -1])?, d.f_reshape([rows, -1])?);
                let scale = w2
                    .f_norm_scalaropt_dim(2.0, [1i64].as_slice(), true)?
                    .f_div(&d2.f_norm_scalaropt_dim(2.0, [1i64].as_slice(), true)?.f_add_scalar(1e-10)?)?;
                parts.push(d2.f_mul(&scale)?.f_reshape([-1])?);
            }
            Ok(Tensor::f_cat(&parts, 0)?)
        };
        let (d1, d2) = (direction()?, direction()?);
        Ok(Plane { shapes: shapes_of(net, &names), names, d1, d2, explained_variance: None })
    }

    /// Coordinates of `net` in the plane through `origin`: exact for orthonormal directions,
    /// least squares otherwise.
    pub fn project(&self, origin: &Tensor, net: &Network) -> Result<(f64, f64)> {
        let delta = flatten(&tensors_of(net), &self.names)?.f_sub(origin)?;
        let (a11, a12, a22) = (dot(&self.d1, &self.d1)?, dot(&self.d1, &self.d2)?, dot(&self.d2, &self.d2)?);
        let (b1, b2) = (dot(&self.d1, &delta)?, dot(&self.d2, &delta)?);
        let det = a11 * a22 - a12 * a12;
        Ok(((a22 * b1 - a12 * b2) / det, (a11 * b2 - a12 * b1) / det))
    }

    /// Sets the moving weights of `net` to `origin + a d1 + b d2`.
    fn place(&self, net: &Network, origin: &Tensor, a: f64, b: f64) -> Result<()> {
        let w = origin.f_add(&self.d1.f_mul_scalar(a)?)?.f_add(&self.d2.f_mul_scalar(b)?)?;
        let tensors = tensors_of(net);
        let _guard = tch::no_grad_guard();
        let mut offset = 0;
        for (name, shape) in self.names.iter().zip(&self.shapes) {
            let len: i64 = shape.iter().product();
            let mut dst = tensors[name].shallow_clone();
            let src = w.f_narrow(0, offset, len)?.f_reshape(shape.as_slice())?.f_to_kind(dst.kind())?.f_to_device(dst.device())?;
            dst.f_copy_(&src)?;
            offset += len;
        }
        Ok(())
    }
}

fn shapes_of(net: &Network, names: &[String]) -> Vec<Vec<i64>> {
    let t = tensors_of(net);
    names.iter().map(|n| t[n].size()).collect()
}

/// Gram-Schmidt on two vectors.
fn orthonormal(a: Tensor, b: Tensor) -> Result<(Tensor, Tensor)> {
    let a = a.f_div_scalar(dot(&a, &a)?.sqrt())?;
    let b = b.f_sub(&a.f_mul_scalar(dot(&a, &b)?)?)?;
    let nb = dot(&b, &b)?.sqrt();
    Ok((a, b.f_div_scalar(nb)?))
}

/// Mean cross-entropy of `net` on `data` (eval mode), on PGD examples when `attack` is given.
/// The attack is cloned first: a fresh clone draws the same random starts on every call, so
/// every grid point faces the same attack.
fn loss_on(net: &Network, data: &Dataset, attack: Option<&AttackSpec>) -> Result<f64> {
    let attack = attack.cloned();
    let mut sum = 0.0;
    for batch in data.batches(256, None, Augment::none(), net.device())? {
        let b = batch?;
        let x = match &attack {
            Some(a) => a.perturb(net, &b.images, &b.labels)?,
            None => b.images.shallow_clone(),
        };
        let _guard = tch::no_grad_guard();
        let loss = net.forward(&x, false)?.f_cross_entropy_loss::<Tensor>(&b.labels, None, Reduction::Sum, -100, 0.0)?;
        sum += loss.f_double_value(&[])?;
    }
    Ok(sum / data.len().max(1) as f64)
}

/// A computed landscape: the loss grid, the projected trajectory and what they were made from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Landscape {
    pub title: String,
    pub config: LandscapeConfig,
    /// Grid coordinates along the first and second direction.
    pub alphas: Vec<f64>,
    pub betas: Vec<f64>,
    /// `loss[j][i]`: loss at (alphas[i], betas[j]).
    pub loss: Vec<Vec<f64>>,
    /// The checkpoints' coordinates, in training order (the last is the final weights, (0, 0)).
    pub trajectory: Vec<(f64, f64)>,
    /// The epoch of each trajectory point.
    pub epochs: Vec<usize>,
    pub explained_variance: Option<[f64; 2]>,
    /// Loss of the final weights on the subset, measured before any weight moved.
    pub final_loss: f64,
    pub examples: usize,
    pub sparsity: f64,
}

/// Computes the landscape around the last checkpoint of `trajectory` (in epoch order, starting
/// with the initial weights), with `mask` zeroing pruned weights everywhere on the plane.
/// Checkpoints are read one at a time, so memory stays O(parameters x checkpoints) for PCA
/// planes and O(parameters) for random ones.
pub fn landscape(title: &str, trajectory: &Trajectory, mask: Option<&Mask>, data: &Dataset, cfg: &LandscapeConfig) -> Result<Landscape> {
    cfg.check()?;
    let net = trajectory.last()?;
    net.check_fits(data)?;
    if let Some(m) = mask {
        m.check_fits(&net)?;
    }
    let subset = if cfg.examples >= data.len() { data.clone() } else { data.fraction(cfg.examples as f64 / data.len() as f64, cfg.seed)? };
    let attack = cfg.loss.attack();
    let final_loss = loss_on(&net, &subset, attack.as_ref())?;
    let plane = match cfg.directions {
        Directions::Pca => Plane::pca(trajectory, mask)?,
        Directions::FilterNormalizedRandom { seed } => Plane::filter_normalized(&net, mask, seed)?,
    };
    let origin = flatten(&tensors_of(&net), &plane.names)?;
    let mut coords = Vec::with_capacity(trajectory.len());
    trajectory.each(|_, checkpoint| {
        coords.push(plane.project(&origin, checkpoint)?);
        Ok(())
    })?;
    let extent = |f: fn(&(f64, f64)) -> f64| match (cfg.radius, cfg.directions) {
        (Some(r), _) => r,
        (None, Directions::Pca) => cfg.margin * coords.iter().map(|c| f(c).abs()).fold(1e-6, f64::max),
        (None, Directions::FilterNormalizedRandom { .. }) => {
            cfg.margin.max(cfg.margin * coords.iter().map(|c| f(c).abs()).fold(0.0, f64::max))
        }
    };
    let n = cfg.resolution;
    // i * 2 / (n - 1) - 1 is exactly 0 at the centre, so the final weights are a grid point.
    let axis = |r: f64| (0..n).map(|i| r * (2.0 * i as f64 / (n - 1) as f64 - 1.0)).collect::<Vec<f64>>();
    let (alphas, betas) = (axis(extent(|c| c.0)), axis(extent(|c| c.1)));
    let mut loss = vec![vec![f64::NAN; n]; n];
    let started = std::time::Instant::now();
    for (j, &b) in betas.iter().enumerate() {
        for (i, &a) in alphas.iter().enumerate() {
            plane.place(&net, &origin, a, b)?;
            loss[j][i] = loss_on(&net, &subset, attack.as_ref())?;
        }
        if started.elapsed().as_secs() >= 5 || j + 1 == n {
            crate::progress::note(&format!("landscape {title}: row {}/{n} ({:.0}s)", j + 1, started.elapsed().as_secs_f64()));
        }
    }
    Ok(Landscape {
        title: title.to_string(),
        config: cfg.clone(),
        alphas,
        betas,
        loss,
        trajectory: coords,
        epochs: trajectory.epochs().to_vec(),
        explained_variance: plane.explained_variance,
        final_loss,
        examples: subset.len(),
        sparsity: mask.map(|m| m.sparsity()).unwrap_or(0.0),
    })
}

/// The checkpoints of a training run in epoch order: files written by
/// [`crate::train::EpochCheckpoints`] (read one at a time, when needed) or networks in memory.
#[derive(Debug)]
pub struct Trajectory {
    epochs: Vec<usize>,
    source: Checkpoints,
}

#[derive(Debug)]
enum Checkpoints {
    Files { paths: Vec<PathBuf>, device: tch::Device },
    Networks(Vec<Network>),
}

impl Trajectory {
    /// The checkpoints `epoch-N.safetensors` of `dir`, ordered by the epoch number N (parsed,
    /// so `epoch-1000` comes after `epoch-999` whatever the padding).
    pub fn open(dir: impl AsRef<Path>, device: tch::Device) -> Result<Trajectory> {
        let dir = dir.as_ref();
        let entries = std::fs::read_dir(dir).map_err(|e| {
            Error::not_found(format!("checkpoint folder {} ({e})", dir.display()), "train with EpochCheckpoints into it first")
        })?;
        let mut files: Vec<(usize, PathBuf)> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter_map(|p| Some((crate::train::EpochCheckpoints::epoch_of(&p)?, p)))
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(Error::not_found(format!("epoch-*.safetensors in {}", dir.display()), "train with EpochCheckpoints into it first"));
        }
        let (epochs, paths) = files.into_iter().unzip();
        Ok(Trajectory { epochs, source: Checkpoints::Files { paths, device } })
    }

    /// Networks already in memory, in training order (epochs numbered 0, 1, ...).
    pub fn from_networks(nets: Vec<Network>) -> Result<Trajectory> {
        if nets.is_empty() {
            return Err(Error::invalid("empty trajectory", "pass the per-epoch checkpoints of a run"));
        }
        Ok(Trajectory { epochs: (0..nets.len()).collect(), source: Checkpoints::Networks(nets) })
    }

    pub fn len(&self) -> usize {
        self.epochs.len()
    }
    pub fn is_empty(&self) -> bool {
        self.epochs.is_empty()
    }
    /// The epoch of each checkpoint, in order.
    pub fn epochs(&self) -> &[usize] {
        &self.epochs
    }

    /// The `i`-th checkpoint (0-based position, not epoch).
    pub fn get(&self, i: usize) -> Result<Network> {
        match &self.source {
            _ if i >= self.len() => Err(Error::invalid(format!("checkpoint {i} of {}", self.len()), "use a position below len()")),
            Checkpoints::Files { paths, device } => Network::load(&paths[i], *device),
            Checkpoints::Networks(nets) => nets[i].try_clone(),
        }
    }

    /// The final weights.
    pub fn last(&self) -> Result<Network> {
        self.get(self.len().saturating_sub(1))
    }

    /// The distance in weight space (prunable weights) from the first checkpoint to the last.
    pub fn span(&self) -> Result<f64> {
        let (first, last) = (self.get(0)?, self.last()?);
        let names = first.prunable_names();
        Ok(flatten(&tensors_of(&first), &names)?.f_sub(&flatten(&tensors_of(&last), &names)?)?.f_norm()?.f_double_value(&[])?)
    }

    /// Calls `f(epoch, network)` for every checkpoint in order, holding one at a time.
    pub fn each(&self, mut f: impl FnMut(usize, &Network) -> Result<()>) -> Result<()> {
        match &self.source {
            Checkpoints::Files { paths, device } => {
                for (e, p) in self.epochs.iter().zip(paths) {
                    f(*e, &Network::load(p, *device)?)?;
                }
                Ok(())
            }
            Checkpoints::Networks(nets) => self.epochs.iter().zip(nets).try_for_each(|(e, n)| f(*e, n)),
        }
    }
}

/// [`Trajectory::open`].
pub fn load_trajectory(dir: impl AsRef<Path>, device: tch::Device) -> Result<Trajectory> {
    Trajectory::open(dir, device)
}

impl Landscape {
    /// The loss grid as an ndarray: `[j, i]` is the loss at (`betas[j]`, `alphas[i]`).
    pub fn loss_array(&self) -> ndarray::Array2<f64> {
        let (rows, cols) = (self.loss.len(), self.loss.first().map_or(0, |r| r.len()));
        ndarray::Array2::from_shape_fn((rows, cols), |(j, i)| self.loss[j][i])
    }

    /// The grid value at the final weights (the centre of the grid).
    pub fn origin_loss(&self) -> f64 {
        let c = self.alphas.len() / 2;
        self.loss[c][c]
    }

    fn axis_labels(&self) -> (String, String) {
        match self.explained_variance {
            Some([a, b]) => (format!("PC1 ({:.1}% of variance)", 100.0 * a), format!("PC2 ({:.1}%)", 100.0 * b)),
            None => ("direction 1 (filter-normalised)".into(), "direction 2".into()),
        }
    }

    /// Contours at the deciles of the grid's values, with the trajectory (epoch numbers) on top.
    pub fn panel(&self) -> Panel {
        self.panel_with_levels(&decile_levels(std::slice::from_ref(self)))
    }

    /// The contours at the given loss levels (e.g. shared by several landscapes), with the
    /// trajectory on top.
    pub fn panel_with_levels(&self, levels: &[f64]) -> Panel {
        let levels = levels.to_vec();
        let segments = levels.iter().map(|l| contour_segments(&self.alphas, &self.betas, &self.loss, *l)).collect();
        let (x, y) = self.axis_labels();
        // Label about eight epochs (always the first and the last), so long runs stay legible.
        let n = self.trajectory.len();
        let every = n.div_ceil(8).max(1);
        let labels = (0..n)
            .map(|i| if i % every == 0 || i + 1 == n { self.epochs.get(i).copied().unwrap_or(i).to_string() } else { String::new() })
            .collect();
        Panel::new(self.title.clone(), x, y)
            .with(Layer::Contours { levels, segments })
            .with(Layer::Line {
                series: Series::new("trajectory (epoch)", self.trajectory.clone()),
                color: palette(3),
                dashed: false,
                markers: true,
                labels,
            })
            .x_range(self.alphas[0], self.alphas[self.alphas.len() - 1])
            .y_range(self.betas[0], self.betas[self.betas.len() - 1])
    }

    pub fn figure(&self) -> Result<Figure> {
        Ok(Figure::grid(format!("Loss landscape: {}", self.config.loss.name()), vec![self.panel()], 1)?.note(format!(
            "{} examples, {:.2}% sparse, final loss {:.4}",
            self.examples,
            100.0 * self.sparsity,
            self.final_loss
        )))
    }

    /// Length of the trajectory in the plane (sum of the steps between checkpoints).
    pub fn path_length(&self) -> f64 {
        self.trajectory.windows(2).map(|w| ((w[1].0 - w[0].0).powi(2) + (w[1].1 - w[0].1).powi(2)).sqrt()).sum()
    }

    /// Mean loss over the grid minus the loss at the final weights: larger is a sharper basin.
    pub fn mean_rise(&self) -> f64 {
        let v: Vec<f64> = self.loss.iter().flatten().copied().filter(|v| v.is_finite()).collect();
        v.iter().sum::<f64>() / v.len().max(1) as f64 - self.origin_loss()
    }
}

/// The deciles of the loss values of `landscapes` pooled: contour levels on one scale.
fn decile_levels(landscapes: &[Landscape]) -> Vec<f64> {
    let mut values: Vec<f64> = landscapes.iter().flat_map(|l| l.loss.iter().flatten()).copied().filter(|v| v.is_finite()).collect();
    values.sort_by(|a, b| a.total_cmp(b));
    let mut levels: Vec<f64> = (1..10).filter_map(|q| values.get(q * values.len() / 10).copied()).collect();
    levels.dedup_by(|a, b| (*a - *b).abs() < 1e-9);
    levels
}

/// Several landscapes side by side, `cols` per row, drawn on one contour scale (the deciles of
/// all their grids pooled), so the basins can be compared.
pub fn landscape_figure(title: &str, landscapes: &[Landscape], cols: usize) -> Result<Figure> {
    let loss = landscapes.first().map(|l| l.config.loss.name()).unwrap_or_default();
    let levels = decile_levels(landscapes);
    let scale = match landscapes.first().and_then(|l| l.config.radius) {
        Some(r) if landscapes.iter().all(|l| l.config.radius == Some(r)) => format!("every grid spans +-{r:.2} along both directions"),
        _ => "each grid spans its own trajectory".into(),
    };
    let range = match (levels.first(), levels.last()) {
        (Some(lo), Some(hi)) => format!(" from {lo:.3} (dark) to {hi:.3} (yellow)"),
        _ => String::new(),
    };
    Ok(Figure::grid(title, landscapes.iter().map(|l| l.panel_with_levels(&levels)).collect(), cols)?
        .note(format!("{loss}; contours at the deciles of all grids pooled, one scale{range}; {scale}"))
        .note(
            "only the prunable (convolution) weights move in the plane: batch-norm parameters and statistics, biases and the head \
             stay at their final values",
        ))
}

/// One row per landscape: final loss, explained variance, path length, mean rise.
pub fn landscape_table(landscapes: &[Landscape]) -> Table {
    let mut t = Table::new("Loss landscapes", &["landscape", "final loss", "PC1 / PC2 variance %", "path length", "mean rise over grid"]);
    for l in landscapes {
        t.push(vec![
            l.title.clone(),
            format!("{:.4}", l.final_loss),
            l.explained_variance.map(|[a, b]| format!("{:.1} / {:.1}", 100.0 * a, 100.0 * b)).unwrap_or_else(|| "random".into()),
            format!("{:.3}", l.path_length()),
            format!("{:.4}", l.mean_rise()),
        ]);
    }
    t
}

impl Landscape {
    pub fn evcxr_display(&self) {
        let html = match self.figure() {
            Ok(f) => f.svg() + &landscape_table(std::slice::from_ref(self)).to_html(),
            Err(e) => format!("<pre>{}</pre>", crate::display::escape_html(&e.to_string())),
        };
        evcxr_emit("text/html", &html);
    }
}

impl std::fmt::Display for Landscape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", landscape_table(std::slice::from_ref(self)))
    }
}
