//! A toy step kind, to show (and test) what a new kind takes: this file and one line in the
//! registry (`steps!` in plan.rs). It sums the first `n` pixels of a dataset's test split.

use super::step::{Executor, Step};
use crate::data::DataSource;
use crate::error::Result;
use crate::store::{Attempt, StepDescription};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToyDesc {
    pub dataset: DataSource,
    pub n: i64,
}

impl ToyDesc {
    pub const KIND: &'static str = "toy";
}

impl StepDescription for ToyDesc {
    fn kind(&self) -> &'static str {
        Self::KIND
    }
    fn label(&self) -> String {
        format!("sum of {} pixels of {}", self.n, self.dataset.name())
    }
}

impl Step for ToyDesc {
    type Output = f64;
    fn cost(&self) -> f64 {
        1e-3
    }
    fn compute(&self, ex: &mut Executor) -> Result<Attempt<f64>> {
        let test = ex.splits(self.dataset, super::desc::HoldOut::STUDY)?.test;
        let announce = ex.announce(self.kind(), self.label());
        ex.store.run(self, ex.wait, |_| {
            announce();
            Ok(test.float_images(0, 1)?.f_flatten(0, -1)?.f_narrow(0, 0, self.n)?.f_sum(tch::Kind::Double)?.f_double_value(&[])?)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Embedded;
    use crate::study::StepDesc;

    #[test]
    fn a_new_step_kind_runs_through_the_registry_and_the_store() {
        let root = std::env::temp_dir().join(format!("doublewin-toy-step-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let store = crate::store::Store::open(&root).unwrap();
        let rt = crate::runtime::Runtime::new(crate::runtime::DeviceChoice::Cpu, 1, 0).unwrap();
        let step = StepDesc::from(ToyDesc { dataset: Embedded::Digits.into(), n: 10 });
        assert!(StepDesc::kinds().contains(&"toy"));
        assert_eq!((step.kind(), step.label()), ("toy", "sum of 10 pixels of digits".to_string()));
        let value: f64 = crate::study::compute(&rt, &store, &step).unwrap();
        assert!(value > 0.0);
        // Stored under its key: a second call reads it back.
        assert!(store.dir("toy", &step.key().unwrap()).join("result.json").exists());
        assert_eq!(crate::study::compute::<f64>(&rt, &store, &step).unwrap(), value);
        let _ = std::fs::remove_dir_all(&root);
    }
}
