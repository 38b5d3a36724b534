//! Ablations: change one or more knobs of the study (rewind point, pruning rate, eps,
//! fine-tuning epochs, data fraction, number of seeds) and compare the verdicts with the
//! default, on a focused slice of the grid (one pre-training, one IMP family, one data fraction)
//! so that an ablation runs in minutes. Everything goes through the experiment store: the
//! default slice is usually there already, and rerunning with unchanged knobs is instant.

use crate::display::{evcxr_emit, Table};
use crate::error::Result;
use crate::prune::Rewind;
use crate::session::Session;
use crate::study::{ImpFamily, Pretraining, Study, VerdictCell};
use serde::{Deserialize, Serialize};

/// One knob of an ablation: a setting of the study changed from its value.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Knob {
    /// IMP's rewind point (the paper: the pre-trained weights).
    Rewind(Rewind),
    /// Fraction of the remaining weights IMP prunes per round (the paper: 0.2).
    PruningRate(f64),
    /// The threat model's radius.
    Eps(f64),
    FinetuneEpochs(usize),
    /// Number of fine-tuning seeds (counting from the study's first).
    Seeds(usize),
    /// The first fine-tuning seed: another seed set of the same size, e.g. the study's
    /// stability seeds, asks whether the verdicts hinge on the seeds.
    SeedOffset(u64),
}

impl Knob {
    /// Sets the knob in `s` and says what it set: each knob's effect and name in one place.
    pub fn apply(self, s: &mut Study) -> String {
        match self {
            Knob::Rewind(r) => {
                s.imp.rewind = r;
                format!("rewind {r:?}")
            }
            Knob::PruningRate(r) => {
                s.imp.rate = r;
                format!("pruning rate {r}")
            }
            Knob::Eps(e) => {
                s.threat.eps = e;
                format!("eps {}", crate::attack::format_eps(e))
            }
            Knob::FinetuneEpochs(n) => {
                s.transfer.recipe.epochs = n;
                format!("{n} fine-tuning epochs")
            }
            Knob::Seeds(n) => {
                let first = s.seeds.first().copied().unwrap_or(0);
                s.seeds = (first..first + n as u64).collect();
                format!("{n} seeds")
            }
            Knob::SeedOffset(first) => {
                s.seeds = (first..first + s.seeds.len() as u64).collect();
                format!("seeds from {first}")
            }
        }
    }
}

/// An ablation: a slice of the study (one pre-training, one IMP family, one data fraction) and
/// the knobs changed on it; a knob left out keeps the study's value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ablation {
    pub pretraining: Pretraining,
    pub family: ImpFamily,
    /// Data fraction of the transfers (default: the study's first).
    pub fraction: Option<f64>,
    /// The changed knobs, at most one of each kind, applied in order.
    pub knobs: Vec<Knob>,
}

impl Default for Ablation {
    fn default() -> Self {
        Ablation { pretraining: Pretraining::Adversarial, family: ImpFamily::Standard, fraction: None, knobs: Vec::new() }
    }
}

impl Ablation {
    /// No knob changed: the AT source and its m^ST tickets.
    pub fn new() -> Ablation {
        Ablation::default()
    }
    // Written out, not derived: evcxr cannot name the type of a variable built through a
    // derived setter here (notebook 09 failed with "type alias takes 1 generic argument").
    pub fn pretraining(mut self, p: Pretraining) -> Self {
        self.pretraining = p;
        self
    }
    pub fn family(mut self, f: ImpFamily) -> Self {
        self.family = f;
        self
    }
    pub fn fraction(mut self, f: f64) -> Self {
        self.fraction = Some(f);
        self
    }
    /// Changes one knob (replacing an earlier value of the same knob).
    pub fn with(mut self, knob: Knob) -> Self {
        let kind = std::mem::discriminant(&knob);
        self.knobs.retain(|k| std::mem::discriminant(k) != kind);
        self.knobs.push(knob);
        self
    }
    pub fn rewind(self, r: Rewind) -> Self {
        self.with(Knob::Rewind(r))
    }
    pub fn pruning_rate(self, r: f64) -> Self {
        self.with(Knob::PruningRate(r))
    }
    pub fn eps(self, e: f64) -> Self {
        self.with(Knob::Eps(e))
    }
    pub fn finetune_epochs(self, n: usize) -> Self {
        self.with(Knob::FinetuneEpochs(n))
    }
    pub fn seeds(self, n: usize) -> Self {
        self.with(Knob::Seeds(n))
    }
    pub fn seed_offset(self, first: u64) -> Self {
        self.with(Knob::SeedOffset(first))
    }

    /// The default slice of `study`: one pre-training, one family, one data fraction, no
    /// controls or landscapes.
    pub fn base(&self, study: &Study) -> Study {
        let mut s = study.clone();
        s.pretrainings = vec![self.pretraining];
        s.families = vec![self.family];
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
        for k in &self.knobs {
            k.apply(&mut s);
        }
        s
    }

    /// The knobs that differ from the study, as text (applied to a throwaway study: each knob's
    /// name comes from the code that sets it).
    pub fn knobs(&self) -> Vec<String> {
        let mut scratch = Study::for_profile(crate::study::Profile::Tiny);
        self.knobs.iter().map(|k| k.apply(&mut scratch)).collect()
    }

    /// Runs the default slice and the variant through the store (what is there is read back)
    /// and compares their verdicts.
    pub fn run(&self, session: &Session) -> Result<AblationReport> {
        let (base, variant) = (self.base(&session.study), self.variant(&session.study));
        variant.check()?;
        let cell = |s: &Study| -> Result<VerdictCell> {
            let results = session.results_of(s)?;
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
                self.base.family.name(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knobs_change_only_the_variant_and_a_later_value_replaces_an_earlier_one() {
        let study = Study::for_profile(crate::study::Profile::Tiny);
        let a = Ablation::new().eps(0.2).seeds(3).seed_offset(10).eps(0.05);
        assert_eq!(a.knobs(), ["3 seeds", "seeds from 10", "eps 0.05"]);
        let (base, variant) = (a.base(&study), a.variant(&study));
        assert_eq!(base.threat.eps, study.threat.eps);
        assert_eq!(variant.threat.eps, 0.05);
        assert_eq!(variant.seeds, vec![10, 11, 12]);
        assert_eq!(base.seeds, study.seeds);
        assert!(Ablation::new().knobs().is_empty());
    }
}
