//! The `doublewin` command line: the quickstart, training and evaluation of networks, data
//! sets. Every subcommand takes `--json` for scripts; errors exit non-zero with a message.

use clap::{Parser, Subcommand};
use doublewin::attack::robust_evaluate;
use doublewin::data::download::{self, Remote};
use doublewin::data::{embedded, DataSource, Embedded};
use doublewin::prelude::*;
use doublewin::prune::{imp, ImpConfig, Mask};
use doublewin::store::Store;
use doublewin::study::Study;
use doublewin::train::AugmentChoice;
use doublewin::transfer::{transfer, FineTuning, TransferConfig};
use doublewin::walkthrough;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "doublewin", version, about = "Find and validate double-win lottery tickets")]
struct Cli {
    /// auto, cpu, cuda or cuda:N (default: $DOUBLEWIN_DEVICE or auto)
    #[arg(long, global = true)]
    device: Option<String>,
    /// CPU threads for libtorch (0 = its default)
    #[arg(long, global = true, default_value_t = 0)]
    threads: usize,
    /// Seed for every random number generator
    #[arg(long, global = true, default_value_t = 0)]
    seed: u64,
    /// Print machine-readable JSON instead of text
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train the small ConvNet on the embedded Fashion-MNIST and write a report and figures
    Quickstart {
        /// tiny, small or full (default: $DOUBLEWIN_PROFILE or small)
        #[arg(long)]
        profile: Option<String>,
        #[arg(long, default_value = "out/quickstart")]
        out: PathBuf,
    },
    /// Train a network on a dataset (embedded, or cifar10 / cifar100 / svhn downloaded on first use) and save it
    Train {
        #[arg(long, default_value = "fashion-mnist")]
        dataset: String,
        #[arg(long, default_value = "convnet")]
        arch: String,
        #[arg(long, default_value_t = 10)]
        epochs: usize,
        #[arg(long, default_value_t = 0.05)]
        lr: f64,
        #[arg(long, default_value_t = 128)]
        batch_size: usize,
        /// Fraction of the training split (stratified, seeded)
        #[arg(long, default_value_t = 1.0)]
        fraction: f64,
        /// Disable augmentation
        #[arg(long)]
        no_augment: bool,
        /// Where to save the network (.safetensors)
        #[arg(long)]
        out: PathBuf,
        /// Folder for per-epoch state; rerunning the same command resumes from it
        #[arg(long)]
        resume_dir: Option<PathBuf>,
    },
    /// Pre-train source models (standard, fast adversarial, adversarial) on Fashion-MNIST with
    /// the profile's recipe, through the store (shared with `study run` and the notebooks)
    Pretrain {
        /// standard | fast | adversarial | all
        #[arg(long, default_value = "all")]
        regime: String,
        /// tiny, small or full (default: $DOUBLEWIN_PROFILE or small)
        #[arg(long)]
        profile: Option<String>,
        #[arg(long)]
        store: Option<PathBuf>,
    },
    /// Iterative magnitude pruning of a saved network on a source dataset; each round's
    /// ticket is written to --out as soon as it is done, and a rerun resumes after the last one
    Imp {
        /// The pre-trained network (.safetensors with its .json sidecar)
        #[arg(long)]
        net: PathBuf,
        #[arg(long, default_value = "fashion-mnist")]
        dataset: String,
        #[arg(long, default_value_t = 6)]
        rounds: usize,
        /// Fraction of the remaining weights pruned per round
        #[arg(long, default_value_t = 0.2)]
        rate: f64,
        /// Re-training between rounds: standard (mask family m^ST) or adversarial (m^AT)
        #[arg(long, default_value = "standard")]
        regime: String,
        /// Epochs of re-training per round
        #[arg(long, default_value_t = 3)]
        epochs: usize,
        /// Fraction of the source training split used for re-training
        #[arg(long, default_value_t = 1.0)]
        fraction: f64,
        /// L-inf radius for adversarial re-training (default per data: 0.1 grey-scale, 8/255 colour)
        #[arg(long)]
        eps: Option<f64>,
        #[arg(long)]
        out: PathBuf,
    },
    /// Transfer a saved network (dense, or with a ticket's mask) to a downstream dataset
    Transfer {
        #[arg(long)]
        net: PathBuf,
        /// A ticket (mask .safetensors written by `imp`); without it the dense network transfers
        #[arg(long)]
        mask: Option<PathBuf>,
        #[arg(long, default_value = "mnist")]
        dataset: String,
        /// standard | adversarial
        #[arg(long, default_value = "standard")]
        fine_tuning: String,
        #[arg(long, default_value_t = 1.0)]
        fraction: f64,
        #[arg(long, default_value_t = 5)]
        epochs: usize,
        #[arg(long, default_value_t = 0.02)]
        lr: f64,
        #[arg(long)]
        eps: Option<f64>,
    },
    /// Run, list or clean the experiment store's study (the double-win grid)
    Study {
        #[command(subcommand)]
        action: StudyAction,
    },
    /// Evaluate a saved network on a dataset's test split: SA, and RA with --eps
    Evaluate {
        #[arg(long)]
        net: PathBuf,
        #[arg(long, default_value = "fashion-mnist")]
        dataset: String,
        /// Also attack with FGSM then PGD-20 at this L-inf radius
        #[arg(long)]
        eps: Option<f64>,
        /// Evaluate the network under this mask (pruned weights set to zero)
        #[arg(long)]
        mask: Option<PathBuf>,
    },
    /// List, verify or download datasets
    Data {
        #[command(subcommand)]
        action: DataAction,
    },
    /// Show the runtime: device, CUDA, threads, versions, data folder
    Info,
    /// Benchmark the hot paths side by side with a PyTorch peer (crates/bench/peer.py) on this machine
    Bench {
        /// Short mode: tiny batches, one run each; checks that everything works, times mean nothing
        #[arg(long)]
        quick: bool,
        /// Timed runs per workload and side (default 5, quick 1)
        #[arg(long)]
        repeats: Option<usize>,
        /// Untimed warm-up runs before them (default 1, quick 0)
        #[arg(long)]
        warmup: Option<usize>,
        /// Only workloads whose id contains this text (repeatable), e.g. pgd, convnet, prune-resnet50
        #[arg(long)]
        only: Vec<String>,
        /// Do not run the PyTorch peer (no ratios)
        #[arg(long)]
        no_peer: bool,
        /// Passes over all workloads, timed runs pooled (default 1)
        #[arg(long, default_value_t = 1)]
        rounds: usize,
        /// Also time a notebook's first result in a fresh kernel session, cold and warm (minutes)
        #[arg(long)]
        first_result: bool,
        /// Write the report (Markdown) here, atomically
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// Which study, and which store it lives in.
#[derive(clap::Args)]
struct StudyChoice {
    /// tiny, small or full (default: $DOUBLEWIN_PROFILE or small)
    #[arg(long)]
    profile: Option<String>,
    /// A study as JSON (e.g. edited from `study show`), instead of a profile's
    #[arg(long)]
    config: Option<PathBuf>,
    /// Store folder (default: $DOUBLEWIN_STORE or ~/.cache/doublewin/store)
    #[arg(long)]
    store: Option<PathBuf>,
}

impl StudyChoice {
    /// The study of `--config FILE`, else of the profile, and its store.
    fn open(self) -> Result<(Study, Store)> {
        let study = match self.config {
            Some(path) => doublewin::fsio::read_json(&path)?,
            None => Study::for_profile(match self.profile {
                Some(p) => p.parse()?,
                None => Profile::from_env()?,
            }),
        };
        Ok((study, Store::open(self.store.unwrap_or_else(Store::default_root))?))
    }
}

#[derive(Subcommand)]
enum StudyAction {
    /// Run what is missing of the study and print the verdict table
    Run {
        #[command(flatten)]
        which: StudyChoice,
    },
    /// Run (or load) the study and write its report into a folder: report.html (self-contained,
    /// figures inline), report.md, results.json and figures/*.svg|png
    Report {
        #[command(flatten)]
        which: StudyChoice,
        #[arg(long, default_value = "out/report")]
        out: PathBuf,
    },
    /// Print a profile's study as JSON (a starting point for --config)
    Show {
        #[arg(long)]
        profile: Option<String>,
    },
    /// List the finished steps in the store
    List {
        #[arg(long)]
        store: Option<PathBuf>,
    },
    /// Delete finished steps (of one kind: pretrain, imp, transfer; or all)
    Clean {
        #[arg(long)]
        kind: Option<String>,
        #[arg(long)]
        store: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum DataAction {
    /// Verify and describe the embedded datasets
    List,
    /// Download a dataset from its canonical host (or --base-url) into --dir
    Download {
        /// mnist, fashion-mnist, cifar10, cifar100 or svhn
        name: String,
        #[arg(long)]
        dir: Option<PathBuf>,
        #[arg(long)]
        base_url: Option<String>,
    },
}

fn print(json: bool, value: serde_json::Value, text: String) {
    if json {
        println!("{}", serde_json::to_string_pretty(&value).unwrap_or_default());
    } else {
        println!("{text}");
    }
}

fn run(cli: Cli) -> Result<()> {
    let device = match &cli.device {
        Some(d) => d.parse()?,
        None => std::env::var("DOUBLEWIN_DEVICE").unwrap_or_default().parse()?,
    };
    let rt = Runtime::new(device, cli.threads, cli.seed)?;
    match cli.command {
        Command::Quickstart { profile, out } => {
            let profile = match profile {
                Some(p) => p.parse()?,
                None => Profile::from_env()?,
            };
            let report = doublewin::walkthrough::quickstart(&rt, profile, &out)?;
            print(cli.json, serde_json::to_value(&report).unwrap_or_default(), format!("{report}\nwrote {}", out.display()));
        }
        Command::Train { dataset, arch, epochs, lr, batch_size, fraction, no_augment, out, resume_dir } => {
            let data = DataSource::from_name(&dataset)?.splits(0.1, rt.seed)?.with_train_fraction(fraction, rt.seed)?;
            let mut net = Network::new(NetworkSpec::for_data(Arch::from_name(&arch)?, &data.train)?, rt.device, rt.seed)?;
            let mut cfg = TrainConfig::default().epochs(epochs).lr(lr).batch_size(batch_size).seed(rt.seed);
            if no_augment {
                cfg = cfg.augment(AugmentChoice::None);
            }
            let history = train_with(&mut net, &data, &cfg, &mut Callbacks::progress(&dataset), resume_dir.as_deref())?;
            let test = evaluate(&net, &data.test, cfg.eval_batch_size)?;
            net.save(&out)?;
            print(
                cli.json,
                serde_json::json!({"history": history, "test": test, "net": out, "config_hash": cfg.hash()}),
                format!("{history}\ntest {test}\nsaved {}", out.display()),
            );
        }
        Command::Pretrain { regime, profile, store } => {
            let profile = match profile {
                Some(p) => p.parse()?,
                None => Profile::from_env()?,
            };
            let store = Store::open(store.unwrap_or_else(Store::default_root))?;
            let report = if regime == "all" {
                walkthrough::pretrain_sources(&rt, profile, &store)?
            } else {
                let model = walkthrough::pretrain(&rt, regime.parse()?, profile, &store)?;
                walkthrough::SourceModels { dataset: "fashion-mnist".into(), profile, models: vec![model] }
            };
            let paths =
                report.models.iter().map(|m| format!("{}: {}", m.pretraining.short(), m.weights.display())).collect::<Vec<_>>().join("\n");
            print(cli.json, serde_json::to_value(&report).unwrap_or_default(), format!("{report}\n{paths}"));
        }
        Command::Imp { net, dataset, rounds, rate, regime, epochs, fraction, eps, out } => {
            let pretrained = Network::load(&net, rt.device)?;
            let source = DataSource::from_name(&dataset)?.splits(0.1, rt.seed)?.with_train_fraction(fraction, rt.seed)?;
            let eps = eps.unwrap_or_else(|| doublewin::attack::default_eps(source.image_shape()));
            let retrain_regime = match regime.as_str() {
                "standard" | "st" => Regime::Standard,
                "adversarial" | "at" => Regime::adversarial(eps),
                other => return Err(Error::invalid(format!("unknown re-training regime '{other}'"), "use standard or adversarial")),
            };
            let cfg = ImpConfig::default()
                .rounds(rounds)
                .rate(rate)
                .retrain(TrainConfig::default().epochs(epochs).seed(rt.seed).regime(retrain_regime));
            let tickets = imp(&pretrained, &source, &cfg, &out)?;
            let rows: Vec<serde_json::Value> =
                tickets.0.iter().map(|t| serde_json::json!({"round": t.round, "sparsity": t.sparsity(), "mask": t.path})).collect();
            print(cli.json, serde_json::Value::Array(rows), tickets.table().to_string());
        }
        Command::Transfer { net, mask, dataset, fine_tuning, fraction, epochs, lr, eps } => {
            let pretrained = Network::load(&net, rt.device)?;
            let mask = mask.map(Mask::load).transpose()?;
            let splits = DataSource::from_name(&dataset)?.splits(0.1, rt.seed)?;
            let fine_tuning = match fine_tuning.as_str() {
                "standard" => FineTuning::Standard,
                "adversarial" => FineTuning::Adversarial,
                other => return Err(Error::invalid(format!("unknown fine-tuning '{other}'"), "use standard or adversarial")),
            };
            let cfg = TransferConfig {
                fine_tuning,
                fraction,
                eps: eps.unwrap_or_else(|| doublewin::attack::default_eps(splits.image_shape())),
                recipe: TrainConfig::default().epochs(epochs).lr(lr).batch_size(64),
                seed: rt.seed,
                ..TransferConfig::default()
            };
            let report = transfer(&pretrained, mask.as_ref(), &splits, &cfg)?;
            print(cli.json, serde_json::to_value(&report).unwrap_or_default(), report.to_string());
        }
        Command::Study { action } => match action {
            StudyAction::Run { which } => {
                let (study, store) = which.open()?;
                let results = study.run(&rt, &store)?;
                print(cli.json, serde_json::to_value(&results).unwrap_or_default(), format!("{}\n{results}", results.transfer_table()));
            }
            StudyAction::Report { which, out } => {
                let (study, store) = which.open()?;
                let report = study.report(&rt, &store)?;
                let html = report.save(&out)?;
                print(
                    cli.json,
                    serde_json::to_value(&report.results).unwrap_or_default(),
                    format!("{}\n{report}wrote {} and {}", report.results.verdict_table(), html.display(), out.join("report.md").display()),
                );
            }
            StudyAction::Show { profile } => {
                let profile = match profile {
                    Some(p) => p.parse()?,
                    None => Profile::from_env()?,
                };
                println!("{}", serde_json::to_string_pretty(&Study::for_profile(profile)).unwrap_or_default());
            }
            StudyAction::List { store } => {
                let store = Store::open(store.unwrap_or_else(Store::default_root))?;
                let entries = store.entries()?;
                let mut t = Table::new(format!("Store {}", store.root().display()), &["kind", "key", "what", "bytes"]);
                for e in &entries {
                    t.push(vec![e.kind.clone(), e.key.clone(), e.describe.to_string(), e.bytes.to_string()]);
                }
                print(cli.json, serde_json::to_value(&entries).unwrap_or_default(), t.to_string());
            }
            StudyAction::Clean { kind, store } => {
                let store = Store::open(store.unwrap_or_else(Store::default_root))?;
                let n = store.clean(kind.as_deref())?;
                print(cli.json, serde_json::json!({"removed": n}), format!("removed {n} steps from {}", store.root().display()));
            }
        },
        Command::Evaluate { net, dataset, eps, mask } => {
            let net = Network::load(&net, rt.device)?;
            if let Some(m) = mask {
                Mask::load(m)?.apply(&net)?;
            }
            let (_, test) = DataSource::from_name(&dataset)?.load()?;
            match eps {
                None => {
                    let e = evaluate(&net, &test, 500)?;
                    print(cli.json, serde_json::to_value(e).unwrap_or_default(), format!("{}: {e}", test.name()));
                }
                Some(eps) => {
                    let e = robust_evaluate(&net, &test, &walkthrough::evaluation_attacks(eps), 500)?;
                    print(cli.json, serde_json::to_value(&e).unwrap_or_default(), e.to_string());
                }
            }
        }
        Command::Data { action: DataAction::List } => {
            let mut table = Table::new(
                format!("Embedded datasets in {}", embedded::data_dir().display()),
                &["name", "train", "test", "image", "classes"],
            );
            let mut rows = Vec::new();
            for e in Embedded::ALL {
                let (train, test) = e.load()?;
                let [c, h, w] = train.image_shape();
                table.push(vec![
                    e.name().into(),
                    train.len().to_string(),
                    test.len().to_string(),
                    format!("{c}x{h}x{w}"),
                    train.classes().join(", "),
                ]);
                rows.push(serde_json::json!({"name": e.name(), "train": train.len(), "test": test.len(), "shape": [c, h, w], "classes": train.classes()}));
            }
            print(cli.json, serde_json::Value::Array(rows), table.to_string());
        }
        Command::Data { action: DataAction::Download { name, dir, base_url } } => {
            let dir = dir.unwrap_or_else(|| embedded::data_dir().join("downloads"));
            let (train, test) = download::fetch(Remote::from_name(&name)?, &dir, base_url.as_deref())?;
            print(cli.json, serde_json::json!({"train": train.len(), "test": test.len(), "dir": dir}), format!("{train}\n{test}"));
        }
        Command::Bench { quick, repeats, warmup, only, no_peer, rounds, first_result, out } => {
            let base = if quick { doublewin_bench::BenchConfig::quick() } else { doublewin_bench::BenchConfig::default() };
            let cfg = doublewin_bench::BenchConfig {
                repeats: repeats.unwrap_or(base.repeats),
                warmup: warmup.unwrap_or(base.warmup),
                only,
                peer: !no_peer,
                threads: rt.threads,
                seed: rt.seed,
                rounds: rounds.max(1),
                first_result,
                ..base
            };
            let report = doublewin_bench::run(&cfg)?;
            if let Some(out) = &out {
                doublewin::fsio::write_atomic(
                    out,
                    doublewin_bench::markdown_document(&report, &std::env::args().collect::<Vec<_>>()).as_bytes(),
                )?;
            }
            let wrote = out.map(|o| format!("wrote {}", o.display())).unwrap_or_default();
            print(cli.json, serde_json::to_value(&report).unwrap_or_default(), format!("{report}{wrote}"));
        }
        Command::Info => {
            let info = serde_json::json!({
                "doublewin": doublewin::VERSION,
                "libtorch": doublewin::LIBTORCH_VERSION,
                "device": format!("{:?}", rt.device),
                "cuda_backend_loaded": doublewin::runtime::load_cuda_backend(),
                "cuda_devices": tch::Cuda::device_count(),
                "threads": rt.threads,
                "data_dir": embedded::data_dir(),
            });
            print(cli.json, info.clone(), serde_json::to_string_pretty(&info).unwrap_or_default());
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
