//! Hooks into the training loop: progress output and per-epoch checkpoints (the trajectory the
//! loss-landscape plots draw). Write your own by implementing [`Callback`].

use super::history::EpochRecord;
use crate::error::Result;
use crate::model::Network;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Where training is within an epoch.
#[derive(Debug, Clone, Copy)]
pub struct BatchInfo {
    pub epoch: usize,
    pub epochs: usize,
    pub batch: usize,
    pub batches: usize,
}

/// Called by the training loop. All methods have empty defaults.
pub trait Callback {
    fn on_batch_end(&mut self, _info: &BatchInfo) -> Result<()> {
        Ok(())
    }
    fn on_epoch_end(&mut self, _record: &EpochRecord, _net: &Network) -> Result<()> {
        Ok(())
    }
}

/// Prints a line per epoch; within an epoch, a live progress line on terminals and a line every
/// ten seconds elsewhere (notebooks, logs), so slow epochs are never silent.
#[derive(Debug)]
pub struct Progress {
    label: String,
    terminal: bool,
    last: Instant,
    started: Instant,
}

impl Progress {
    pub fn new(label: impl Into<String>) -> Progress {
        Progress { label: label.into(), terminal: std::io::stdout().is_terminal(), last: Instant::now(), started: Instant::now() }
    }
}

impl Callback for Progress {
    fn on_batch_end(&mut self, i: &BatchInfo) -> Result<()> {
        if i.batch == 1 {
            self.started = Instant::now();
        }
        let every = if self.terminal { Duration::from_millis(250) } else { Duration::from_secs(10) };
        if self.last.elapsed() >= every && i.batch < i.batches {
            self.last = Instant::now();
            let pct = 100.0 * i.batch as f64 / i.batches as f64;
            let eta = self.started.elapsed().as_secs_f64() * (i.batches - i.batch) as f64 / i.batch as f64;
            let msg =
                format!("{} epoch {}/{}: {pct:3.0}% ({}/{} batches, ~{eta:.0}s left)", self.label, i.epoch, i.epochs, i.batch, i.batches);
            if self.terminal {
                print!("\r{msg}   ");
            } else {
                println!("{msg}");
            }
            let _ = std::io::stdout().flush();
        }
        Ok(())
    }

    fn on_epoch_end(&mut self, r: &EpochRecord, _net: &Network) -> Result<()> {
        let clear = if self.terminal { "\r" } else { "" };
        println!(
            "{clear}{} epoch {:>3}: train loss {:.4} acc {:6.2}% | val loss {:.4} acc {:6.2}% | lr {:.4} | {:.1}s      ",
            self.label,
            r.epoch,
            r.train_loss,
            100.0 * r.train_accuracy,
            r.val.loss,
            100.0 * r.val.accuracy,
            r.lr,
            r.seconds
        );
        let _ = std::io::stdout().flush();
        Ok(())
    }
}

/// Saves the network after every epoch as `dir/epoch-{NNN}.safetensors` (+ sidecar).
#[derive(Debug, Clone)]
pub struct EpochCheckpoints {
    pub dir: PathBuf,
}

impl EpochCheckpoints {
    pub fn new(dir: impl Into<PathBuf>) -> EpochCheckpoints {
        EpochCheckpoints { dir: dir.into() }
    }
    /// The checkpoint file of an epoch (1-based; epoch 0 is the initial weights if saved).
    pub fn path(&self, epoch: usize) -> PathBuf {
        self.dir.join(format!("epoch-{epoch:03}.safetensors"))
    }
}

impl Callback for EpochCheckpoints {
    fn on_epoch_end(&mut self, r: &EpochRecord, net: &Network) -> Result<()> {
        net.save(self.path(r.epoch))
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
