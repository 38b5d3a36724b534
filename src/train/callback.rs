//! Hooks into the training loop: progress output and per-epoch checkpoints (the trajectory the
//! loss-landscape plots draw). Write your own by implementing [`Callback`].

use super::history::EpochRecord;
use crate::error::Result;
use crate::model::Network;
pub use crate::progress::BatchInfo;
use crate::progress::{self, EpochSummary, Event};
use std::path::PathBuf;

/// Called by the training loop. All methods have empty defaults.
pub trait Callback {
    fn on_batch_end(&mut self, _info: &BatchInfo) -> Result<()> {
        Ok(())
    }
    fn on_epoch_end(&mut self, _record: &EpochRecord, _net: &Network) -> Result<()> {
        Ok(())
    }
}

/// Reports every batch and epoch of a run to the process's [`crate::progress`] observer, which
/// prints them (a live line within an epoch on terminals, a line every ten seconds elsewhere).
#[derive(Debug)]
pub struct Progress {
    label: String,
}

impl Progress {
    pub fn new(label: impl Into<String>) -> Progress {
        Progress { label: label.into() }
    }
}

impl Callback for Progress {
    fn on_batch_end(&mut self, info: &BatchInfo) -> Result<()> {
        progress::emit(&Event::Batch { label: &self.label, info: *info });
        Ok(())
    }

    fn on_epoch_end(&mut self, r: &EpochRecord, _net: &Network) -> Result<()> {
        let summary = EpochSummary {
            epoch: r.epoch,
            train_loss: r.train_loss,
            train_accuracy: r.train_accuracy,
            val: r.val.map(|v| (v.loss, v.accuracy)),
            lr: r.lr,
            seconds: r.seconds,
        };
        progress::emit(&Event::Epoch { label: &self.label, summary });
        Ok(())
    }
}

/// Saves the network after the epochs it keeps (every epoch, or at most a given number evenly
/// spaced, always the last) as `dir/epoch-NNNNNN.safetensors` (+ sidecar): the trajectory a loss
/// landscape draws. Epoch 0 (the weights before training) is saved by the caller with
/// [`EpochCheckpoints::path`] when wanted.
#[derive(Debug, Clone)]
pub struct EpochCheckpoints {
    pub dir: PathBuf,
    /// The epochs saved (`None`: every one).
    pub keep: Option<Vec<usize>>,
}

impl EpochCheckpoints {
    /// Every epoch.
    pub fn new(dir: impl Into<PathBuf>) -> EpochCheckpoints {
        EpochCheckpoints { dir: dir.into(), keep: None }
    }
    /// At most `max` checkpoints of a run of `epochs` epochs, counting epoch 0: see
    /// [`EpochCheckpoints::spaced`].
    pub fn at_most(dir: impl Into<PathBuf>, epochs: usize, max: usize) -> EpochCheckpoints {
        EpochCheckpoints { dir: dir.into(), keep: Some(Self::spaced(epochs, max)) }
    }
    /// `max` (at least 2) epochs out of 0..=epochs, evenly spaced, always with 0 and the last.
    pub fn spaced(epochs: usize, max: usize) -> Vec<usize> {
        let max = max.max(2);
        if epochs < max {
            return (0..=epochs).collect();
        }
        let mut v: Vec<usize> = (0..max).map(|i| ((i * epochs) as f64 / (max - 1) as f64).round() as usize).collect();
        v.dedup();
        v
    }
    /// The checkpoint file of an epoch (1-based; epoch 0 is the initial weights if saved).
    pub fn path(&self, epoch: usize) -> PathBuf {
        self.dir.join(format!("epoch-{epoch:06}.safetensors"))
    }
    /// The epoch of a checkpoint file name (`epoch-N.safetensors`, any padding), if it is one.
    pub fn epoch_of(path: &std::path::Path) -> Option<usize> {
        path.file_name()?.to_str()?.strip_prefix("epoch-")?.strip_suffix(".safetensors")?.parse().ok()
    }
    /// Whether `epoch` is saved.
    pub fn keeps(&self, epoch: usize) -> bool {
        self.keep.as_ref().is_none_or(|k| k.contains(&epoch))
    }
}

impl Callback for EpochCheckpoints {
    fn on_epoch_end(&mut self, r: &EpochRecord, net: &Network) -> Result<()> {
        if self.keeps(r.epoch) {
            net.save(self.path(r.epoch))?;
        }
        Ok(())
    }
}

/// An owned list of callbacks (a concrete type notebooks can keep).
#[derive(Default)]
pub struct Callbacks {
    list: Vec<Box<dyn Callback>>,
}

impl std::fmt::Debug for Callbacks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Callbacks({})", self.list.len())
    }
}

impl Callbacks {
    pub fn none() -> Callbacks {
        Callbacks::default()
    }
    /// Just the progress printer.
    pub fn progress(label: &str) -> Callbacks {
        Callbacks::none().with(Progress::new(label))
    }
    pub fn with(mut self, c: impl Callback + 'static) -> Callbacks {
        self.list.push(Box::new(c));
        self
    }
    pub(crate) fn batch_end(&mut self, i: &BatchInfo) -> Result<()> {
        self.list.iter_mut().try_for_each(|c| c.on_batch_end(i))
    }
    pub(crate) fn epoch_end(&mut self, r: &EpochRecord, net: &Network) -> Result<()> {
        self.list.iter_mut().try_for_each(|c| c.on_epoch_end(r, net))
    }
}
