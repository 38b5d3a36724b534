//! FGSM (Goodfellow et al. 2015) and its random-start variant FGSM-RS, the attack of "fast"
//! adversarial training (Wong et al. 2020): start uniformly inside the eps-ball, one signed
//! gradient step of 1.25 eps, project back onto the ball and into [0, 1].

use super::{attack_labels, check_batch, format_eps, iterate, random_start, Ascent, Attack, CallCounter, Norm, Targeted, Targeting};
use crate::error::Result;
use crate::model::Network;
use serde::{Deserialize, Serialize};
use tch::Tensor;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, derive_setters::Setters)]
#[serde(deny_unknown_fields)]
#[setters(generate = false)]
pub struct Fgsm {
    pub eps: f64,
    /// Step size (eps for plain FGSM, 1.25 eps for FGSM-RS).
    #[setters(generate)]
    pub step: f64,
    pub random_start: bool,
    /// Run the network in train mode during the attack (BN batch statistics), as adversarial
    /// training does; evaluation attacks use eval mode.
    #[setters(generate)]
    pub train_mode: bool,
    #[setters(generate)]
    pub targeting: Targeting,
    /// Seeds the random starts; each call draws a new one.
    #[setters(generate)]
    pub seed: u64,
    #[serde(skip)]
    calls: CallCounter,
}

impl Fgsm {
    /// Plain FGSM: no random start, step = eps, eval mode.
    pub fn new(eps: f64) -> Fgsm {
        Fgsm {
            eps,
            step: eps,
            random_start: false,
            train_mode: false,
            targeting: Targeting::Untargeted,
            seed: 0,
            calls: CallCounter::default(),
        }
    }
    /// FGSM-RS of fast adversarial training: uniform random start, step 1.25 eps.
    pub fn random_start(eps: f64) -> Fgsm {
        Fgsm { step: 1.25 * eps, random_start: true, ..Fgsm::new(eps) }
    }

    fn ascent(&self) -> Ascent {
        Ascent { norm: Norm::Linf, eps: self.eps, step: self.step, steps: 1, train_mode: self.train_mode }
    }

    fn start(&self, x: &Tensor) -> Result<Tensor> {
        if self.random_start {
            random_start(x, self.eps, Norm::Linf, self.calls.call_seed(self.seed))
        } else {
            Ok(x.shallow_clone())
        }
    }
}

impl Attack for Fgsm {
    fn perturb(&self, net: &Network, x: &Tensor, y: &Tensor) -> Result<Tensor> {
        check_batch(net, x, y, self.eps)?;
        let (labels, targeted) = attack_labels(self.targeting, net, x, y)?;
        iterate(net, x, &labels, self.start(x)?, self.ascent(), targeted)
    }
    fn name(&self) -> String {
        let rs = if self.random_start { "-RS" } else { "" };
        format!("FGSM{rs} eps={}", format_eps(self.eps))
    }
}

impl Targeted for Fgsm {
    fn perturb_targeted(&self, net: &Network, x: &Tensor, target: &Tensor) -> Result<Tensor> {
        check_batch(net, x, target, self.eps)?;
        iterate(net, x, target, self.start(x)?, self.ascent(), true)
    }
}
