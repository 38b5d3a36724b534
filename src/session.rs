//! The one facade: a [`Session`] is a study with the runtime it runs on and the store it runs
//! through, and every question a notebook cell or the CLI asks of it is one method here: the
//! study's results and report, a source model, an IMP run and its masks, one transfer, the
//! pre-training gate, a verdict, a landscape. Each computes what the store lacks (under the
//! store's locks, so a notebook and a `study run --workers 2` can share a store) and loads the
//! rest. The [`Study`] itself is a declaration (its grid, recipes and the steps they imply); it
//! runs nothing.

use crate::attack::robust_evaluate;
use crate::data::{DataSource, Splits};
use crate::display::{evcxr_emit, Table};
use crate::error::{Error, Result};
use crate::landscape::{Landscape, Trajectory};
use crate::model::Network;
use crate::prune::{Mask, Tickets};
use crate::runtime::Runtime;
use crate::store::{Attempt, StepDescription, Store};
use crate::study::plan::StepDesc;
use crate::study::runner::{compute, run_plan};
use crate::study::steps::{subnetwork_name, HoldOut};
use crate::study::steps::{Executor, ImpSummary, Step};
use crate::study::SubnetworkKind;
use crate::study::{ImpRow, LadderReport, PretrainingGate, Profile, Stability, Study, StudyReport, StudyResults, TransferGroup};
use crate::train::{FineTuning, History, ImpFamily, Pretraining};
use crate::transfer::TransferReport;
use crate::verdict::Verdict;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// A study, the runtime it runs on and the store it runs through. In a notebook:
/// `let s = Session::from_env()?;` (the profile and device from the environment, the default
/// store), then one method per question.
///
/// ```no_run
/// use doublewin::prelude::*;
/// # fn main() -> Result<()> {
/// let s = Session::from_env()?;
/// let gate = s.pretraining_gate(Pretraining::Adversarial, s.fraction())?;
/// let ticket = s.transfer(&s.ticket(Pretraining::Adversarial, ImpFamily::Standard, s.middle_round()).fine_tune(FineTuning::Adversarial))?;
/// println!("{gate}\n{}", ticket.best_ra.test_ra);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Session {
    pub rt: Runtime,
    pub profile: Profile,
    pub store: Store,
    pub study: Study,
}

/// One transfer to run with [`Session::transfer`]: what transfers (from [`Session::dense`] or
/// [`Session::ticket`]), how it is fine-tuned (default standard), on which fraction of the
/// downstream data (default the study's first) and with which seed (default 0).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TransferSpec {
    pub pretraining: Pretraining,
    /// `None`: the dense network; `Some((family, round))`: that IMP round's ticket.
    pub ticket: Option<(ImpFamily, usize)>,
    pub fine_tuning: FineTuning,
    /// `None`: the study's first fraction.
    pub fraction: Option<f64>,
    pub seed: u64,
}

impl TransferSpec {
    pub fn fine_tune(self, fine_tuning: FineTuning) -> Self {
        TransferSpec { fine_tuning, ..self }
    }
    pub fn fraction(self, fraction: f64) -> Self {
        TransferSpec { fraction: Some(fraction), ..self }
    }
    pub fn seed(self, seed: u64) -> Self {
        TransferSpec { seed, ..self }
    }
}

impl Session {
    /// The runtime, profile, default store and study from the environment (see environment.md).
    pub fn from_env() -> Result<Session> {
        let store = Store::open(Store::default_root())?;
        Ok(Session::new(Runtime::from_env()?, Profile::from_env()?, store))
    }

    /// A session on a given runtime, profile and store (the profile's study).
    pub fn new(rt: Runtime, profile: Profile, store: Store) -> Session {
        Session { rt, profile, store, study: Study::for_profile(profile) }
    }

    /// This session with another study (e.g. one loaded with [`Study::load`], or a rung of a
    /// ladder); the profile still sizes the source models' test subset.
    pub fn with_study(self, study: Study) -> Session {
        Session { study, ..self }
    }

    // ---- The study as a whole ----

    /// The study's results for its `seeds`: runs what is missing, loads the rest.
    pub fn results(&self) -> Result<StudyResults> {
        self.results_of(&self.study)
    }

    /// The results of another study (a slice, a variant, a rung of a ladder) on this session's
    /// runtime and store, for its `seeds`.
    pub fn results_of(&self, study: &Study) -> Result<StudyResults> {
        Ok(self.all_results_of(study)?.for_seeds(&study.seeds))
    }

    /// Every result of `study`, those of its `stability_seeds` included.
    fn all_results_of(&self, study: &Study) -> Result<StudyResults> {
        let plan = study.plan()?;
        let summary = run_plan(&plan, &self.rt, &self.store)?;
        StudyResults::collect(study, &plan, &self.store, summary)
    }

    /// Runs (or loads) the study and builds its report: the results, the stability check, the
    /// IMP diagnostics, the per-layer density of the landscape tickets and the store's ladder.
    pub fn report(&self) -> Result<StudyReport> {
        let all = self.all_results_of(&self.study)?;
        let stability = Stability::of(&all);
        let results = all.for_seeds(&self.study.seeds);
        let imp = self.imp_rows()?;
        let masks = self.landscape_masks()?;
        let ladder = LadderReport::load(&self.store, &self.study)?;
        Ok(StudyReport { stability, ladder, ..StudyReport::new(results, imp, &masks)? })
    }

    /// The IMP diagnostics of every round of every run: sparsity, overlap with one-shot pruning
    /// and with the other family, and the re-trained network's recovery.
    fn imp_rows(&self) -> Result<Vec<ImpRow>> {
        let s = &self.study;
        let mut rows = Vec::new();
        for &pre in &s.pretrainings {
            let (net, _) = self.pretrained(pre)?;
            for &family in &s.families {
                let d = s.imp_desc(pre, family)?;
                let summary: Option<ImpSummary> = self.store.load(d.kind(), &d.key()?)?;
                for round in 1..=s.imp_rounds() {
                    let ticket = self.stored_mask(pre, family, round)?;
                    let one_shot = crate::prune::one_shot_like(&net, &ticket)?;
                    let other = s.families.iter().find(|f| **f != family).map(|&f| self.stored_mask(pre, f, round)).transpose()?;
                    rows.push(ImpRow {
                        pretraining: pre,
                        family,
                        round,
                        sparsity: ticket.sparsity(),
                        overlap_one_shot: ticket.overlap(&one_shot)?,
                        overlap_other_family: other.map(|o| ticket.overlap(&o)).transpose()?,
                        retrained: summary.as_ref().and_then(|s| s.recovery.iter().find(|r| r.round == round).copied()),
                    });
                }
            }
        }
        Ok(rows)
    }

    /// The tickets the landscapes fine-tune, one per pre-training, named.
    fn landscape_masks(&self) -> Result<Vec<(String, Mask)>> {
        let Some(plan) = &self.study.landscapes else { return Ok(Vec::new()) };
        let name = subnetwork_name(SubnetworkKind::Ticket, Some(plan.family), plan.round);
        self.study
            .pretrainings
            .iter()
            .map(|&pre| Ok((format!("{} {name}", pre.short()), self.stored_mask(pre, plan.family, plan.round)?)))
            .collect()
    }

    // ---- What a transfer is asked about ----

    /// The study's first downstream dataset (what a transfer fine-tunes on).
    pub fn dataset(&self) -> Result<DataSource> {
        self.study.downstream.first().copied().ok_or_else(|| Error::invalid("the study has no downstream dataset", "add one"))
    }

    /// The study's first downstream data fraction (what a transfer uses unless told otherwise).
    pub fn fraction(&self) -> f64 {
        self.study.fractions.first().copied().unwrap_or(1.0)
    }

    /// The study's middle ticket round (of its verdict rounds; the lower middle of an even
    /// count: 4 of [4, 8], 6 of [2, 4, 6, 8, 10]).
    pub fn middle_round(&self) -> usize {
        self.study.rounds.get(self.study.rounds.len().saturating_sub(1) / 2).copied().unwrap_or(1)
    }

    /// The source splits the study pre-trains on (validation held out, the profile's fraction).
    pub fn source_splits(&self) -> Result<Splits> {
        self.study.pretrain_desc(Pretraining::Standard)?.splits()
    }

    /// The splits of the study's first downstream dataset.
    pub fn downstream_splits(&self) -> Result<Splits> {
        HoldOut::STUDY.splits(self.dataset()?)
    }

    // ---- Source models ----

    /// The pre-trained source network of `pretraining` and its training history: from the
    /// store, or trained (and stored) now.
    pub fn pretrained(&self, pretraining: Pretraining) -> Result<(Network, History)> {
        let d = self.study.pretrain_desc(pretraining)?;
        let mut ex = Executor::new(&self.rt, &self.store, true);
        let history = match d.compute(&mut ex)? {
            Attempt::Stored(h) | Attempt::Computed(h) => h,
            Attempt::Busy => return Err(Error::invalid("a blocking lock returned busy", "report this as a bug")),
        };
        Ok((ex.pretrained(&d)?, history))
    }

    /// A pre-trained source network of the study (from the store, or trained now).
    pub fn source(&self, pretraining: Pretraining) -> Result<Network> {
        Ok(self.pretrained(pretraining)?.0)
    }

    /// Where the weights of the pre-training of `pretraining` live in the store.
    pub fn pretrained_path(&self, pretraining: Pretraining) -> Result<PathBuf> {
        self.study.pretrain_desc(pretraining)?.weights_in(&self.store)
    }

    /// The source model of a pre-training: from the store, or trained now; with SA and RA on
    /// the profile's test subset.
    pub fn source_model(&self, pretraining: Pretraining) -> Result<SourceModel> {
        let start = std::time::Instant::now();
        let (net, history) = self.pretrained(pretraining)?;
        let (_, test) = self.study.source.load()?;
        let test = test.fraction(self.profile.robust_eval_fraction(), self.rt.seed)?;
        let eval = robust_evaluate(&net, &test, &self.study.threat.test_attacks(), crate::train::EVAL_BATCH_SIZE)?;
        crate::progress::note(&format!(
            "{pretraining}: SA {:.2}%  RA {:.2}% on {} test images",
            100.0 * eval.sa,
            100.0 * eval.ra,
            eval.examples
        ));
        Ok(SourceModel {
            pretraining,
            eps: self.study.threat.eps,
            history,
            sa: eval.sa,
            ra: eval.ra,
            eval_examples: eval.examples,
            seconds: start.elapsed().as_secs_f64(),
            weights: self.pretrained_path(pretraining)?,
        })
    }

    /// The three source models (STD, FAT, AT) with their SA and RA on the profile's test subset.
    pub fn sources(&self) -> Result<SourceModels> {
        self.source_models(&Pretraining::ALL)
    }

    /// The source models of some pre-trainings.
    pub fn source_models(&self, pretrainings: &[Pretraining]) -> Result<SourceModels> {
        let models = pretrainings.iter().map(|&p| self.source_model(p)).collect::<Result<Vec<_>>>()?;
        Ok(SourceModels { dataset: self.study.source.name().into(), profile: self.profile, models })
    }

    // ---- IMP ----

    /// The IMP run of `family` from the source of `pretraining`: its tickets, round by round
    /// (from the store, or computed now).
    pub fn imp(&self, pretraining: Pretraining, family: ImpFamily) -> Result<Tickets> {
        let d = self.study.imp_desc(pretraining, family)?;
        let summary: ImpSummary = compute(&self.rt, &self.store, &StepDesc::Imp(d.clone()))?;
        let tickets = (1..=d.imp.rounds)
            .map(|round| {
                let path = d.mask_in(&self.store, round)?;
                let retrained = summary.recovery.iter().find(|r| r.round == round).copied();
                Ok(crate::prune::Ticket { round, mask: Mask::load(&path)?, path, retrained })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Tickets(tickets))
    }

    /// The mask of an IMP round (its IMP run computed now if the store lacks it).
    pub fn mask(&self, pretraining: Pretraining, family: ImpFamily, round: usize) -> Result<Mask> {
        let tickets = self.imp(pretraining, family)?;
        let ticket = tickets
            .round(round)
            .ok_or_else(|| Error::invalid(format!("IMP has no round {round}"), format!("use 1..={}", self.study.imp_rounds())))?;
        Ok(ticket.mask.clone())
    }

    /// The mask of an IMP round of a finished study (an error, not a computation, when the
    /// store lacks it).
    pub fn stored_mask(&self, pretraining: Pretraining, family: ImpFamily, round: usize) -> Result<Mask> {
        let d = self.study.imp_desc(pretraining, family)?;
        if !self.store.step(&d)?.is_done() {
            return Err(Error::not_found(
                format!("the {} tickets of the {} network", family.name(), pretraining.short()),
                "run the study first (or Session::imp, which computes them)",
            ));
        }
        Mask::load(d.mask_in(&self.store, round)?)
    }

    // ---- Transfers ----

    /// The dense network of the source of `pretraining`, as a transfer to describe further
    /// (`.fine_tune(..)`, `.fraction(..)`, `.seed(..)`) and run with [`Session::transfer`].
    pub fn dense(&self, pretraining: Pretraining) -> TransferSpec {
        TransferSpec { pretraining, ticket: None, fine_tuning: FineTuning::Standard, fraction: None, seed: 0 }
    }

    /// The ticket of `round` of the IMP `family` from the source of `pretraining`, as a transfer
    /// like [`Session::dense`]. Describing a transfer computes nothing:
    ///
    /// ```
    /// use doublewin::prelude::*;
    /// # fn main() -> Result<()> {
    /// let store = Store::open(std::env::temp_dir().join("doublewin-doctest-session"))?;
    /// let s = Session::new(Runtime::new(DeviceChoice::Cpu, 1, 0)?, Profile::Small, store);
    /// assert_eq!((s.fraction(), s.middle_round()), (0.01, 4));
    /// let spec = s.ticket(Pretraining::Adversarial, ImpFamily::Standard, s.middle_round()).fine_tune(FineTuning::Adversarial);
    /// assert_eq!((spec.ticket, spec.fine_tuning, spec.fraction), (Some((ImpFamily::Standard, 4)), FineTuning::Adversarial, None));
    /// # Ok(())
    /// # }
    /// ```
    pub fn ticket(&self, pretraining: Pretraining, family: ImpFamily, round: usize) -> TransferSpec {
        TransferSpec { ticket: Some((family, round)), ..self.dense(pretraining) }
    }

    /// Runs a transfer on the study's first downstream dataset, through the store (computed now
    /// if the store lacks it).
    pub fn transfer(&self, spec: &TransferSpec) -> Result<TransferReport> {
        let (dataset, fraction) = (self.dataset()?, spec.fraction.unwrap_or_else(|| self.fraction()));
        let pick = match spec.ticket {
            None => TransferGroup::dense(spec.pretraining, dataset, fraction),
            Some((family, round)) => TransferGroup::ticket(spec.pretraining, family, round, dataset, fraction),
        };
        self.transfer_pick(pick, spec.fine_tuning, spec.seed)
    }

    /// One transfer of any subnetwork a [`TransferGroup`] names (dense, ticket, control or scratch) on
    /// the pick's dataset and fraction (computed now if the store lacks it).
    pub fn transfer_pick(&self, pick: TransferGroup, fine_tuning: FineTuning, seed: u64) -> Result<TransferReport> {
        let d = self.study.pick_transfer(pick, fine_tuning, seed)?;
        compute(&self.rt, &self.store, &StepDesc::Transfer(d))
    }

    /// Every seed's transfer of `pick` under every fine-tuning of the study (computed now where
    /// missing).
    pub fn transfers(&self, pick: TransferGroup) -> Result<Vec<TransferReport>> {
        let mut out = Vec::new();
        for &ft in &self.study.fine_tunings {
            for &seed in &self.study.seeds {
                out.push(self.transfer_pick(pick, ft, seed)?);
            }
        }
        Ok(out)
    }

    /// Does pre-training help at `fraction` of the downstream data? The dense pre-trained
    /// network against the same architecture trained from scratch (every seed, both
    /// fine-tunings): ask this before any ticket verdict.
    pub fn pretraining_gate(&self, pretraining: Pretraining, fraction: f64) -> Result<PretrainingGate> {
        let dataset = self.dataset()?;
        let dense = self.transfers(TransferGroup::dense(pretraining, dataset, fraction))?;
        let scratch = self.transfers(TransferGroup::scratch(dataset, fraction))?;
        Ok(PretrainingGate::judge(
            pretraining,
            dataset,
            fraction,
            &dense.iter().collect::<Vec<_>>(),
            &scratch.iter().collect::<Vec<_>>(),
            self.study.tolerance,
        ))
    }

    /// The double-win verdict on the tickets of `family` at the study's rounds, from the source
    /// of `pretraining`, over the study's seeds and fine-tunings at `fraction` of the data
    /// (computing what the store lacks).
    pub fn verdict(&self, pretraining: Pretraining, family: ImpFamily, fraction: f64) -> Result<Verdict> {
        let dataset = self.dataset()?;
        let dense = self.transfers(TransferGroup::dense(pretraining, dataset, fraction))?;
        let mut tickets = Vec::new();
        for &round in &self.study.rounds {
            let runs = self.transfers(TransferGroup::ticket(pretraining, family, round, dataset, fraction))?;
            let sparsity = runs.first().map(|t| t.sparsity).unwrap_or(0.0);
            tickets.push((subnetwork_name(SubnetworkKind::Ticket, Some(family), round), sparsity, runs));
        }
        let tickets: Vec<(String, f64, Vec<&TransferReport>)> =
            tickets.iter().map(|(l, s, r)| (l.clone(), *s, r.iter().collect())).collect();
        Ok(Verdict::judge(&dense.iter().collect::<Vec<_>>(), &tickets, self.study.tolerance))
    }

    // ---- Landscapes (Fig. 6) ----

    /// The loss landscape of the study's Fig. 6 fine-tuning of the source of `pretraining` at
    /// `fraction`.
    pub fn landscape(&self, pretraining: Pretraining, fraction: f64) -> Result<Landscape> {
        compute(&self.rt, &self.store, &StepDesc::Landscape(self.study.landscape_desc(pretraining, fraction)?))
    }

    /// The per-epoch checkpoints of that fine-tuning, read one at a time.
    pub fn trajectory(&self, pretraining: Pretraining, fraction: f64) -> Result<Trajectory> {
        self.landscape(pretraining, fraction)?;
        let d = self.study.trajectory_desc(pretraining, fraction)?;
        Trajectory::open(d.checkpoints_in(&self.store)?, self.rt.device)
    }

    /// The mask of the ticket the Fig. 6 landscapes fine-tune (the study's landscape family
    /// and round) from the source of `pretraining`.
    pub fn landscape_mask(&self, pretraining: Pretraining) -> Result<Mask> {
        let plan = self
            .study
            .landscapes
            .as_ref()
            .ok_or_else(|| Error::invalid("this study has no landscapes", "use a profile with landscapes (tiny, small, full)"))?;
        self.mask(pretraining, plan.family, plan.round)
    }

    pub fn evcxr_display(&self) {
        evcxr_emit("text/html", &format!("<pre>{}</pre>", crate::display::escape_html(&self.to_string())));
    }
}

impl std::fmt::Display for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{} | profile {} | study of {} steps | store {}",
            self.rt.describe(),
            self.profile.name(),
            self.study.plan().map(|p| p.len()).unwrap_or(0),
            self.store.root().display()
        )
    }
}

/// A pre-trained source model and its SA / RA on the source test split.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SourceModel {
    pub pretraining: Pretraining,
    pub eps: f64,
    pub history: History,
    /// Standard accuracy on the test split.
    pub sa: f64,
    /// Robust accuracy under the study's test attacks (FGSM then PGD-20, step eps/4, random
    /// start) on the test split (the profile's stratified fraction of it, `eval_examples` images).
    pub ra: f64,
    pub eval_examples: usize,
    pub seconds: f64,
    pub weights: PathBuf,
}

/// The source models side by side.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SourceModels {
    pub dataset: String,
    pub profile: Profile,
    pub models: Vec<SourceModel>,
}

impl SourceModels {
    pub fn table(&self) -> Table {
        let mut t = Table::new(
            format!("Source models on {} ({} profile)", self.dataset, self.profile.name()),
            &["pre-training", "eps", "epochs", "SA %", "RA % (PGD-20)", "training s"],
        );
        for m in &self.models {
            t.push(vec![
                m.pretraining.to_string(),
                crate::attack::format_eps(m.eps),
                m.history.epochs.len().to_string(),
                format!("{:.2}", 100.0 * m.sa),
                format!("{:.2}", 100.0 * m.ra),
                format!("{:.0}", m.history.total_seconds()),
            ]);
        }
        t
    }
    pub fn evcxr_display(&self) {
        self.table().evcxr_display();
    }
}

impl std::fmt::Display for SourceModels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.table())
    }
}
