//! The study engine: keys derived from typed descriptions (a change upstream recomputes exactly
//! what is below it), the store (verified steps, locks, old formats refused), validation before
//! anything runs, reports of any grid.

mod common;

use common::*;
use doublewin::prelude::*;
use doublewin::store::{Attempt, Check, Status, StepDescription};
use doublewin::study::steps::PretrainDesc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Runs `study`; returns the kinds of the steps it computed (those the store lacked before).
fn computed(store: &Store, study: &Study) -> Vec<&'static str> {
    let plan = study.plan().unwrap();
    let missing: Vec<&'static str> =
        plan.steps.iter().zip(plan.status(store)).filter(|(_, s)| *s != Status::Done).map(|(p, _)| p.kind).collect();
    let results = session(study, store).results().unwrap();
    assert_eq!(results.computed_steps, missing.len());
    assert!(plan.status(store).iter().all(|s| *s == Status::Done));
    missing
}

#[test]
fn an_upstream_change_recomputes_exactly_the_steps_below_it() {
    let store_dir = temp_dir("study-upstream");
    let store = Store::open(&*store_dir).unwrap();
    let study = mini_study();
    let plan = study.plan().unwrap();
    assert_eq!(plan.len(), 1 + 1 + 4 + 2);
    assert_eq!(computed(&store, &study).len(), 8);
    assert!(computed(&store, &study).is_empty(), "a finished study computes nothing");

    // Only IMP's re-training changes: IMP, the ticket's transfers, the trajectory and the
    // landscape run again; the pre-training and the dense transfers come from the store.
    let mut retrained = study.clone();
    retrained.imp.retrain = retrained.imp.retrain.clone().epochs(2);
    let mut kinds = computed(&store, &retrained);
    kinds.sort();
    assert_eq!(kinds, vec!["imp", "landscape", "trajectory", "transfer", "transfer"]);
    // The round-2 masks differ: the old transfers could not have been reused.
    let old = session(&study, &store).stored_mask(Pretraining::Standard, ImpFamily::Standard, 2).unwrap();
    let new = session(&retrained, &store).stored_mask(Pretraining::Standard, ImpFamily::Standard, 2).unwrap();
    assert_ne!(old, new);

    // The IMP data fraction and eps are upstream of the masks too.
    let mut fewer = study.clone();
    fewer.imp_fraction = 0.5;
    assert_eq!(fewer.plan().unwrap().steps.iter().filter(|s| plan.steps.iter().any(|p| p.key == s.key)).count(), 3);
    let mut wider = study.clone();
    wider.threat.eps = 0.2;
    let shared: Vec<&str> =
        wider.plan().unwrap().steps.iter().filter(|s| plan.steps.iter().any(|p| p.key == s.key)).map(|s| s.kind).collect();
    // Every transfer measures RA at eps, so only STD pre-training and its m^ST IMP ignore it.
    assert_eq!(shared, vec!["pretrain", "imp"]);

    // A new fine-tuning seed runs only the transfers of that seed.
    let mut seeds = study.clone();
    seeds.seeds = vec![0, 1];
    assert_eq!(computed(&store, &seeds), vec!["transfer"; 4]);
}

#[test]
fn a_damaged_step_is_computed_again_and_descriptions_are_on_disk() {
    let store_dir = temp_dir("study-damaged");
    let store = Store::open(&*store_dir).unwrap();
    let mut study = mini_study();
    study.pretrainings = vec![Pretraining::Standard];
    let (_, history) = session(&study, &store).pretrained(Pretraining::Standard).unwrap();
    let desc = study.pretrain_desc(Pretraining::Standard).unwrap();
    let key = desc.key().unwrap();
    let dir = store.dir(PretrainDesc::KIND, &key);
    // describe.json is the description itself.
    let on_disk: serde_json::Value = doublewin::fsio::read_json(&dir.join("describe.json")).unwrap();
    assert_eq!(on_disk, serde_json::to_value(&desc).unwrap());
    assert_eq!(store.status(PretrainDesc::KIND, &key, Check::Hashes), Status::Done);

    // Deleting the weights makes the step broken, not done; it is computed again, identically.
    let weights = dir.join(PretrainDesc::WEIGHTS);
    let hash = doublewin::fsio::sha256_file(&weights).unwrap();
    std::fs::remove_file(&weights).unwrap();
    assert!(matches!(store.status(PretrainDesc::KIND, &key, Check::Sizes), Status::Broken(w) if w.contains("net.safetensors")));
    let (_, again) = session(&study, &store).pretrained(Pretraining::Standard).unwrap();
    let losses = |h: &History| h.epochs.iter().map(|e| (e.train_loss, e.val.map(|v| v.loss))).collect::<Vec<_>>();
    assert_eq!(losses(&again), losses(&history));
    assert_eq!(doublewin::fsio::sha256_file(&weights).unwrap(), hash, "same seed, same machine, same weights");

    // A file changed in place (same size) fails its hash.
    let mut bytes = std::fs::read(&weights).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&weights, bytes).unwrap();
    assert_eq!(store.status(PretrainDesc::KIND, &key, Check::Sizes), Status::Done);
    assert!(matches!(store.status(PretrainDesc::KIND, &key, Check::Hashes), Status::Broken(w) if w.contains("SHA-256")));
}

/// A step description for store tests.
#[derive(serde::Serialize)]
struct Demo(&'static str);

impl StepDescription for Demo {
    fn kind(&self) -> &'static str {
        "demo"
    }
    fn label(&self) -> String {
        format!("demo {}", self.0)
    }
}

#[test]
fn store_hits_are_fast_identical_and_computed_once_under_concurrency() {
    let store_dir = temp_dir("store");
    let store = Store::open(&*store_dir).unwrap();
    let runs = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (store, runs) = (store.clone(), runs.clone());
            std::thread::spawn(move || {
                store
                    .get_or_run(&Demo("a"), |dir| {
                        runs.fetch_add(1, Ordering::SeqCst);
                        std::thread::sleep(std::time::Duration::from_millis(200));
                        std::fs::write(dir.join("artifact.txt"), "x").unwrap();
                        Ok(vec![1.5f64, 2.5])
                    })
                    .unwrap()
                    .0
            })
        })
        .collect();
    let results: Vec<Vec<f64>> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(runs.load(Ordering::SeqCst), 1, "the step ran once");
    assert!(results.iter().all(|r| r == &vec![1.5, 2.5]));
    let t = std::time::Instant::now();
    let (hit, computed): (Vec<f64>, bool) =
        store.get_or_run(&Demo("a"), |_| -> doublewin::error::Result<Vec<f64>> { panic!("must not run") }).unwrap();
    assert!(t.elapsed().as_secs_f64() < 0.1 && hit == vec![1.5, 2.5] && !computed);
    let entries = store.entries().unwrap();
    assert_eq!((entries.len(), entries[0].label.as_str(), entries[0].bytes), (1, "demo a", 1));

    // A step another process holds is reported busy, not waited for, by try_run.
    let key = Demo("b").key().unwrap();
    std::fs::create_dir_all(store.dir("demo", &key)).unwrap();
    let held = std::fs::File::create(store.root().join("demo").join(format!("{key}.lock"))).unwrap();
    held.lock().unwrap();
    let attempt: Attempt<u32> = store.try_run(&Demo("b"), |_| Ok(1)).unwrap();
    assert!(matches!(attempt, Attempt::Busy));
    drop(held);
    assert!(matches!(store.try_run(&Demo("b"), |_| Ok(1u32)).unwrap(), Attempt::Computed(1)));
    assert_eq!(store.clean(Some("demo")).unwrap(), 2);
    assert!(store.entries().unwrap().is_empty());
}

#[test]
fn a_store_of_the_old_format_is_refused_with_the_fix_and_can_be_cleared() {
    let root = temp_dir("store-old");
    std::fs::create_dir_all(root.join("transfer/0123456789abcdef")).unwrap();
    std::fs::write(root.join("transfer/0123456789abcdef/result.json"), "{}").unwrap();
    std::fs::write(root.join("transfer/0123456789abcdef.lock"), "").unwrap();
    let e = Store::open(&*root).unwrap_err().to_string();
    assert!(e.contains("older doublewin") && e.contains("study clean --old-format"), "{e}");
    // Something that is not a store is never cleared.
    let other = temp_dir("store-not-a-store");
    std::fs::create_dir_all(other.join("photos")).unwrap();
    std::fs::write(other.join("photos/cat.jpg"), "x").unwrap();
    assert!(Store::remove_old_format(&other).is_err());
    assert!(other.join("photos/cat.jpg").exists());
    assert_eq!(Store::remove_old_format(&root).unwrap(), 1);
    Store::open(&*root).unwrap();
}

#[test]
fn a_study_that_contradicts_itself_cannot_be_written() {
    // eps lives in one place: the old per-transfer eps is an unknown field now.
    let mut json = serde_json::to_value(mini_study()).unwrap();
    json["transfer"]["eps"] = serde_json::json!(0.3);
    let e = Study::from_json(&json.to_string()).unwrap_err().to_string();
    assert!(e.contains("unknown field `eps`"), "{e}");
    // A recipe has no regime: the fine-tunings' regimes come from the grid and the threat model.
    let mut json = serde_json::to_value(mini_study()).unwrap();
    json["transfer"]["recipe"]["regime"] = serde_json::json!("standard");
    let e = Study::from_json(&json.to_string()).unwrap_err().to_string();
    assert!(e.contains("transfer.recipe") && e.contains("unknown field `regime`"), "{e}");
    // Bad values are refused before anything runs.
    let mut s = mini_study();
    s.threat.eps = -0.1;
    let store_dir = temp_dir("study-refused");
    let store = Store::open(&*store_dir).unwrap();
    assert!(session(&s, &store).results().unwrap_err().to_string().contains("eps = -0.1"));
    assert!(store.entries().unwrap().is_empty());
}

#[test]
fn the_papers_attack_settings_round_trip() {
    let paper = Study::paper();
    let back = Study::from_json(&serde_json::to_string(&paper).unwrap()).unwrap();
    assert_eq!(back, paper);
    let d = paper
        .transfer_desc(paper.subnetwork(Pretraining::Adversarial, None, 0).unwrap(), paper.downstream[0], FineTuning::Adversarial, 1.0, 0)
        .unwrap();
    let pgd = |a: &AttackSpec| match a {
        AttackSpec::Pgd(p) => Some((p.steps, p.step, p.eps, p.train_mode)),
        _ => None,
    };
    assert_eq!(d.transfer.test_attacks.iter().filter_map(pgd).collect::<Vec<_>>(), vec![(20, 2.0 / 255.0, 8.0 / 255.0, false)]);
    match &d.transfer.recipe.regime {
        Regime::Adversarial(p) => assert_eq!((p.steps, p.step, p.eps, p.train_mode), (10, 2.0 / 255.0, 8.0 / 255.0, true)),
        other => panic!("{other:?}"),
    }
}

/// A transfer measured by an earlier judging revision (its description has no `judging`) has
/// another key: the store never hands its numbers back for the current description.
#[test]
fn a_transfer_of_an_earlier_judging_revision_never_matches() {
    use doublewin::study::steps::TransferDesc;
    let small = Study::for_profile(Profile::Small);
    let now = small
        .transfer_desc(small.subnetwork(Pretraining::Adversarial, None, 0).unwrap(), small.downstream[0], FineTuning::Adversarial, 0.01, 0)
        .unwrap();
    assert_eq!(now.judging, doublewin::transfer::JUDGING);
    let mut stored = serde_json::to_value(&now).unwrap();
    stored.as_object_mut().unwrap().remove("judging").expect("the description records its judging revision");
    let before: TransferDesc = serde_json::from_value(stored).unwrap();
    assert_eq!(before.judging, 0);
    assert_ne!(before.key().unwrap(), now.key().unwrap());
    assert_eq!(TransferDesc { judging: now.judging, ..before }.key().unwrap(), now.key().unwrap());
}

#[test]
fn every_profile_is_a_valid_study_that_round_trips_through_json() {
    for p in Profile::ALL {
        let study = Study::for_profile(p);
        let back = Study::from_json(&serde_json::to_string(&study).unwrap()).unwrap();
        assert_eq!(back, study, "{p}");
        study.plan().unwrap();
    }
    // Fig. 6's ticket: the lower m^ST round of small (59.04% sparse), at its own fractions. Small
    // asks its question where the gate pilot found pre-training to help: one scale (8x8), 1% of
    // MNIST, with the scratch control and a second seed set.
    let small = Study::for_profile(Profile::Small);
    let plan = small.landscapes.clone().unwrap();
    assert_eq!((plan.family, plan.round), (ImpFamily::Standard, 4));
    assert_eq!(plan.fractions, small.fractions);
    assert!(small.scratch && small.stability_seeds.len() == small.seeds.len());
    assert_eq!((small.source.name(), small.downstream[0].name()), ("fashion-mnist-8x8", "mnist-8x8"));
    let paper = Study::paper();
    assert_eq!(paper.source.name(), "cifar100");
    assert_eq!(paper.downstream.iter().map(|d| d.name()).collect::<Vec<_>>(), vec!["cifar10", "svhn"]);
    assert!((paper.threat.eps - 8.0 / 255.0).abs() < 1e-12);
}

/// The top-level fields in which two studies differ.
fn changed_fields(a: &Study, b: &Study) -> Vec<String> {
    let (a, b) = (serde_json::to_value(a).unwrap(), serde_json::to_value(b).unwrap());
    let mut out: Vec<String> =
        a.as_object().unwrap().iter().filter(|(k, v)| b.get(k.as_str()) != Some(v)).map(|(k, _)| k.clone()).collect();
    out.sort();
    out
}

#[test]
fn each_ladder_rung_changes_exactly_what_it_names() {
    use doublewin::study::{Ladder, Rung};
    let small = Study::for_profile(Profile::Small);
    let ladder = Ladder::toward_paper(&small, 6).unwrap();
    // The cell: STD and AT sources, m^ST tickets at the study's rounds with both controls at each
    // of them, the scratch gate, 6 seeds, nothing else.
    let cell = &ladder.cell;
    assert_eq!(cell.pretrainings, vec![Pretraining::Standard, Pretraining::Adversarial]);
    assert_eq!(cell.families, vec![ImpFamily::Standard]);
    assert_eq!(cell.seeds, (0..6).collect::<Vec<u64>>());
    assert!(cell.stability_seeds.is_empty() && cell.landscapes.is_none() && cell.scratch);
    assert_eq!(cell.controls.as_ref().unwrap().rounds, small.rounds);
    let names: Vec<String> = ladder.rungs.iter().map(Rung::name).collect();
    assert_eq!(names, ["base", "imp", "wider-2", "data-10", "fine-tune-2", "wider-4"]);
    let expect: [&[&str]; 6] = [&[], &["families", "imp", "imp_fraction"], &["arch"], &["controls", "fractions"], &["transfer"], &["arch"]];
    for (rung, fields) in ladder.rungs.iter().zip(expect) {
        let s = ladder.study(rung).unwrap();
        assert_eq!(changed_fields(cell, &s), fields, "rung {}", rung.name());
    }
    let wide = ladder.study(&Rung::Wider { factor: 4 }).unwrap();
    assert_eq!(wide.arch, Arch::ConvNet { widths: vec![128, 256, 512] });
    let imp = ladder.study(&Rung::ImpRetrains { epochs: 3 }).unwrap();
    assert_eq!((imp.imp_fraction, imp.imp.retrain.epochs), (1.0, 3));
    assert_eq!(imp.families, vec![ImpFamily::Standard, ImpFamily::Adversarial]);
    // A combination applies each of its rungs.
    let both = ladder.study(&Rung::Combined(vec![Rung::Wider { factor: 2 }, Rung::LongerFineTuning { factor: 2 }])).unwrap();
    assert_eq!(changed_fields(cell, &both), ["arch", "transfer"]);
    assert_eq!(both.transfer.recipe.epochs, 2 * cell.transfer.recipe.epochs);
    // Unknown rung names and zero seeds are refused with the fix.
    let e = Ladder::toward_paper(&small, 6).unwrap().only(&["wider-3".into()]).unwrap_err().to_string();
    assert!(e.contains("wider-3") && e.contains("wider-2"), "{e}");
    assert!(Ladder::toward_paper(&small, 0).is_err());
}

#[test]
fn a_ladder_runs_through_the_store_and_the_report_reads_it_back() {
    use doublewin::study::{Ladder, LadderReport, Rung};
    let store_dir = temp_dir("ladder");
    let store = Store::open(&*store_dir).unwrap();
    let base = mini_study();
    let ladder = Ladder::toward_paper(&base, 1).unwrap().only(&["base".into(), "fine-tune-2".into()]).unwrap();
    let report = ladder.run(&store, |s| session(s, &store).results()).unwrap();
    assert_eq!(report.rungs.len(), 2);
    for r in &report.rungs {
        // One m^ST ticket (round 2) of the STD source, its three numbers measured.
        assert_eq!(r.rows.len(), 1, "{}", r.rung.name());
        assert!(r.rows[0].gaps.iter().all(Option::is_some));
        assert!(r.cost_seconds.is_some_and(|c| c > 0.0), "every step records its compute time");
        assert_eq!(r.gates.len(), 1);
    }
    // The second rung shares the pre-training and IMP with the first; its cost counts them too.
    let steps = |r: &Rung| ladder.study(r).unwrap().plan().unwrap().len();
    assert_eq!(report.rungs[1].steps, steps(&Rung::LongerFineTuning { factor: 2 }));
    assert!(report.table().to_markdown().contains("fine-tune-2"));
    // A run of some rungs says which are missing, and never runs the combination.
    assert!(!report.complete && report.conclusion().contains("Not run yet: imp, wider-2"), "{}", report.conclusion());
    // The combination applies the rungs that moved, of the wider rungs only the widest (x2
    // then x4 would compound to x8, a width no rung measured).
    let mut moved = report.clone();
    for factor in [2, 4] {
        let mut r = report.rungs[0].clone();
        r.rung = Rung::Wider { factor };
        r.rows[0].outcome = match r.rows[0].outcome {
            doublewin::verdict::Outcome::DoubleWin => doublewin::verdict::Outcome::Unresolved,
            _ => doublewin::verdict::Outcome::DoubleWin,
        };
        moved.rungs.push(r);
    }
    let combination = moved.combination();
    assert!(combination.contains(&Rung::Wider { factor: 4 }) && !combination.contains(&Rung::Wider { factor: 2 }), "{combination:?}");
    assert!(moved.moved().contains(&Rung::Wider { factor: 2 }), "the table still names every rung that moved");
    // A rung where pre-training measurably helps no source tests nothing: the conclusion names it
    // apart instead of counting it among the rungs the "no" holds under.
    use doublewin::study::GateOutcome;
    let mut untested = report.clone();
    for (r, gate) in untested.rungs.iter_mut().zip([GateOutcome::Helps, GateOutcome::Unresolved]) {
        r.gates.iter_mut().for_each(|g| g.1 = gate);
        r.rows.iter_mut().for_each(|row| row.outcome = doublewin::verdict::Outcome::NotDoubleWin);
    }
    let said = untested.conclusion();
    assert!(said.contains("holds under base:") && said.contains("fine-tune-2 tests nothing"), "{said}");
    untested.rungs[0].gates.iter_mut().for_each(|g| g.1 = GateOutcome::DoesNotHelp);
    let said = untested.conclusion();
    assert!(said.starts_with("No rung tests the hypothesis. base, fine-tune-2 test nothing"), "{said}");
    report.save(&store).unwrap();
    assert_eq!(LadderReport::load(&store, &base).unwrap(), Some(report.clone()));
    // The ladder takes its own seeds: the base with other seed sets keeps it. Another base study
    // (other rounds) has none; a damaged ladder file is left out, not trusted.
    let reseeded = Study { seeds: vec![3], stability_seeds: vec![4], ..base.clone() };
    assert_eq!(LadderReport::load(&store, &reseeded).unwrap(), Some(report));
    let other = Study { rounds: vec![1], ..base.clone() };
    assert_eq!(LadderReport::load(&store, &other).unwrap(), None);
    let file = std::fs::read_dir(store_dir.join("ladders")).unwrap().next().unwrap().unwrap().path();
    std::fs::write(&file, "{ not json").unwrap();
    assert_eq!(LadderReport::load(&store, &base).unwrap(), None);
}

#[test]
fn a_steps_compute_time_is_recorded_and_covered_by_its_checksum() {
    let store_dir = temp_dir("study-seconds");
    let store = Store::open(&*store_dir).unwrap();
    let study = mini_study();
    session(&study, &store).results().unwrap();
    let plan = study.plan().unwrap();
    let first = &plan.steps[0];
    let seconds = store.seconds(first.kind, &first.key).expect("a computed step records its seconds");
    assert!(seconds > 0.0);
    // Its CPU seconds too (this process's: other tests run beside it, so no upper bound here).
    let core = store.core_seconds(first.kind, &first.key).expect("a computed step records its CPU seconds");
    assert!(core > 0.0, "{core} s CPU, {seconds} s wall");
    // The estimate times a step by the lesser of the two (wall time inflated by other work on the
    // machine says nothing about the step).
    assert_eq!(store.worker_seconds(first.kind, &first.key), Some(seconds.min(core)));
    // The plan's estimate comes from those times: a finished study has nothing left; two more
    // seeds cost about what the first seed's transfers took, timed from them.
    assert_eq!(plan.estimate(&store, 1).missing, 0);
    let mut more = study.clone();
    more.seeds = vec![0, 1, 2];
    let e = more.plan().unwrap().estimate(&store, 1);
    assert_eq!(e.missing, 8, "two seeds x two subnetworks x two fine-tunings");
    assert!(e.calibrated.contains(&"transfer".to_string()), "{e}");
    let first_seed: f64 = plan.steps.iter().filter(|p| p.kind == "transfer").map(|p| store.worker_seconds(p.kind, &p.key).unwrap()).sum();
    assert!((e.core_seconds / (2.0 * first_seed) - 1.0).abs() < 0.25, "{e} vs {first_seed} s for one seed");
    // A study none of whose steps are done is timed from the store's other steps of each kind.
    let mut other = study.clone();
    other.source_seed = 7;
    let e = other.plan().unwrap().estimate(&store, 2);
    assert_eq!(e.missing, plan.len());
    assert!(e.calibrated.contains(&"pretrain".to_string()) && e.to_string().contains("2 worker"), "{e}");
    // An edited time is damage like any edited value: the step is computed again.
    let result = store_dir.join(first.kind).join(&first.key).join("result.json");
    let text = std::fs::read_to_string(&result).unwrap();
    let edited = text.replace(&format!("\"seconds\": {}", serde_json::to_string(&seconds).unwrap()), "\"seconds\": 0.5");
    assert_ne!(text, edited, "the record names its seconds");
    std::fs::write(&result, edited).unwrap();
    assert!(matches!(store.status(first.kind, &first.key, Check::Sizes), Status::Broken(_)));
    std::fs::write(&result, &text).unwrap();
    let edited = text.replace(&format!("\"cpu_seconds\": {}", serde_json::to_string(&core).unwrap()), "\"cpu_seconds\": 0.5");
    assert_ne!(text, edited, "the record names its CPU seconds");
    std::fs::write(&result, edited).unwrap();
    assert!(matches!(store.status(first.kind, &first.key, Check::Sizes), Status::Broken(_)));
}
