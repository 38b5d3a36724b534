//! Attack walkthroughs: adversarial examples as an image grid, robustness curves with masking
//! checks, and PGD against AutoAttack on several networks ([`compare_attacks`]).

use crate::attack::{robust_evaluate, Attack, AttackSpec, MaskingCheck, Pgd, TestAttack, ThreatModel};
use crate::data::Dataset;
use crate::display::{escape_html, evcxr_emit, Table};
use crate::error::Result;
use crate::model::Network;
use crate::plot::{Figure, Series};
use serde::{Deserialize, Serialize};

/// How many images [`adversarial_examples`] shows.
pub const EXAMPLES_SHOWN: i64 = 8;

/// The first [`EXAMPLES_SHOWN`] images of `data` and their adversarial versions under `attack`,
/// each captioned with the network's prediction, and the perturbation amplified.
pub fn adversarial_examples(net: &Network, data: &Dataset, attack: &AttackSpec) -> Result<Figure> {
    let x = data.float_images(0, EXAMPLES_SHOWN)?.f_to_device(net.device())?;
    let y = data.labels().f_narrow(0, 0, x.size()[0])?.f_to_device(net.device())?;
    let adv = attack.perturb(net, &x, &y)?;
    let names = |preds: Vec<i64>| preds.into_iter().map(|p| data.classes()[p as usize].clone()).collect::<Vec<_>>();
    let truth = names(Vec::<i64>::try_from(y.f_to_device(tch::Device::Cpu)?)?);
    let amplified = adv.f_sub(&x)?.f_mul_scalar(0.5 / attack.eps().max(1e-12))?.f_add_scalar(0.5)?;
    Figure::image_grid(
        &format!("{} on {}", attack.name(), net.arch().name()),
        &[("clean".into(), x.shallow_clone()), ("adversarial".into(), adv.shallow_clone()), ("perturbation".into(), amplified)],
        &[names(net.predict(&x)?), names(net.predict(&adv)?), truth.iter().map(|t| format!("true: {t}")).collect()],
    )
}

/// An attack swept over radii: `pgd` (its step rule scales with the radius) at each of `eps`.
#[derive(Debug, Clone, PartialEq)]
pub struct EpsSweep {
    pub pgd: Pgd,
    pub eps: Vec<f64>,
}

/// Accuracy under PGD as eps grows, one curve per network, and each network's masking check,
/// by the network's name. Renders as its figure.
#[derive(Debug, Clone)]
pub struct RobustnessCurves {
    pub figure: Figure,
    pub checks: Vec<(String, MaskingCheck)>,
}

impl RobustnessCurves {
    /// The masking check of the network named `name`.
    pub fn check(&self, name: &str) -> Result<&MaskingCheck> {
        self.checks.iter().find(|(n, _)| n == name).map(|(_, c)| c).ok_or_else(|| {
            crate::error::Error::invalid(
                format!("no network named '{name}' in these curves"),
                format!("use one of {}", self.checks.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(", ")),
            )
        })
    }
    /// Every check's warnings together.
    pub fn warnings(&self) -> usize {
        self.checks.iter().map(|(_, c)| c.warnings.len()).sum()
    }
    pub fn evcxr_display(&self) {
        self.figure.evcxr_display()
    }
}

/// Examples per network of [`robustness_curves`]' masking checks.
pub const CURVE_EXAMPLES: usize = 250;

/// Accuracy under PGD as eps grows, one curve per network, with each network's masking check.
pub fn robustness_curves(nets: &[(String, &Network)], data: &Dataset, sweep: &EpsSweep) -> Result<RobustnessCurves> {
    let mut series = Vec::new();
    let mut checks = Vec::new();
    for (name, net) in nets {
        let check = MaskingCheck::run(net, data, &sweep.pgd, &sweep.eps, CURVE_EXAMPLES)?;
        series.push(Series::new(name.clone(), check.eps.iter().zip(&check.pgd_accuracy).map(|(e, a)| (*e, 100.0 * a)).collect()));
        checks.push((name.clone(), check));
    }
    Ok(RobustnessCurves { figure: Figure::lines("Accuracy under PGD vs eps", "eps (L-inf)", "accuracy (%)", &series)?, checks })
}

/// SA, and RA under FGSM, PGD-20 and AutoAttack of several networks on the same images.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttackComparison {
    pub eps: f64,
    pub examples: usize,
    /// Which AutoAttack ran: "fast" (APGD-CE, APGD-T) or "standard" (+ FAB-T, Square).
    pub autoattack: String,
    /// (network, SA, RA after FGSM, after FGSM + PGD-20, after everything up to AutoAttack).
    pub rows: Vec<(String, f64, f64, f64, f64)>,
    pub warnings: Vec<String>,
}

/// Evaluates each network on `data` under `threat`'s test attacks in one sequence per network
/// (FGSM, PGD-20 and, for `TestAttack::Autoattack` / `AutoattackFast`, AutoAttack; attack seeds
/// as the study uses them): the RA after PGD-20 and the RA after AutoAttack side by side (a
/// large gap is a sign of gradient masking and is warned about).
pub fn compare_attacks(nets: &[(String, &Network)], data: &Dataset, threat: &ThreatModel) -> Result<AttackComparison> {
    threat.check()?;
    let autoattack = match threat.test {
        TestAttack::Autoattack => "standard",
        TestAttack::AutoattackFast => "fast",
        _ => {
            return Err(crate::error::Error::invalid(
                format!("the threat model's test attack is {:?}, which has no AutoAttack to compare with", threat.test),
                "set .test(TestAttack::AutoattackFast) or .test(TestAttack::Autoattack) on the threat model",
            ))
        }
    };
    let attacks = threat.test_attacks();
    let mut rows = Vec::new();
    let mut warnings = Vec::new();
    for (name, net) in nets {
        let e = robust_evaluate(net, data, &attacks, 250)?;
        let after = |prefix: &str| e.accuracy_after(prefix).unwrap_or(f64::NAN);
        rows.push((name.clone(), e.sa, after("FGSM"), after("PGD-20"), e.ra));
        warnings.extend(e.warnings.iter().map(|w| format!("{name}: {w}")));
    }
    Ok(AttackComparison { eps: threat.eps, examples: data.len(), autoattack: autoattack.into(), rows, warnings })
}

impl AttackComparison {
    pub fn table(&self) -> Table {
        let mut t = Table::new(
            format!(
                "PGD vs AutoAttack ({}) at eps {} on {} images (attacks in sequence on the points still correct)",
                self.autoattack,
                crate::attack::format_eps(self.eps),
                self.examples
            ),
            &["network", "SA %", "RA % FGSM", "RA % + PGD-20", "RA % + AutoAttack", "AutoAttack - PGD-20 (points)"],
        );
        for (name, sa, fgsm, pgd, aa) in &self.rows {
            t.push(vec![
                name.clone(),
                format!("{:.1}", 100.0 * sa),
                format!("{:.1}", 100.0 * fgsm),
                format!("{:.1}", 100.0 * pgd),
                format!("{:.1}", 100.0 * aa),
                format!("{:+.1}", 100.0 * (aa - pgd)),
            ]);
        }
        t
    }
    pub fn evcxr_display(&self) {
        let warnings: String = self.warnings.iter().map(|w| format!("<p style=\"color:#b00\">warning: {}</p>", escape_html(w))).collect();
        evcxr_emit("text/html", &(self.table().to_html() + &warnings));
    }
}

impl std::fmt::Display for AttackComparison {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.table())?;
        for w in &self.warnings {
            writeln!(f, "warning: {w}")?;
        }
        Ok(())
    }
}
