//! The [`Study`]: the declared grid (pre-trainings x IMP families x ticket rounds x downstream
//! datasets x fine-tunings x data fractions x seeds, plus the Fig. 6 landscapes), its recipes and
//! its one threat model. A study says each fact once; everything else (regimes, attacks, seeds of
//! the recipes) is derived from it, and [`Study::check`] refuses a study that is inconsistent or
//! out of range before anything runs.

use crate::attack::ThreatModel;
use crate::data::DataSource;
use crate::error::{Error, Result};
use crate::landscape::{Directions, LandscapeConfig, LandscapeLoss};
use crate::model::Arch;
use crate::prune::ImpRecipe;
use crate::train::{FineTuning, ImpFamily, Pretraining, Recipe};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The declared grid and every recipe in it. Load one with [`Study::from_json`] (unknown or
/// misspelt fields are refused), start from [`Study::for_profile`], or build it in code.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Study {
    /// The source domain (the paper: ImageNet).
    pub source: DataSource,
    pub arch: Arch,
    /// Fraction of the source training split used for pre-training and IMP.
    pub source_fraction: f64,
    /// Fraction of that subset IMP re-trains on between rounds (stratified; 1 = all of it).
    pub imp_fraction: f64,
    /// Seed of pre-training and IMP (network initialisation, data subsets, batch order).
    pub source_seed: u64,
    /// The adversary: eps and every attack's strength, for training, validation and test.
    pub threat: ThreatModel,
    pub pretrainings: Vec<Pretraining>,
    /// Pre-training recipe (its regime comes from `pretrainings`, its seed from `source_seed`).
    pub pretrain: Recipe,
    /// IMP re-training regimes: standard (m^ST) and / or adversarial (m^AT) masks.
    pub families: Vec<ImpFamily>,
    /// IMP (its re-training regime comes from `families`, its seed from `source_seed`, its
    /// rounds from the tickets the study transfers or draws: [`Study::imp_rounds`]).
    pub imp: ImpRecipe,
    /// IMP rounds whose tickets are transferred (the dense network always is).
    pub rounds: Vec<usize>,
    pub downstream: Vec<DataSource>,
    pub fine_tunings: Vec<FineTuning>,
    pub fractions: Vec<f64>,
    /// Fine-tuning seeds: each seed fixes the data subset, batch order, head and attack starts,
    /// identically for a ticket and its dense baseline.
    pub seeds: Vec<u64>,
    /// A second, disjoint set of fine-tuning seeds for the stability check: every transfer of
    /// the grid is run again with these seeds, and the report says whether they give the same
    /// headline table and claim verdicts as `seeds` (a conclusion that flips with the seeds is
    /// not settled). Empty: no check.
    #[serde(default)]
    pub stability_seeds: Vec<u64>,
    pub transfer: TransferRecipe,
    /// Verdict tolerance (fraction: 0.01 = 1 point): a ticket matches the dense network when its
    /// interval's lower bound is at least -tolerance. The profiles use 1 point: 3.6 test images of
    /// digits' 364, about the smallest difference in accuracy a user would act on, and below the
    /// half-width of any interval three seeds give on these test sets (so "yes" needs the ticket
    /// to be measurably as good, not just a lucky mean).
    pub tolerance: f64,
    /// Random-ticket and one-shot controls of the tickets (none when `None`).
    pub controls: Option<ControlPlan>,
    /// The control of pre-training: the architecture trained from a random initialisation on
    /// every downstream dataset, fine-tuning, data fraction and seed of the grid, like the dense
    /// networks. The report's pre-training gate compares each pre-trained dense network with it
    /// before any ticket verdict counts as a test of the paper's hypothesis.
    #[serde(default)]
    pub scratch: bool,
    /// Test examples of each attack check: when the test attack is PGD-20, the source models and
    /// the landscape fine-tunings are attacked again with AutoAttack-fast on this many test
    /// images, and the report states by how much PGD-20 overstates RA (0: no check).
    #[serde(default)]
    pub attack_check_examples: usize,
    /// The loss landscapes of the paper's Fig. 6 (none when `None`).
    pub landscapes: Option<LandscapePlan>,
}

/// What kind of subnetwork a transfer starts from (the study declares its controls by it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SubnetworkKind {
    Dense,
    Ticket,
    RandomTicket,
    OneShot,
    Scratch,
}

impl SubnetworkKind {
    /// The controls, in report order.
    pub const CONTROLS: [SubnetworkKind; 2] = [SubnetworkKind::RandomTicket, SubnetworkKind::OneShot];

    pub fn name(self) -> &'static str {
        match self {
            SubnetworkKind::Dense => "dense",
            SubnetworkKind::Ticket => "ticket",
            SubnetworkKind::RandomTicket => "random ticket",
            SubnetworkKind::OneShot => "one-shot",
            SubnetworkKind::Scratch => "scratch",
        }
    }
}

/// Which controls are transferred, like the tickets (every pre-training, downstream dataset,
/// fine-tuning and seed): for the tickets of one IMP family at some rounds and data fractions,
/// a random ticket with the same per-layer counts (a new draw per seed) and / or one-shot
/// magnitude pruning of the pre-trained weights to the same count.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlPlan {
    pub family: ImpFamily,
    /// `random-ticket` and / or `one-shot`.
    pub kinds: Vec<SubnetworkKind>,
    pub rounds: Vec<usize>,
    pub fractions: Vec<f64>,
}

/// The fine-tuning recipe of every transfer (its regime comes from `fine_tunings`, its seed from
/// `seeds`, its data fraction from `fractions`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferRecipe {
    /// The fine-tuning recipe; its `validations` caps the validated epochs (evenly spaced, the
    /// last always among them; 0: every epoch).
    pub recipe: Recipe,
    /// At least this many SGD steps (raises the epochs of data-limited fine-tunings).
    pub min_steps: usize,
}

/// Which fine-tunings get a loss landscape: one ticket (IMP family and round), fine-tuned on one
/// dataset at several data fractions with the first seed, from every pre-training of the study.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LandscapePlan {
    pub family: ImpFamily,
    pub round: usize,
    pub dataset: DataSource,
    pub fine_tuning: FineTuning,
    pub fractions: Vec<f64>,
    pub directions: Directions,
    /// Grid points per axis (odd).
    pub resolution: usize,
    /// The grid spans this multiple of the trajectory's extent (see [`LandscapeConfig::margin`]).
    pub margin: f64,
    /// Draw the landscapes of one data fraction on one scale: each grid spans `margin` times the
    /// longest start-to-end distance of the pre-trainings' trajectories (else each spans its own
    /// trajectory's extent).
    pub shared_scale: bool,
    /// Size of the fixed evaluation subset of the test split.
    pub examples: usize,
    /// PGD steps of the adversarial loss drawn, at the threat model's eps (0: clean loss).
    pub attack_steps: usize,
    /// Checkpoints kept per fine-tuning (evenly spaced; the first and last always).
    pub checkpoints: usize,
}

impl LandscapePlan {
    /// The landscape settings, with the loss derived from the study's threat model.
    pub fn config(&self, threat: &ThreatModel) -> LandscapeConfig {
        let loss = match self.attack_steps {
            0 => LandscapeLoss::Clean,
            steps => LandscapeLoss::Adversarial { eps: threat.eps, steps },
        };
        LandscapeConfig {
            directions: self.directions,
            loss,
            resolution: self.resolution,
            margin: self.margin,
            radius: None,
            examples: self.examples,
            seed: 0,
        }
    }
}

impl Study {
    /// The rounds IMP runs: as many as the deepest ticket the study transfers, controls or
    /// draws (at least 1).
    pub fn imp_rounds(&self) -> usize {
        let controls = self.controls.iter().flat_map(|c| c.rounds.iter().copied());
        let landscape = self.landscapes.iter().map(|l| l.round);
        self.rounds.iter().copied().chain(controls).chain(landscape).max().unwrap_or(1).max(1)
    }

    /// Every fine-tuning seed the grid runs: `seeds`, then `stability_seeds`.
    pub fn all_seeds(&self) -> Vec<u64> {
        self.seeds.iter().chain(&self.stability_seeds).copied().collect()
    }

    /// Parses a study from JSON and checks it ([`Study::check`]). Unknown fields are refused,
    /// naming the nearest valid one.
    pub fn from_json(text: &str) -> Result<Study> {
        let de = &mut serde_json::Deserializer::from_str(text);
        let study: Study = serde_path_to_error::deserialize(&mut *de).map_err(|e| {
            // The path names the field whose value is wrong ("transfer.recipe.epochs"); serde's
            // own message says what it expected there.
            let path = e.path().to_string();
            let msg = e.inner().to_string();
            let at = if path.is_empty() || path == "." { String::new() } else { format!("field `{path}`: ") };
            Error::invalid(
                format!("study JSON: {at}{msg}{}", did_you_mean(&msg)),
                "fix the field (`doublewin study show` prints a valid study)",
            )
        })?;
        // Anything after the study (a second object, a stray edit) is refused, not ignored.
        de.end().map_err(|e| {
            Error::invalid(format!("study JSON: text after the study ({e})"), "remove what follows the study's closing brace")
        })?;
        study.check()?;
        Ok(study)
    }

    /// [`Study::from_json`] of a file.
    pub fn load(path: impl AsRef<Path>) -> Result<Study> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Study::from_json(&text).map_err(|e| match e {
            Error::InvalidInput { problem, fix } => Error::InvalidInput { problem: format!("{}: {problem}", path.display()), fix },
            other => other,
        })
    }

    /// Checks every value of the study before anything runs; the error lists every problem
    /// found, each naming its field.
    pub fn check(&self) -> Result<()> {
        let mut p = Problems::default();
        self.check_values(&mut p);
        self.check_lists(&mut p);
        self.check_seeds(&mut p);
        self.check_recipes(&mut p);
        if let Some(c) = &self.controls {
            c.check(self, &mut p);
        }
        if let Some(l) = &self.landscapes {
            l.check(self, &mut p);
        }
        if p.0.is_empty() {
            return Ok(());
        }
        Err(Error::invalid(format!("the study is inconsistent: {}", p.0.join("; ")), "fix these fields; nothing has run"))
    }

    /// Ranges and compatibility: the architecture, fractions, threat model, tolerance, channels.
    fn check_values(&self, p: &mut Problems) {
        p.result("arch", self.arch.check());
        p.fraction("source_fraction", self.source_fraction);
        p.fraction("imp_fraction", self.imp_fraction);
        for f in &self.fractions {
            p.fraction("fractions", *f);
        }
        if let Err(e) = self.threat.check() {
            p.0.push(e.to_string());
        }
        if self.pretrainings.contains(&Pretraining::Fast) {
            if let Err(e) = self.threat.fast_attack() {
                p.0.push(e.to_string());
            }
        }
        for d in &self.downstream {
            if d.channels() != self.source.channels() {
                p.0.push(format!(
                    "downstream {} has {} channels, source {} has {}",
                    d.name(),
                    d.channels(),
                    self.source.name(),
                    self.source.channels()
                ));
            }
        }
        if !(self.tolerance >= 0.0 && self.tolerance < 0.5) {
            p.0.push(format!("tolerance = {} is not in [0, 0.5) (a fraction: 0.005 = 0.5 points)", self.tolerance));
        }
    }

    /// The grid's lists: none that must have entries is empty, none repeats an entry.
    fn check_lists(&self, p: &mut Problems) {
        for (name, empty) in [
            ("pretrainings", self.pretrainings.is_empty()),
            ("fine_tunings", self.fine_tunings.is_empty()),
            ("downstream", self.downstream.is_empty()),
            ("fractions", self.fractions.is_empty()),
            ("seeds", self.seeds.is_empty()),
        ] {
            if empty {
                p.0.push(format!("{name} is empty"));
            }
        }
        p.repeats("pretrainings", &self.pretrainings);
        p.repeats("families", &self.families);
        p.repeats("rounds", &self.rounds);
        p.repeats("downstream", &self.downstream);
        p.repeats("fine_tunings", &self.fine_tunings);
        p.repeats("fractions", &self.fractions);
    }

    /// The seeds and the stability check's seeds: no repeats, disjoint, as many.
    fn check_seeds(&self, p: &mut Problems) {
        let mut seeds = self.seeds.clone();
        seeds.sort_unstable();
        seeds.dedup();
        if seeds.len() != self.seeds.len() {
            p.0.push(format!("seeds {:?} repeat a seed", self.seeds));
        }
        let mut second = self.stability_seeds.clone();
        second.sort_unstable();
        second.dedup();
        if second.len() != self.stability_seeds.len() {
            p.0.push(format!("stability_seeds {:?} repeat a seed", self.stability_seeds));
        }
        if let Some(s) = second.iter().find(|s| seeds.contains(s)) {
            p.0.push(format!(
                "stability_seeds {:?} share seed {s} with seeds {:?}: the two sets must be disjoint",
                self.stability_seeds, self.seeds
            ));
        }
        if !second.is_empty() && second.len() != seeds.len() {
            p.0.push(format!(
                "stability_seeds has {} seeds and seeds {}: the check compares sets of the same size",
                second.len(),
                seeds.len()
            ));
        }
    }

    /// The recipes (which hold no regime or seed: those come from the roles, the threat model
    /// and the seeds), IMP, and the rounds it is asked for.
    fn check_recipes(&self, p: &mut Problems) {
        for (name, recipe) in [("pretrain", &self.pretrain), ("imp.retrain", &self.imp.retrain), ("transfer.recipe", &self.transfer.recipe)]
        {
            p.result(name, recipe.check());
        }
        p.result("imp", self.imp.check());
        if !self.rounds.is_empty() && self.families.is_empty() {
            p.0.push(format!("rounds {:?} are set but families is empty (no IMP runs)", self.rounds));
        }
        if self.rounds.contains(&0) {
            p.0.push("rounds contains 0: round 0 is the dense network, always transferred".into());
        }
    }
}

/// What [`Study::check`] found wrong, one line per problem, each naming its field.
#[derive(Default)]
struct Problems(Vec<String>);

impl Problems {
    fn fraction(&mut self, name: &str, f: f64) {
        if !(f > 0.0 && f <= 1.0) {
            self.0.push(format!("{name} = {f} is not in (0, 1]"));
        }
    }
    /// A repeated entry would run and print every row twice.
    fn repeats<T: PartialEq + std::fmt::Debug>(&mut self, name: &str, list: &[T]) {
        if let Some((i, x)) = list.iter().enumerate().find(|(i, x)| list[..*i].contains(x)) {
            self.0.push(format!("{name} {list:?} repeat {x:?} (entry {})", i + 1));
        }
    }
    fn result(&mut self, name: &str, r: Result<()>) {
        if let Err(e) = r {
            self.0.push(format!("{name}: {e}"));
        }
    }
}

impl ControlPlan {
    /// The controls are of tickets the study has: its families, rounds 1 and later.
    fn check(&self, study: &Study, p: &mut Problems) {
        if !study.families.contains(&self.family) {
            p.0.push(format!("controls.family {} is not in families {:?}", self.family, study.families));
        }
        for k in &self.kinds {
            if !SubnetworkKind::CONTROLS.contains(k) {
                p.0.push(format!("controls.kinds has {}: a control is random-ticket or one-shot", k.name()));
            }
        }
        if self.rounds.contains(&0) {
            p.0.push("controls.rounds contains 0: a control is of a ticket (round 1 or later)".into());
        }
        for f in &self.fractions {
            p.fraction("controls.fractions", *f);
        }
        p.repeats("controls.kinds", &self.kinds);
        p.repeats("controls.rounds", &self.rounds);
        p.repeats("controls.fractions", &self.fractions);
    }
}

impl LandscapePlan {
    /// The landscapes are of a ticket the study has, on data like the source's, with enough
    /// checkpoints for their plane.
    fn check(&self, study: &Study, p: &mut Problems) {
        if !study.families.contains(&self.family) {
            p.0.push(format!("landscapes.family {} is not in families {:?}", self.family, study.families));
        }
        if self.round == 0 {
            p.0.push("landscapes.round = 0: the landscape is of a ticket (round 1 or later)".into());
        }
        if self.dataset.channels() != study.source.channels() {
            p.0.push(format!("landscapes.dataset {} has other channels than the source", self.dataset.name()));
        }
        for f in &self.fractions {
            p.fraction("landscapes.fractions", *f);
        }
        p.repeats("landscapes.fractions", &self.fractions);
        if let Err(e) = self.config(&study.threat).check() {
            p.0.push(format!("landscapes: {e}"));
        }
        if self.directions == Directions::Pca {
            if self.checkpoints < 3 {
                p.0.push(format!("landscapes.checkpoints = {}: a PCA plane needs at least 3", self.checkpoints));
            }
            if study.transfer.recipe.epochs < 2 && study.transfer.min_steps == 0 {
                p.0.push(format!("landscapes need at least 3 checkpoints, transfer.recipe has {} epoch(s)", study.transfer.recipe.epochs));
            }
        }
    }
}

/// For serde's "unknown field `x`, expected one of `a`, `b`, ..." messages: the valid field
/// nearest to `x` (edit distance), as " (did you mean `a`?)".
pub(crate) fn did_you_mean(message: &str) -> String {
    let Some(rest) = message.strip_prefix("unknown field `").or_else(|| message.split("unknown field `").nth(1)) else {
        return String::new();
    };
    let unknown = rest.split('`').next().unwrap_or_default();
    let valid: Vec<&str> = rest.split("expected one of ").nth(1).unwrap_or_default().split('`').skip(1).step_by(2).collect();
    valid
        .iter()
        .map(|v| (edit_distance(unknown, v), *v))
        .min()
        .filter(|(d, v)| *d <= v.len().max(unknown.len()) / 2)
        .map(|(_, v)| format!(" (did you mean `{v}`?)"))
        .unwrap_or_default()
}

/// Levenshtein distance.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::study::Profile;

    #[test]
    fn misspelt_fields_are_refused_with_the_nearest_name() {
        let mut json = serde_json::to_value(Study::for_profile(Profile::Tiny)).unwrap();
        let f = json["imp_fraction"].take();
        json.as_object_mut().unwrap().remove("imp_fraction");
        json["imp_fracton"] = f;
        let e = Study::from_json(&json.to_string()).unwrap_err().to_string();
        assert!(e.contains("imp_fracton") && e.contains("did you mean `imp_fraction`"), "{e}");
        let mut json = serde_json::to_value(Study::for_profile(Profile::Tiny)).unwrap();
        json["tolerence"] = serde_json::json!(0.05);
        let e = Study::from_json(&json.to_string()).unwrap_err().to_string();
        assert!(e.contains("did you mean `tolerance`"), "{e}");
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn every_problem_is_named_before_anything_runs() {
        let mut s = Study::for_profile(Profile::Tiny);
        s.threat.eps = -0.1;
        s.rounds = vec![0, 9];
        s.pretrain = s.pretrain.clone().epochs(0);
        s.seeds = vec![1, 1];
        let e = s.check().unwrap_err().to_string();
        for needle in ["eps = -0.1", "rounds contains 0", "pretrain: epochs 0", "repeat a seed"] {
            assert!(e.contains(needle), "missing '{needle}' in: {e}");
        }
        // IMP runs to the deepest ticket asked for: round 9 is no error, it makes IMP longer.
        s.rounds = vec![9];
        assert_eq!(s.imp_rounds(), 9);
        for p in Profile::ALL {
            Study::for_profile(p).check().unwrap();
        }
    }

    #[test]
    fn recipes_carry_no_regime_or_seed() {
        // They come from the roles, the threat model and the seeds: a study file that sets them
        // is refused by name, and resolving gives each step its own.
        for field in ["pretrain", "transfer"] {
            let mut json = serde_json::to_value(Study::for_profile(Profile::Tiny)).unwrap();
            let recipe = if field == "pretrain" { &mut json["pretrain"] } else { &mut json["transfer"]["recipe"] };
            recipe["seed"] = 3.into();
            let e = Study::from_json(&json.to_string()).unwrap_err().to_string();
            assert!(e.contains("unknown field `seed`"), "{e}");
        }
        let s = Study::for_profile(Profile::Tiny);
        let at = s.pretrain_desc(Pretraining::Adversarial).unwrap();
        assert_eq!((at.pretraining(), at.train.seed), (Pretraining::Adversarial, s.source_seed));
        let imp = s.imp_desc(Pretraining::Standard, ImpFamily::Adversarial).unwrap();
        assert_eq!((imp.family(), imp.imp.rounds), (ImpFamily::Adversarial, s.imp_rounds()));
    }
}
