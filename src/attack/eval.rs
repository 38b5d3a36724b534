//! Robust evaluation: standard accuracy (SA) and robust accuracy (RA) under a list of attacks
//! run in sequence on the points still classified correctly (the AutoAttack convention), and
//! checks for signs of gradient masking: vanishing input gradients, FGSM beating PGD, the
//! black-box Square breaking what the gradient attacks missed, AutoAttack far below PGD.
//!
//! Warnings added here begin with a stable name, `gradient masking (<check>): ...`, so reports
//! and tests can find them.

use super::{input_gradient, input_gradient_of, Attack, AttackSpec, AutoAttack, Fgsm, Pgd};
use crate::data::{Augment, Dataset};
use crate::display::{evcxr_emit, Table};
use crate::error::{Error, Result};
use crate::model::Network;
use crate::plot::{Figure, Series};
use crate::stats::Hits;
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

/// What one attack of the sequence achieved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttackOutcome {
    pub attack: String,
    /// Examples this attack turned from correct to wrong (after the attacks before it).
    pub newly_broken: usize,
    /// Accuracy after this attack and all before it.
    pub accuracy_after: f64,
}

/// SA and RA of a network on a dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RobustEvaluation {
    pub dataset: String,
    pub examples: usize,
    /// Standard (clean) accuracy.
    pub sa: f64,
    /// Robust accuracy: correct under every attack of the list.
    pub ra: f64,
    pub per_attack: Vec<AttackOutcome>,
    pub warnings: Vec<String>,
    /// Which examples were classified correctly (clean) and stayed correct under every attack
    /// (robust), in the data's order: what paired comparisons of two networks need.
    pub clean_hits: Hits,
    pub robust_hits: Hits,
}

/// Accuracy after the attacks of a sequence up to the first whose name starts with `prefix`
/// (e.g. "PGD-20": the PGD-20 RA of an evaluation that goes on to AutoAttack).
pub fn accuracy_after(outcomes: &[AttackOutcome], prefix: &str) -> Option<f64> {
    outcomes.iter().find(|a| a.attack.starts_with(prefix)).map(|a| a.accuracy_after)
}

impl RobustEvaluation {
    /// [`accuracy_after`] of this evaluation's attacks.
    pub fn accuracy_after(&self, prefix: &str) -> Option<f64> {
        accuracy_after(&self.per_attack, prefix)
    }

    pub fn table(&self) -> Table {
        let mut t = Table::new(
            format!("Robust evaluation on {} ({} examples)", self.dataset, self.examples),
            &["step", "accuracy %", "newly broken"],
        );
        t.push(vec!["clean (SA)".into(), format!("{:.2}", 100.0 * self.sa), "-".into()]);
        for a in &self.per_attack {
            t.push(vec![format!("+ {}", a.attack), format!("{:.2}", 100.0 * a.accuracy_after), a.newly_broken.to_string()]);
        }
        t
    }
    pub fn evcxr_display(&self) {
        evcxr_emit("text/html", &(self.table().to_html() + &warnings_html(&self.warnings)));
    }
}

impl std::fmt::Display for RobustEvaluation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.table())?;
        writeln!(f, "SA {:.2}%  RA {:.2}%", 100.0 * self.sa, 100.0 * self.ra)?;
        for w in &self.warnings {
            writeln!(f, "warning: {w}")?;
        }
        Ok(())
    }
}

/// Warnings as red HTML paragraphs.
fn warnings_html(warnings: &[String]) -> String {
    warnings.iter().map(|w| format!("<p style=\"color:#b00\">warning: {}</p>", crate::display::escape_html(w))).collect()
}

/// Examples the vanishing-gradient probe of [`robust_evaluate`] looks at.
const PROBE: usize = 8;

fn correct(net: &Network, x: &Tensor, y: &Tensor) -> Result<Tensor> {
    let _guard = tch::no_grad_guard();
    Ok(net.forward(x, false)?.f_argmax(-1, false)?.f_eq_tensor(y)?)
}

fn correct_folded(net: &crate::model::FoldedNetwork, x: &Tensor, y: &Tensor) -> Result<Tensor> {
    let _guard = tch::no_grad_guard();
    Ok(net.forward(x)?.f_argmax(-1, false)?.f_eq_tensor(y)?)
}

/// SA, and RA under `attacks` applied in sequence to the examples still classified correctly.
/// The network is evaluated in eval mode. For AutoAttack pass `AutoAttack::attacks()` (its
/// components as separate steps): the outcome then shows what each component added, and a
/// "gradient masking (square)" warning appears when Square breaks points the gradient attacks
/// before it missed.
pub fn robust_evaluate(net: &Network, data: &Dataset, attacks: &[AttackSpec], batch_size: usize) -> Result<RobustEvaluation> {
    if data.is_empty() {
        return Err(Error::invalid(format!("{} is empty", data.name()), "evaluate on a non-empty split"));
    }
    net.check_fits(data)?;
    // The weights do not change during an evaluation: fold the batch norms once.
    let folded = net.folded_eval()?;
    let tally = attack_in_sequence(net, &folded, data, attacks, batch_size)?;
    let n = data.len() as f64;
    let mut remaining = tally.clean;
    let per_attack: Vec<AttackOutcome> = attacks
        .iter()
        .zip(&tally.broken)
        .map(|(a, &k)| {
            remaining -= k;
            AttackOutcome { attack: a.name(), newly_broken: k as usize, accuracy_after: remaining as f64 / n }
        })
        .collect();
    let mut warnings = Vec::new();
    if !attacks.is_empty() {
        warnings.extend(vanishing_gradient_warning(&folded, data, batch_size, net.device())?);
    }
    warnings.extend(fgsm_warnings(attacks, &tally.broken, n));
    warnings.extend(square_warnings(attacks, &tally.broken, data.len()));
    // PGD followed by AutoAttack's gradient attacks in one sequence: compare the two RAs.
    if let Some(i) = attacks.iter().rposition(|a| matches!(a, AttackSpec::Pgd(_))) {
        let later = attacks[i + 1..].iter().any(|a| a.uses_gradients() && !matches!(a, AttackSpec::Fgsm(_)));
        if later {
            warnings.extend(pgd_gap_warning(per_attack[i].accuracy_after, remaining as f64 / n));
        }
    }
    Ok(RobustEvaluation {
        dataset: data.name().into(),
        examples: data.len(),
        sa: tally.clean as f64 / n,
        ra: remaining as f64 / n,
        per_attack,
        warnings,
        clean_hits: Hits(tally.clean_hits),
        robust_hits: Hits(tally.robust_hits),
    })
}

/// What the attacks of a robust evaluation did: the clean count, the examples each attack broke,
/// and per example whether it was correct clean and under every attack.
struct Tally {
    clean: i64,
    broken: Vec<i64>,
    clean_hits: Vec<bool>,
    robust_hits: Vec<bool>,
}

/// Classifies `data` batch by batch with `folded` (the eval-mode `net`), then runs `attacks` in
/// sequence on the examples still correct.
fn attack_in_sequence(
    net: &Network,
    folded: &crate::model::FoldedNetwork,
    data: &Dataset,
    attacks: &[AttackSpec],
    batch_size: usize,
) -> Result<Tally> {
    let mut t = Tally {
        clean: 0,
        broken: vec![0i64; attacks.len()],
        clean_hits: Vec::with_capacity(data.len()),
        robust_hits: Vec::with_capacity(data.len()),
    };
    for batch in data.batches(batch_size, None, Augment::none(), net.device())? {
        let b = batch?;
        let mut ok = correct_folded(folded, &b.images, &b.labels)?;
        t.clean += ok.f_sum(Kind::Int64)?.f_int64_value(&[])?;
        t.clean_hits.extend(Vec::<bool>::try_from(ok.f_to_device(tch::Device::Cpu)?)?);
        for (i, attack) in attacks.iter().enumerate() {
            let idx = ok.f_nonzero()?.f_flatten(0, -1)?;
            if idx.size()[0] == 0 {
                break;
            }
            let (x, y) = (b.images.f_index_select(0, &idx)?, b.labels.f_index_select(0, &idx)?);
            let adv = attack.perturb(net, &x, &y)?;
            let still = correct_folded(folded, &adv, &y)?;
            t.broken[i] += still.f_logical_not()?.f_sum(Kind::Int64)?.f_int64_value(&[])?;
            ok = ok.f_index_put_(&[Some(idx)], &still, false)?;
        }
        t.robust_hits.extend(Vec::<bool>::try_from(ok.f_to_device(tch::Device::Cpu)?)?);
    }
    Ok(t)
}

/// Cheap check on the first examples (at most [`PROBE`] of them, so the check stays a small
/// fraction of the evaluation): gradient attacks are blind where input gradients vanish.
fn vanishing_gradient_warning(
    folded: &crate::model::FoldedNetwork,
    data: &Dataset,
    batch_size: usize,
    device: tch::Device,
) -> Result<Option<String>> {
    let probe = data.subset(&(0..data.len().min(batch_size).min(PROBE) as i64).collect::<Vec<_>>(), "probe")?;
    let Some(b) = probe.batches(batch_size, None, Augment::none(), device)?.next().transpose()? else { return Ok(None) };
    let (_, g) = input_gradient_of(&|x: &Tensor| folded.forward(x), &b.images, &b.labels)?;
    let per = g.f_abs()?.f_flatten(1, -1)?.f_sum_dim_intlist([1i64].as_slice(), false, Kind::Double)?;
    let zero = per.f_eq(0.0)?.f_to_kind(Kind::Double)?.f_mean(Kind::Double)?.f_double_value(&[])?;
    Ok((zero > 0.5)
        .then(|| format!("{:.0}% of input gradients are exactly zero: gradient attacks cannot work, RA is not trustworthy", 100.0 * zero)))
}

/// Later (stronger) attacks finding nothing the first missed is normal; an FGSM listed after
/// PGD breaking many more points (over 1% of the `n` examples) is not.
fn fgsm_warnings(attacks: &[AttackSpec], broken: &[i64], n: f64) -> Vec<String> {
    let mut warnings = Vec::new();
    for w in attacks.windows(2).zip(broken.windows(2)) {
        if let ([AttackSpec::Pgd(p), AttackSpec::Fgsm(_)], [_, k]) = (w.0, w.1) {
            if *k as f64 > 0.01 * n {
                warnings
                    .push(format!("FGSM broke {k} points that {} missed: PGD is weaker than FGSM, a sign of gradient masking", p.name()));
            }
        }
    }
    warnings
}

/// Square may add this fraction of the examples after gradient attacks before it raises the
/// alarm. Where gradients are informative, APGD-CE and APGD-T leave Square almost nothing: in
/// AutoAttack's evaluations of sound defences Square adds 0.0-0.1 points of the examples (Croce
/// & Hein 2020, Table 2 and the RobustBench leaderboard), so 1% is ten times that. Masked models
/// look very different (Square breaking tens of percent). At least [`SQUARE_MIN_POINTS`] points
/// are needed too, so one unlucky example in a tiny evaluation raises nothing.
pub const SQUARE_ALARM_FRACTION: f64 = 0.01;
/// See [`SQUARE_ALARM_FRACTION`].
pub const SQUARE_MIN_POINTS: i64 = 3;

/// "gradient masking (square)" warnings: Square (forward passes only) breaking more than
/// [`SQUARE_ALARM_FRACTION`] of the `examples` after gradient attacks ran on them.
fn square_warnings(attacks: &[AttackSpec], broken: &[i64], examples: usize) -> Vec<String> {
    let mut w = Vec::new();
    for (i, (attack, &k)) in attacks.iter().zip(broken).enumerate() {
        let before: Vec<String> = attacks[..i].iter().filter(|a| a.uses_gradients()).map(|a| a.name()).collect();
        if !matches!(attack, AttackSpec::Square(_)) || before.is_empty() {
            continue;
        }
        if k >= SQUARE_MIN_POINTS && k as f64 > SQUARE_ALARM_FRACTION * examples as f64 {
            w.push(format!(
                "gradient masking (square): Square broke {k} points ({:.1}% of {examples}) that the gradient attacks before it ({}) \
                 missed: a sign of gradient masking, RA from gradient attacks alone overestimates robustness",
                100.0 * k as f64 / examples.max(1) as f64,
                before.join(", ")
            ));
        }
    }
    w
}

/// How far RA under AutoAttack may fall below RA under PGD-20 before it is a warning: 10
/// points. On models without masking AutoAttack lowers PGD-20's RA by about 1-4 points (Croce &
/// Hein 2020, Table 2: e.g. Madry et al.'s CIFAR-10 model 47.0% under PGD-20 vs 44.0% under
/// AutoAttack; TRADES 56.6% vs 53.1%); the defences whose reported robustness AutoAttack
/// overturned by more than 10 points were the ones with masked gradients. With a few hundred
/// examples one RA has a standard error of at most 2-3 points, so 10 points is also well
/// clear of sampling noise.
pub const PGD_GAP_ALARM: f64 = 0.10;

/// The "gradient masking (pgd gap)" warning when RA under AutoAttack is more than
/// [`PGD_GAP_ALARM`] below RA under PGD on the same examples (accuracies as fractions).
pub fn pgd_gap_warning(ra_pgd: f64, ra_autoattack: f64) -> Option<String> {
    (ra_pgd - ra_autoattack > PGD_GAP_ALARM).then(|| {
        format!(
            "gradient masking (pgd gap): RA under AutoAttack {:.1}% is {:.1} points below RA under PGD {:.1}%: PGD is being \
             fooled (masked or obfuscated gradients); report the AutoAttack number",
            100.0 * ra_autoattack,
            100.0 * (ra_pgd - ra_autoattack),
            100.0 * ra_pgd
        )
    })
}

/// RA under PGD and under AutoAttack on the same examples, and what the gap says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PgdGapCheck {
    pub pgd: RobustEvaluation,
    /// With AutoAttack's components as separate steps (so Square's warning can fire too).
    pub autoattack: RobustEvaluation,
    pub warnings: Vec<String>,
}

/// Evaluates `net` on `data` under `pgd` (e.g. `Pgd::linf(eps, eps / 4.0, 20)`) and under
/// `autoattack`'s components, and warns when AutoAttack's RA is far below PGD's
/// ([`pgd_gap_warning`]); the warnings of both evaluations are included.
pub fn compare_pgd_autoattack(net: &Network, data: &Dataset, pgd: &Pgd, autoattack: &AutoAttack, batch_size: usize) -> Result<PgdGapCheck> {
    let pgd_eval = robust_evaluate(net, data, &[pgd.clone().into()], batch_size)?;
    let aa_eval = robust_evaluate(net, data, &autoattack.attacks(), batch_size)?;
    let mut warnings: Vec<String> = pgd_eval.warnings.iter().chain(&aa_eval.warnings).cloned().collect();
    warnings.dedup();
    warnings.extend(pgd_gap_warning(pgd_eval.ra, aa_eval.ra));
    Ok(PgdGapCheck { pgd: pgd_eval, autoattack: aa_eval, warnings })
}

/// Accuracy under one attack on its own (all examples).
fn accuracy_under(net: &Network, data: &Dataset, attack: &AttackSpec, batch_size: usize) -> Result<f64> {
    let mut ok = 0i64;
    for batch in data.batches(batch_size, None, Augment::none(), net.device())? {
        let b = batch?;
        let adv = attack.perturb(net, &b.images, &b.labels)?;
        ok += correct(net, &adv, &b.labels)?.f_sum(Kind::Int64)?.f_int64_value(&[])?;
    }
    Ok(ok as f64 / data.len().max(1) as f64)
}

/// Signs of gradient masking (Athalye et al. 2018; Carlini et al. 2019): RA vs eps for FGSM and
/// PGD, and the size of input gradients.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MaskingCheck {
    pub eps: Vec<f64>,
    pub fgsm_accuracy: Vec<f64>,
    pub pgd_accuracy: Vec<f64>,
    /// Mean over examples of the L1 norm of the loss's input gradient.
    pub mean_input_gradient: f64,
    /// Fraction of examples whose input gradient is exactly zero.
    pub zero_gradient_fraction: f64,
    pub warnings: Vec<String>,
}

impl MaskingCheck {
    /// Runs FGSM and `pgd` at each radius of `eps` on `data` (use a few hundred examples).
    pub fn run(net: &Network, data: &Dataset, pgd: &Pgd, eps: &[f64], batch_size: usize) -> Result<MaskingCheck> {
        let mut eps = eps.to_vec();
        eps.sort_by(f64::total_cmp);
        let (mut fgsm_accuracy, mut pgd_accuracy) = (Vec::new(), Vec::new());
        let clean = robust_evaluate(net, data, &[], batch_size)?.sa;
        for &e in &eps {
            // At radius 0 no attack can change anything: both curves start at clean accuracy.
            if e == 0.0 {
                fgsm_accuracy.push(clean);
                pgd_accuracy.push(clean);
                continue;
            }
            fgsm_accuracy.push(accuracy_under(net, data, &AttackSpec::Fgsm(Fgsm::new(e)), batch_size)?);
            pgd_accuracy.push(accuracy_under(net, data, &AttackSpec::Pgd(pgd.clone()).with_eps(e), batch_size)?);
        }
        let (mut grad_sum, mut zero, mut n) = (0.0, 0i64, 0i64);
        for batch in data.batches(batch_size, None, Augment::none(), net.device())? {
            let b = batch?;
            let (_, g) = input_gradient(net, &b.images, &b.labels, false)?;
            let per = g.f_abs()?.f_flatten(1, -1)?.f_sum_dim_intlist([1i64].as_slice(), false, Kind::Double)?;
            grad_sum += per.f_sum(Kind::Double)?.f_double_value(&[])?;
            zero += per.f_eq(0.0)?.f_sum(Kind::Int64)?.f_int64_value(&[])?;
            n += b.labels.size()[0];
        }
        let n = n.max(1) as f64;
        let mut check = MaskingCheck {
            eps,
            fgsm_accuracy,
            pgd_accuracy,
            mean_input_gradient: grad_sum / n,
            zero_gradient_fraction: zero as f64 / n,
            warnings: Vec::new(),
        };
        check.warnings = check.diagnose(1.0 / (data.len().max(1) as f64).sqrt());
        Ok(check)
    }

    /// Warnings for the usual signs of masking; `slack` absorbs sampling noise in accuracies.
    pub fn diagnose(&self, slack: f64) -> Vec<String> {
        let mut w = Vec::new();
        for ((e, f), p) in self.eps.iter().zip(&self.fgsm_accuracy).zip(&self.pgd_accuracy) {
            if p > &(f + slack) {
                w.push(format!(
                    "at eps {}: PGD accuracy {:.1}% is above FGSM's {:.1}%: PGD weaker than FGSM suggests gradient masking",
                    super::format_eps(*e),
                    100.0 * p,
                    100.0 * f
                ));
            }
        }
        for (i, pair) in self.pgd_accuracy.windows(2).enumerate() {
            if pair[1] > pair[0] + slack {
                w.push(format!(
                    "robust accuracy rises from {:.1}% to {:.1}% as eps grows from {} to {}: a sign of gradient masking",
                    100.0 * pair[0],
                    100.0 * pair[1],
                    super::format_eps(self.eps[i]),
                    super::format_eps(self.eps[i + 1])
                ));
            }
        }
        if self.zero_gradient_fraction > 0.5 || self.mean_input_gradient < 1e-8 {
            w.push(format!(
                "input gradients vanish ({:.0}% exactly zero, mean L1 {:.2e}): gradient attacks cannot work here",
                100.0 * self.zero_gradient_fraction,
                self.mean_input_gradient
            ));
        }
        w
    }

    pub fn table(&self) -> Table {
        let mut t = Table::new("Gradient-masking check", &["eps", "FGSM acc %", "PGD acc %"]);
        for ((e, f), p) in self.eps.iter().zip(&self.fgsm_accuracy).zip(&self.pgd_accuracy) {
            t.push(vec![super::format_eps(*e), format!("{:.2}", 100.0 * f), format!("{:.2}", 100.0 * p)]);
        }
        t
    }

    /// Accuracy vs eps under FGSM and PGD.
    pub fn figure(&self) -> Result<Figure> {
        let s = |v: &[f64]| self.eps.iter().zip(v).map(|(e, a)| (*e, 100.0 * a)).collect::<Vec<_>>();
        Figure::lines(
            "Accuracy under attack vs eps",
            "eps",
            "accuracy (%)",
            &[Series::new("FGSM", s(&self.fgsm_accuracy)), Series::new("PGD", s(&self.pgd_accuracy))],
        )
    }

    pub fn evcxr_display(&self) {
        let mut html = self.table().to_html();
        if self.warnings.is_empty() {
            html += "<p>no sign of gradient masking</p>";
        }
        evcxr_emit("text/html", &(html + &warnings_html(&self.warnings)));
    }
}

impl std::fmt::Display for MaskingCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.table())?;
        writeln!(f, "mean input gradient L1 {:.3e}, {:.1}% zero", self.mean_input_gradient, 100.0 * self.zero_gradient_fraction)?;
        if self.warnings.is_empty() {
            writeln!(f, "no sign of gradient masking")?;
        }
        for w in &self.warnings {
            writeln!(f, "warning: {w}")?;
        }
        Ok(())
    }
}
