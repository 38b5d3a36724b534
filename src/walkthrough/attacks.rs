//! Attack walkthroughs: adversarial examples as an image grid, robustness curves with masking
//! checks, and PGD against AutoAttack on several networks ([`compare_attacks`]).

use crate::attack::{robust_evaluate, Attack, AttackSpec, MaskingCheck, Pgd, TestAttack, ThreatModel};
use crate::data::Dataset;
use crate::display::{escape_html, evcxr_emit, Table};
use crate::error::Result;
use crate::model::Network;
use crate::plot::{Figure, Series};
use serde::{Deserialize, Serialize};

/// Clean test images and their adversarial versions under `attack`, each captioned with the
/// network's prediction.
pub fn adversarial_examples(net: &Network, data: &Dataset, attack: &AttackSpec, n: i64) -> Result<Figure> {
    let x = data.float_images(0, n)?.f_to_device(net.device())?;
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

/// Accuracy under PGD as eps grows, one curve per network, with each network's masking check.
pub fn robustness_curves(nets: &[(String, &Network)], data: &Dataset, pgd: &Pgd, eps: &[f64]) -> Result<(Figure, Vec<MaskingCheck>)> {
    let mut series = Vec::new();
    let mut checks = Vec::new();
    for (name, net) in nets {
        let check = MaskingCheck::run(net, data, pgd, eps, 250)?;
        series.push(Series::new(name.clone(), check.eps.iter().zip(&check.pgd_accuracy).map(|(e, a)| (*e, 100.0 * a)).collect()));
        checks.push(check);
    }
    Ok((Figure::lines("Accuracy under PGD vs eps", "eps (L-inf)", "accuracy (%)", &series)?, checks))
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

/// Evaluates each network on `data` under FGSM, PGD-20 and then AutoAttack (`standard` or the
/// fast pair) in one sequence per network, seeded with `seed`: the RA after PGD-20 and the RA
/// after AutoAttack side by side (a large gap is a sign of gradient masking and is warned about).
pub fn compare_attacks(nets: &[(String, &Network)], data: &Dataset, eps: f64, standard: bool, seed: u64) -> Result<AttackComparison> {
    let threat = ThreatModel::linf(eps).test(if standard { TestAttack::Autoattack } else { TestAttack::AutoattackFast });
    threat.check()?;
    let attacks: Vec<AttackSpec> = threat.test_attacks().iter().map(|a| a.seeded(seed)).collect();
    let mut rows = Vec::new();
    let mut warnings = Vec::new();
    for (name, net) in nets {
        let e = robust_evaluate(net, data, &attacks, 250)?;
        let after = |prefix: &str| e.accuracy_after(prefix).unwrap_or(f64::NAN);
        rows.push((name.clone(), e.sa, after("FGSM"), after("PGD-20"), e.ra));
        warnings.extend(e.warnings.iter().map(|w| format!("{name}: {w}")));
    }
    Ok(AttackComparison { eps, examples: data.len(), autoattack: if standard { "standard" } else { "fast" }.into(), rows, warnings })
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
