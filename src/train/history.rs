//! What a training run records: one [`EpochRecord`] per epoch, and evaluations.

use crate::display::{evcxr_emit, Table};
use crate::error::{Error, Result};
use crate::plot::{Figure, Series};
use serde::{Deserialize, Serialize};

/// Loss and accuracy of a network on a dataset.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    pub loss: f64,
    /// Fraction correct, in [0, 1].
    pub accuracy: f64,
    pub examples: usize,
}

impl std::fmt::Display for Evaluation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "accuracy {:.2}% (loss {:.4}, {} examples)", 100.0 * self.accuracy, self.loss, self.examples)
    }
}

impl Evaluation {
    pub fn evcxr_display(&self) {
        let mut t = Table::new("Evaluation", &["examples", "accuracy %", "loss"]);
        t.push(vec![self.examples.to_string(), format!("{:.2}", 100.0 * self.accuracy), format!("{:.4}", self.loss)]);
        t.evcxr_display();
    }
}

/// Metrics of one epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Learning rate at the end of the epoch.
    pub lr: f64,
    pub train_loss: f64,
    pub train_accuracy: f64,
    /// On the validation split, after the epochs the run validates (see
    /// [`super::TrainConfig::validations`]).
    pub val: Option<Evaluation>,
    /// Accuracy under the overfitting guard's PGD on fixed training examples (fast regime).
    #[serde(default)]
    pub robust_check: Option<f64>,
    pub seconds: f64,
}

/// Per-epoch metrics of a run, and which epoch model selection kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct History {
    pub epochs: Vec<EpochRecord>,
    /// Epoch (1-based) whose weights the network holds after training.
    pub selected_epoch: Option<usize>,
    /// Why training stopped before the last epoch (catastrophic overfitting), if it did.
    #[serde(default)]
    pub stopped_early: Option<String>,
}

impl History {
    /// The columns of [`History::to_ndarray`].
    pub const COLUMNS: [&'static str; 6] = ["epoch", "lr", "train_loss", "train_accuracy", "val_loss", "val_accuracy"];

    /// One row per epoch, columns [`History::COLUMNS`], for analysis in a notebook (NaN in the
    /// validation columns of epochs not validated).
    pub fn to_ndarray(&self) -> ndarray::Array2<f64> {
        ndarray::Array2::from_shape_fn((self.epochs.len(), Self::COLUMNS.len()), |(r, c)| {
            let e = &self.epochs[r];
            let (val_loss, val_accuracy) = e.val.map_or((f64::NAN, f64::NAN), |v| (v.loss, v.accuracy));
            [e.epoch as f64, e.lr, e.train_loss, e.train_accuracy, val_loss, val_accuracy][c]
        })
    }

    /// One column of [`History::to_ndarray`] by name (one of [`History::COLUMNS`]).
    pub fn column(&self, name: &str) -> Result<ndarray::Array1<f64>> {
        let i = Self::COLUMNS
            .iter()
            .position(|c| *c == name)
            .ok_or_else(|| Error::invalid(format!("a history has no column {name:?}"), format!("use one of {:?}", Self::COLUMNS)))?;
        Ok(self.to_ndarray().column(i).to_owned())
    }

    /// The validated record with the best validation accuracy (earliest on ties).
    pub fn best(&self) -> Option<&EpochRecord> {
        self.epochs.iter().filter(|r| r.val.is_some()).fold(None, |best: Option<&EpochRecord>, r| match (best, r.val) {
            (Some(b), Some(v)) if b.val.is_some_and(|bv| bv.accuracy >= v.accuracy) => Some(b),
            _ => Some(r),
        })
    }

    pub fn last(&self) -> Option<&EpochRecord> {
        self.epochs.last()
    }

    pub fn total_seconds(&self) -> f64 {
        self.epochs.iter().map(|r| r.seconds).sum()
    }

    pub fn table(&self) -> Table {
        let mut t = Table::new("Training history", &["epoch", "lr", "train loss", "train acc %", "val loss", "val acc %", "s"]);
        for r in &self.epochs {
            let mark = if Some(r.epoch) == self.selected_epoch { " *" } else { "" };
            t.push(vec![
                format!("{}{mark}", r.epoch),
                format!("{:.4}", r.lr),
                format!("{:.4}", r.train_loss),
                format!("{:.2}", 100.0 * r.train_accuracy),
                r.val.map_or("-".into(), |v| format!("{:.4}", v.loss)),
                r.val.map_or("-".into(), |v| format!("{:.2}", 100.0 * v.accuracy)),
                format!("{:.1}", r.seconds),
            ]);
        }
        t
    }

    /// Accuracy curves (train and validation, in %) over epochs.
    pub fn accuracy_figure(&self) -> Result<Figure> {
        let e =
            |f: &dyn Fn(&EpochRecord) -> Option<f64>| self.epochs.iter().filter_map(|r| Some((r.epoch as f64, f(r)?))).collect::<Vec<_>>();
        Figure::lines(
            "Accuracy during training",
            "epoch",
            "accuracy (%)",
            &[
                Series::new("train", e(&|r| Some(100.0 * r.train_accuracy))),
                Series::new("validation", e(&|r| r.val.map(|v| 100.0 * v.accuracy))),
            ],
        )
    }

    /// Loss curves (train and validation) over epochs.
    pub fn loss_figure(&self) -> Result<Figure> {
        let e =
            |f: &dyn Fn(&EpochRecord) -> Option<f64>| self.epochs.iter().filter_map(|r| Some((r.epoch as f64, f(r)?))).collect::<Vec<_>>();
        Figure::lines(
            "Loss during training",
            "epoch",
            "cross-entropy",
            &[Series::new("train", e(&|r| Some(r.train_loss))), Series::new("validation", e(&|r| r.val.map(|v| v.loss)))],
        )
    }

    /// Table and accuracy curve, as HTML.
    pub fn evcxr_display(&self) {
        let mut html = self.table().to_html();
        if let Ok(fig) = self.accuracy_figure() {
            html = format!("<div style=\"display:flex;gap:16px;align-items:flex-start\"><div>{html}</div><div>{}</div></div>", fig.svg());
        }
        evcxr_emit("text/html", &html);
    }
}

impl std::fmt::Display for History {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.table())?;
        if let Some(s) = self.selected_epoch {
            writeln!(f, "(* = weights kept: epoch {s})")?;
        }
        Ok(())
    }
}
