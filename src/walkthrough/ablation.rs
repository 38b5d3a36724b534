//! Ablations: change one or more knobs of the study (rewind point, pruning rate, eps,
//! fine-tuning epochs, data fraction, number of seeds) and compare the verdicts with the
//! default, on a focused slice of the grid (one pre-training, one IMP family, one data fraction)
//! so that an ablation runs in minutes. Everything goes through the experiment store: the
//! default slice is usually there already, and rerunning with unchanged knobs is instant.

use super::Session;
use crate::display::{evcxr_emit, Table};
use crate::error::Result;
use crate::prune::Rewind;
use crate::study::{ImpFamily, Pretraining, Study, VerdictCell};
use serde::{Deserialize, Serialize};

/// The knobs of an ablation; `None` keeps the study's value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ablation {
    /// The slice: which pre-training and IMP family.
    pub pretraining: Pretraining,
    pub family: ImpFamily,
    /// IMP's rewind point (the paper: the pre-trained weights).
    pub rewind: Option<Rewind>,
    /// Fraction of the remaining weights IMP prunes per round (the paper: 0.2).
    pub pruning_rate: Option<f64>,
    /// The threat model's radius.
    pub eps: Option<f64>,
    pub finetune_epochs: Option<usize>,
    /// Data fraction of the transfers (default: the study's first).
    pub fraction: Option<f64>,
    /// Number of fine-tuning seeds (0, 1, ...).
    pub seeds: Option<usize>,
    /// The first fine-tuning seed (0): another seed set of the same size, e.g. the study's
    /// stability seeds, asks whether the verdicts hinge on the seeds.
    #[serde(default)]
    pub seed_offset: Option<u64>,
}

impl Default for Ablation {
    fn default() -> Self {
        Ablation {
            pretraining: Pretraining::Adversarial,
            family: ImpFamily::Standard,
            rewind: None,
            pruning_rate: None,
            eps: None,
            finetune_epochs: None,
            fraction: None,
            seeds: None,
            seed_offset: None,
        }
    }
}

impl Ablation {
    /// No knob changed: the AT source and its m^ST tickets.
    pub fn new() -> Ablation {
        Ablation::default()
    }
    pub fn pretraining(mut self, k: Pretraining) -> Self {
        self.pretraining = k;
        self
    }
    pub fn family(mut self, k: ImpFamily) -> Self {
        self.family = k;
        self
    }
    pub fn rewind(mut self, r: Rewind) -> Self {
        self.rewind = Some(r);
        self
    }
    pub fn pruning_rate(mut self, r: f64) -> Self {
        self.pruning_rate = Some(r);
        self
    }
    pub fn eps(mut self, e: f64) -> Self {
        self.eps = Some(e);
        self
    }
    pub fn finetune_epochs(mut self, n: usize) -> Self {
        self.finetune_epochs = Some(n);
        self
    }
    pub fn fraction(mut self, f: f64) -> Self {
        self.fraction = Some(f);
        self
    }
    pub fn seeds(mut self, n: usize) -> Self {
        self.seeds = Some(n);
        self
    }
    pub fn seed_offset(mut self, first: u64) -> Self {
        self.seed_offset = Some(first);
        self
    }

    /// The default slice of `study`: one pre-training, one family, one data fraction, no
    /// controls or landscapes.
    pub fn base(&self, study: &Study) -> Study {
        let mut s = study.clone();
        s.pretrainings = vec![self.pretraining.regime()];
        s.families = vec![self.family.regime()];
        s.fractions = vec![self.fraction.or_else(|| study.fractions.first().copied()).unwrap_or(1.0)];
        s.controls = None;
        s.landscapes = None;
        // The slice compares verdicts only: no second seed set, gate or attack checks.
        s.stability_seeds.clear();
        s.scratch = false;
        s.attack_check_examples = 0;
        s
    }

    /// The slice with the knobs applied.
    pub fn variant(&self, study: &Study) -> Study {
        let mut s = self.base(study);
        if let Some(r) = self.rewind {
            s.imp.rewind = r;
        }
        if let Some(r) = self.pruning_rate {
            s.imp.rate = r;
        }
        if let Some(e) = self.eps {
            s.threat.eps = e;
        }
        if let Some(n) = self.finetune_epochs {
            s.transfer.recipe.epochs = n;
        }
        if self.seeds.is_some() || self.seed_offset.is_some() {
            let (n, first) = (self.seeds.unwrap_or(s.seeds.len()) as u64, self.seed_offset.unwrap_or(0));
            s.seeds = (first..first + n).collect();
        }
        s
    }

    /// The knobs that differ from the study, as text.
    pub fn knobs(&self) -> Vec<String> {
        let mut v = Vec::new();
        if let Some(r) = self.rewind {
            v.push(format!("rewind {r:?}"));
        }
        if let Some(r) = self.pruning_rate {
            v.push(format!("pruning rate {r}"));
        }
        if let Some(e) = self.eps {
            v.push(format!("eps {}", crate::attack::format_eps(e)));
        }
        if let Some(n) = self.finetune_epochs {
            v.push(format!("{n} fine-tuning epochs"));
        }
        if let Some(n) = self.seeds {
            v.push(format!("{n} seeds"));
        }
        if let Some(k) = self.seed_offset {
            v.push(format!("seeds from {k}"));
        }
        v
    }

    /// Runs the default slice and the variant through the store (what is there is read back)
    /// and compares their verdicts.
    pub fn run(&self, session: &Session) -> Result<AblationReport> {
        let (base, variant) = (self.base(&session.study), self.variant(&session.study));
        variant.check()?;
        let cell = |s: &Study| -> Result<VerdictCell> {
            let results = s.run(&session.rt, &session.store)?;
            results
                .verdicts()
                .into_iter()
                .next()
                .ok_or_else(|| crate::error::Error::invalid("the slice has no tickets", "give the study ticket rounds"))
        };
        Ok(AblationReport { knobs: self.knobs(), base: cell(&base)?, variant: cell(&variant)? })
    }
}

/// The verdicts of the default slice and of the variant, ticket by ticket.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AblationReport {
    pub knobs: Vec<String>,
    pub base: VerdictCell,
    pub variant: VerdictCell,
}

impl AblationReport {
    pub fn table(&self) -> Table {
        let what = if self.knobs.is_empty() { "no knob changed".to_string() } else { self.knobs.join(", ") };
        let mut t = Table::new(
            format!(
                "Ablation ({what}): {} source, {} tickets, {}% data; ticket minus dense, points [95% interval]",
                self.base.pretraining.short(),
                self.base.family.family(),
                100.0 * self.base.fraction
            ),
            &[
                "ticket",
                "sparsity % (default / ablation)",
                "adv-FT RA default",
                "adv-FT RA ablation",
                "std-FT SA default",
                "std-FT SA ablation",
                "double-win (default / ablation)",
            ],
        );
        for (b, v) in self.base.verdict.rows.iter().zip(&self.variant.verdict.rows) {
            let gap = |r: &crate::verdict::VerdictRow, i: usize| r.gaps[i].map(|g| g.points()).unwrap_or_else(|| "-".into());
            t.push(vec![
                b.label.clone(),
                format!("{:.1} / {:.1}", 100.0 * b.sparsity, 100.0 * v.sparsity),
                gap(b, 2),
                gap(v, 2),
                gap(b, 0),
                gap(v, 0),
                format!("{} / {}", b.outcome.name(), v.outcome.name()),
            ]);
        }
        t
    }
    pub fn evcxr_display(&self) {
        evcxr_emit("text/html", &self.table().to_html());
    }
}

impl std::fmt::Display for AblationReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.table())
    }
}
