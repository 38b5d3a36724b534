//! A toy step kind, to show (and test) what a new kind takes: this file and one line in the
//! registry (`steps!` in mod.rs). It sums the first `n` weights of a pre-trained network, so it
//! reads from the store like a real kind: the plan orders it after its pre-training, from what
//! it reads ([`StepDescription::inputs`]). A study declares toy steps only while a test asks for
//! them ([`planned`]), so every other test's plan is the study's own.

use super::{Executor, PretrainDesc, Step};
use crate::error::Result;
use crate::store::{Attempt, Input, StepDescription};
use crate::study::Study;
use serde::{Deserialize, Serialize};
use std::cell::Cell;

thread_local! {
    static PLANNED: Cell<bool> = const { Cell::new(false) };
}

/// Whether studies on this thread declare toy steps.
pub fn planned(on: bool) {
    PLANNED.with(|p| p.set(on));
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToyDesc {
    pub pretrain: PretrainDesc,
    pub n: i64,
}

impl ToyDesc {
    pub const KIND: &'static str = "toy";
    fn describe(&self) -> String {
        format!("sum of the first {} weights of the {} network", self.n, self.pretrain.pretraining())
    }
    fn reads(&self) -> Result<Vec<Input>> {
        Ok(vec![self.pretrain.weights_input()?])
    }
}

step_description!(ToyDesc);

impl Step for ToyDesc {
    type Output = f64;
    fn grid(study: &Study) -> Result<Vec<ToyDesc>> {
        if !PLANNED.with(Cell::get) {
            return Ok(Vec::new());
        }
        study.pretrainings.iter().map(|&p| Ok(ToyDesc { pretrain: study.pretrain_desc(p)?, n: 10 })).collect()
    }
    fn cost(&self) -> f64 {
        1e-3
    }
    fn compute(&self, ex: &mut Executor) -> Result<Attempt<f64>> {
        let net = ex.pretrained(&self.pretrain)?;
        let announce = ex.announce(self.kind(), self.label());
        ex.store.run(self, ex.wait, |_| {
            announce();
            first_weights_sum(&net, self.n)
        })
    }
}

/// The sum of the first `n` weights of the network's first prunable tensor.
fn first_weights_sum(net: &crate::model::Network, n: i64) -> Result<f64> {
    let name =
        net.prunable_names().into_iter().next().ok_or_else(|| crate::error::Error::invalid("no prunable tensor", "use a ConvNet"))?;
    let (_, w) = net
        .parameters()
        .into_iter()
        .find(|(p, _)| *p == name)
        .ok_or_else(|| crate::error::Error::invalid("no such tensor", "report this as a bug"))?;
    Ok(w.f_flatten(0, -1)?.f_narrow(0, 0, n)?.f_sum(tch::Kind::Double)?.f_double_value(&[])?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::study::{Profile, StepDesc};
    use crate::train::Pretraining;

    #[test]
    fn a_new_step_kind_runs_through_the_plan_and_the_store() {
        let root = std::env::temp_dir().join(format!("doublewin-toy-step-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let store = crate::store::Store::open(&root).unwrap();
        let rt = crate::runtime::Runtime::new(crate::runtime::DeviceChoice::Cpu, 1, 0).unwrap();
        let mut study = Study::for_profile(Profile::Tiny);
        study.pretrainings = vec![Pretraining::Standard];
        let without = study.plan().unwrap();
        planned(true);
        let plan = study.plan().unwrap();
        planned(false);
        // One toy step more, after the pre-training it reads.
        assert_eq!(plan.len(), without.len() + 1);
        let toy = plan.steps.iter().position(|s| s.kind == "toy").expect("the toy step is planned");
        let pretrain = plan.steps.iter().position(|s| s.kind == "pretrain").unwrap();
        assert_eq!(plan.steps[toy].deps, vec![pretrain]);
        assert!(StepDesc::kinds().contains(&"toy"));
        // Computed through the store (its pre-training first), then read back.
        let step = &plan.steps[toy].desc;
        let value: f64 = crate::study::compute(&rt, &store, step).unwrap();
        let StepDesc::Toy(d) = step else { panic!("a toy step") };
        let net = crate::model::Network::load(d.pretrain.weights_in(&store).unwrap(), tch::Device::Cpu).unwrap();
        assert_eq!(value, first_weights_sum(&net, 10).unwrap());
        assert!(store.dir("toy", &step.key().unwrap()).join("result.json").exists());
        assert_eq!(crate::study::compute::<f64>(&rt, &store, step).unwrap(), value);
        let _ = std::fs::remove_dir_all(&root);
    }
}
