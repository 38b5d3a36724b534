//! Peak-memory probe of a loss landscape drawn from a long run: fine-tunes the ConvNet for 1,001
//! epochs on a few digits keeping checkpoints (all of them with `--keep all`, else at most 41),
//! then computes the landscape of the last checkpoint from the folder. Measure each phase with
//! `/usr/bin/time -v`:
//!
//! ```text
//! cargo build --release --example landscape_memory
//! /usr/bin/time -v target/release/examples/landscape_memory train DIR [--keep all]
//! /usr/bin/time -v target/release/examples/landscape_memory landscape DIR
//! ```

use doublewin::landscape::{landscape, LandscapeConfig, Trajectory};
use doublewin::prelude::*;
use doublewin::transfer::{transfer_recorded, CheckpointPlan, TransferConfig};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(phase), Some(dir)) = (args.get(1), args.get(2)) else {
        return Err(Error::invalid("usage: landscape_memory train|landscape DIR [--keep all]", "give a phase and a folder"));
    };
    let dir = std::path::PathBuf::from(dir);
    let rt = Runtime::new(DeviceChoice::Cpu, 1, 0)?;
    let splits = Embedded::Digits.splits(0.1, 0)?;
    if phase == "train" {
        let source = splits.with_train_fraction(0.05, 0)?;
        let net = Network::new(NetworkSpec::for_data(Arch::convnet(), &source.train)?, rt.device, 0)?;
        let threat = ThreatModel::linf(0.1).val_steps(1);
        let cfg = TransferConfig::new(RegimeKind::Standard, &threat)?.recipe(Recipe::default().epochs(1001).batch_size(128));
        let max = if args.iter().any(|a| a == "all") { usize::MAX } else { 41 };
        transfer_recorded(&net, None, &source, &cfg, Some(&CheckpointPlan { dir, max }))?;
    } else {
        let trajectory = Trajectory::open(&dir, rt.device)?;
        let l = landscape("probe", &trajectory, None, &splits.test, &LandscapeConfig::default().resolution(5).examples(64))?;
        println!(
            "{} checkpoints (epochs {}..={}), centre loss {:.4}, final loss {:.4}",
            trajectory.len(),
            trajectory.epochs()[0],
            trajectory.epochs()[trajectory.len() - 1],
            l.origin_loss(),
            l.final_loss
        );
    }
    Ok(())
}
