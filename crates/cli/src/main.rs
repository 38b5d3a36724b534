//! The `doublewin` command line: the quickstart, training, pruning, transfer and evaluation of
//! networks, the study (plan, run, report, store), datasets and the benchmark. Every option is
//! parsed once, by clap, into the library's own types; every subcommand takes `--json`; errors
//! exit non-zero with a message that says what to do.

use clap::{Parser, Subcommand};
use doublewin::attack::{robust_evaluate, TestAttack, ThreatModel};
use doublewin::data::download::{self, Remote};
use doublewin::data::{embedded, DataSource, Embedded, VALIDATION_FRACTION};
use doublewin::prelude::*;
use doublewin::prune::{imp, ImpConfig, Mask};
use doublewin::runtime::DeviceChoice;
use doublewin::study::RunSummary;
use doublewin::train::AugmentChoice;
use doublewin::transfer::{transfer, TransferConfig};
use doublewin::walkthrough;
use std::path::PathBuf;
use std::process::ExitCode;

mod slurm;

#[derive(Parser)]
#[command(name = "doublewin", version, about = "Find and validate double-win lottery tickets")]
struct Cli {
    /// auto, cpu, cuda or cuda:N
    #[arg(long, global = true, env = "DOUBLEWIN_DEVICE", default_value = "auto")]
    device: DeviceChoice,
    /// CPU threads for libtorch (0 = its default)
    #[arg(long, global = true, env = "DOUBLEWIN_THREADS", default_value_t = 0)]
    threads: usize,
    /// Seed for the random number generators of train / imp / transfer (a study's seeds are in the study)
    #[arg(long, global = true, env = "DOUBLEWIN_SEED", default_value_t = 0)]
    seed: u64,
    /// Print machine-readable JSON instead of text
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

/// A dataset name: embedded (fashion-mnist, mnist, animal-mnist, digits) or downloaded (cifar10, ...).
fn dataset(name: &str) -> Result<DataSource> {
    DataSource::from_name(name)
}

/// The study's size profile.
#[derive(clap::Args)]
struct ProfileArg {
    #[arg(long, value_enum, env = "DOUBLEWIN_PROFILE", default_value_t = Profile::Small)]
    profile: Profile,
}

#[derive(Subcommand)]
enum Command {
    /// Train the small ConvNet on the embedded Fashion-MNIST and write a report and figures
    Quickstart {
        #[command(flatten)]
        profile: ProfileArg,
        #[arg(long, default_value = "out/quickstart")]
        out: PathBuf,
    },
    /// Train a network on a dataset (embedded, or cifar10 / cifar100 / svhn downloaded on first use) and save it
    Train(TrainArgs),
    /// Pre-train the profile study's source models through the store (shared with `study run`
    /// and the notebooks)
    Pretrain {
        /// Which pre-trainings (repeatable; default all three)
        #[arg(long, value_enum)]
        regime: Vec<RegimeKind>,
        #[command(flatten)]
        profile: ProfileArg,
        #[arg(long)]
        store: Option<PathBuf>,
    },
    /// Iterative magnitude pruning of a saved network on a source dataset; each round's
    /// ticket is written to --out as soon as it is done, and a rerun resumes after the last one
    Imp(ImpArgs),
    /// Transfer a saved network (dense, or with a ticket's mask) to a downstream dataset
    Transfer(TransferArgs),
    /// Plan, run, report, list or clean the study (the double-win grid) in the experiment store
    Study {
        #[command(subcommand)]
        action: StudyAction,
    },
    /// Evaluate a saved network on the test split of the dataset it was trained for: SA, and RA with --eps
    Evaluate(EvaluateArgs),
    /// List, verify or download datasets
    Data {
        #[command(subcommand)]
        action: DataAction,
    },
    /// Hand a store out: export a study's finished steps into one archive, import one into a store
    Store {
        #[command(subcommand)]
        action: StoreAction,
    },
    /// Show the runtime: device, CUDA, threads, versions, data folder
    Info,
    /// Benchmark the hot paths side by side with a PyTorch peer (crates/bench/peer.py) on this machine
    Bench(BenchArgs),
}

#[derive(clap::Args)]
struct TrainArgs {
    #[arg(long, default_value = "fashion-mnist", value_parser = dataset)]
    dataset: DataSource,
    /// linear, convnet, resnet20/32/44/56/110, resnet18-cifar, resnet18, resnet50
    #[arg(long, default_value = "convnet", value_parser = Arch::from_name)]
    arch: Arch,
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
}

#[derive(clap::Args)]
struct ImpArgs {
    /// The pre-trained network (.safetensors with its .json sidecar)
    #[arg(long)]
    net: PathBuf,
    #[arg(long, default_value = "fashion-mnist", value_parser = dataset)]
    dataset: DataSource,
    #[arg(long, default_value_t = 6)]
    rounds: usize,
    /// Fraction of the remaining weights pruned per round
    #[arg(long, default_value_t = 0.2)]
    rate: f64,
    /// Re-training between rounds: standard (mask family m^ST), fast or adversarial (m^AT)
    #[arg(long, value_enum, default_value_t = RegimeKind::Standard)]
    regime: RegimeKind,
    /// Epochs of re-training per round
    #[arg(long, default_value_t = 3)]
    epochs: usize,
    /// Fraction of the source training split used for re-training
    #[arg(long, default_value_t = 1.0)]
    fraction: f64,
    /// L-inf radius for adversarial re-training (default per data: 0.1 grey-scale, 8/255 colour)
    #[arg(long, allow_negative_numbers = true)]
    eps: Option<f64>,
    #[arg(long)]
    out: PathBuf,
}

#[derive(clap::Args)]
struct TransferArgs {
    #[arg(long)]
    net: PathBuf,
    /// A ticket (mask .safetensors written by `imp`); without it the dense network transfers
    #[arg(long)]
    mask: Option<PathBuf>,
    #[arg(long, default_value = "mnist", value_parser = dataset)]
    dataset: DataSource,
    #[arg(long, value_enum, default_value_t = RegimeKind::Standard)]
    fine_tuning: RegimeKind,
    #[arg(long, default_value_t = 1.0)]
    fraction: f64,
    #[arg(long, default_value_t = 5)]
    epochs: usize,
    #[arg(long, default_value_t = 0.02)]
    lr: f64,
    /// L-inf radius of the threat model (default per data: 0.1 grey-scale, 8/255 colour)
    #[arg(long, allow_negative_numbers = true)]
    eps: Option<f64>,
}

#[derive(clap::Args)]
struct EvaluateArgs {
    #[arg(long)]
    net: PathBuf,
    #[arg(long, default_value = "fashion-mnist", value_parser = dataset)]
    dataset: DataSource,
    /// Also attack at this L-inf radius
    #[arg(long, allow_negative_numbers = true)]
    eps: Option<f64>,
    /// The attacks of the robust accuracy
    #[arg(long, value_enum, default_value_t = TestAttack::Pgd20)]
    attack: TestAttack,
    /// Evaluate the network under this mask (pruned weights set to zero)
    #[arg(long)]
    mask: Option<PathBuf>,
    /// Evaluate on this many test images (a stratified, seeded subset; default all)
    #[arg(long)]
    examples: Option<usize>,
    /// Also write the evaluated images and labels as safetensors (`images` u8, `labels` i64),
    /// e.g. for tests/python/torchattacks_eval.py
    #[arg(long)]
    save_examples: Option<PathBuf>,
}

#[derive(clap::Args)]
struct BenchArgs {
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
}

/// Which study, and which store it lives in.
#[derive(clap::Args)]
struct StudyChoice {
    #[command(flatten)]
    profile: ProfileArg,
    /// A study as JSON (e.g. edited from `study show`), instead of the profile's
    #[arg(long)]
    config: Option<PathBuf>,
    /// Store folder (default: $DOUBLEWIN_STORE, else `store` in the cache folder; `doublewin --json info` prints it)
    #[arg(long)]
    store: Option<PathBuf>,
    /// Fine-tuning seeds instead of the study's (e.g. 3,4,5: the same study on another seed set)
    #[arg(long, value_delimiter = ',')]
    seeds: Option<Vec<u64>>,
    /// The stability check's second seed set instead of the study's (disjoint from the seeds, as
    /// many; an empty value turns the check off)
    #[arg(long, num_args = 0..=1, default_missing_value = "")]
    stability_seeds: Option<String>,
}

/// A comma-separated seed list of `flag`; empty (`--flag ""` or a bare `--flag`) is no seeds.
fn seed_list(flag: &str, text: &str) -> Result<Vec<u64>> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse()
                .map_err(|_| Error::invalid(format!("{flag} {text:?}: '{s}' is not a seed"), "give seeds as whole numbers, e.g. 12,13,14"))
        })
        .collect()
}

impl StudyChoice {
    /// The study of `--config FILE` (checked), else of the profile, with `--seeds` /
    /// `--stability-seeds` applied, and its store.
    fn open(self) -> Result<(Study, Store)> {
        let mut study = match self.config {
            Some(path) => Study::load(&path)?,
            None => Study::for_profile(self.profile.profile),
        };
        if let Some(seeds) = self.seeds {
            study.seeds = seeds;
        }
        if let Some(seeds) = self.stability_seeds {
            study.stability_seeds = seed_list("--stability-seeds", &seeds)?;
        }
        study.check()?;
        Ok((study, open_store(self.store)?))
    }
}

fn open_store(store: Option<PathBuf>) -> Result<Store> {
    Store::open(store.unwrap_or_else(Store::default_root))
}

/// Local parallelism.
#[derive(clap::Args)]
struct Parallel {
    /// Run the missing steps with this many worker processes on this machine (each with
    /// cores / N threads unless --threads says otherwise)
    #[arg(long, default_value_t = 1)]
    workers: usize,
}

#[derive(Subcommand)]
enum StudyAction {
    /// List every step of the study: kind, key, what it is, what it needs, done or not
    Plan {
        #[command(flatten)]
        which: StudyChoice,
        /// Estimate the wall time for this many workers
        #[command(flatten)]
        parallel: Parallel,
    },
    /// Run what is missing of the study and print the verdict table. Any number of these may
    /// run on one store (on one machine or a cluster): they share the steps, none is computed twice
    Run {
        #[command(flatten)]
        which: StudyChoice,
        #[command(flatten)]
        parallel: Parallel,
        /// Work as one worker and exit when every step is done, without printing the results
        /// (for job arrays); SIGTERM or SIGUSR1 stop it after the step in flight (exit status 3)
        #[arg(long, conflicts_with = "workers")]
        worker: bool,
        /// Names this worker in its progress lines
        #[arg(long, hide = true)]
        worker_name: Option<String>,
    },
    /// Run (or load) the study and write its report into a folder: report.html (self-contained,
    /// figures inline), report.md, results.json, report.json and figures/*.svg|png
    Report {
        #[command(flatten)]
        which: StudyChoice,
        #[command(flatten)]
        parallel: Parallel,
        #[arg(long, default_value = "out/report")]
        out: PathBuf,
        /// Fail instead of computing when a step is missing (the report job of a cluster run)
        #[arg(long, conflicts_with = "workers")]
        require_done: bool,
    },
    /// Run the ladder toward the paper from the study (each rung changes one thing: IMP that
    /// re-trains, wider ConvNets, 10% data, longer fine-tuning; then the rungs that moved anything
    /// combined), through the store, and print "Does the answer hold?"; the study's report shows
    /// the saved ladder
    Ladder {
        #[command(flatten)]
        which: StudyChoice,
        #[command(flatten)]
        parallel: Parallel,
        /// Fine-tuning seeds per rung (the study's first N)
        #[arg(long, default_value_t = 6)]
        ladder_seeds: usize,
        /// Only these rungs (repeatable): base, imp, wider-2, wider-4, data-10, fine-tune-2
        #[arg(long)]
        only: Vec<String>,
        /// Write each rung's study as DIR/<rung>.json and stop (for a cluster: `study submit
        /// --config DIR/<rung>.json` per rung, then `study ladder` again reads them from the store)
        #[arg(long)]
        export: Option<PathBuf>,
    },
    /// Write (and with --submit, submit) the study as a Slurm job array of workers over one
    /// shared store, plus a report job that runs after all of them succeeded
    Submit {
        #[command(flatten)]
        which: StudyChoice,
        /// The scheduler (Slurm is the one supported)
        #[arg(long, required = true)]
        slurm: bool,
        #[command(flatten)]
        options: slurm::SlurmOptions,
        /// Where the scripts, the study's JSON and logs/ go
        #[arg(long, default_value = "out/slurm")]
        dir: PathBuf,
        /// Where the report job writes the report
        #[arg(long, default_value = "out/report")]
        out: PathBuf,
        /// Run sbatch (otherwise only write the scripts)
        #[arg(long)]
        submit: bool,
    },
    /// Print a profile's study as JSON (a starting point for --config)
    Show {
        #[command(flatten)]
        profile: ProfileArg,
    },
    /// List the finished steps in the store
    List {
        #[arg(long)]
        store: Option<PathBuf>,
    },
    /// Delete finished steps (of one kind: pretrain, imp, transfer, trajectory, landscape; or all)
    Clean {
        /// Only the steps of this kind (pretrain, imp, transfer, trajectory, landscape, attack-check)
        #[arg(long)]
        kind: Option<String>,
        #[arg(long)]
        store: Option<PathBuf>,
        /// Remove the steps of a store written by an older doublewin (which this one refuses to read)
        #[arg(long, conflicts_with = "kind")]
        old_format: bool,
    },
}

#[derive(Subcommand)]
enum StoreAction {
    /// Write the study's finished steps (each verified by hash) with their records into ARCHIVE
    /// (a gzip'd tar), e.g. for a workshop: participants import it and only render
    Export {
        #[command(flatten)]
        which: StudyChoice,
        /// Where to write the archive (e.g. small-store.tar.gz)
        archive: PathBuf,
    },
    /// Merge an archive written by `store export` into the store: every file is verified before
    /// any step becomes visible; finished steps are kept; importing twice changes nothing
    Import {
        /// Store folder (default: $DOUBLEWIN_STORE, else `store` in the cache folder)
        #[arg(long)]
        store: Option<PathBuf>,
        archive: PathBuf,
    },
}

#[derive(Subcommand)]
enum DataAction {
    /// Verify and describe the embedded datasets
    List,
    /// Download a dataset from its canonical host (or --base-url) into --dir
    Download {
        /// mnist, fashion-mnist, cifar10, cifar100 or svhn
        #[arg(value_parser = Remote::from_name)]
        name: Remote,
        #[arg(long)]
        dir: Option<PathBuf>,
        #[arg(long)]
        base_url: Option<String>,
    },
}

/// Prints `value` as JSON with `--json`, else `text`. A closed pipe (`| head`) is not an error.
fn print<T: serde::Serialize>(json: bool, value: &T, text: impl std::fmt::Display) -> Result<()> {
    use std::io::Write;
    let text = if json {
        serde_json::to_string_pretty(value)
            .map_err(|e| Error::invalid(format!("cannot write the result as JSON: {e}"), "report this as a bug"))?
    } else {
        text.to_string()
    };
    match writeln!(std::io::stdout().lock(), "{text}") {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Error::io("<stdout>", e)),
        _ => Ok(()),
    }
}

/// SIGTERM / SIGUSR1: a running study stops after the step in flight, a pre-training or IMP run
/// after its next saved epoch (see [`doublewin::runtime::request_stop`]).
extern "C" fn on_stop_signal(_: libc::c_int) {
    doublewin::runtime::request_stop();
}

/// Exits with [`doublewin::study::EXIT_STOPPED`] after saying how to resume.
fn exit_stopped() -> ! {
    eprintln!("stopped after the step in flight (a signal asked to); run the same command again to resume");
    std::process::exit(doublewin::study::EXIT_STOPPED)
}

/// Runs the study's missing steps: as this one process, or with `workers` child processes
/// (`study run --worker`, each with its share of the cores) and waits for them. SIGTERM or
/// SIGUSR1 to this process (or to its whole group) stops every worker after its step in flight;
/// then this process exits with status [`doublewin::study::EXIT_STOPPED`] ("rerun to resume").
fn run_in_parallel(rt: &Runtime, study: &Study, store: &Store, workers: usize, worker: bool) -> Result<RunSummary> {
    install_stop_handlers();
    let plan = study.plan()?;
    let done_before = plan.len() - plan.missing(store);
    if done_before < plan.len() {
        store.check_writable()?;
    }
    if workers <= 1 || worker {
        let options = doublewin::study::RunOptions { workers: 1, stop: Some(doublewin::runtime::stop_flag()) };
        let summary = doublewin::study::run_plan_with(&plan, rt, store, &options)?;
        if summary.stopped {
            exit_stopped();
        }
        return Ok(summary);
    }
    if done_before == plan.len() {
        return Ok(RunSummary { stored: done_before, ..RunSummary::default() });
    }
    let config = write_worker_config(study, store)?;
    let cores = doublewin::runtime::available_cores();
    let threads = if rt.threads > 0 && flag_or_env("--threads", "DOUBLEWIN_THREADS") { rt.threads } else { (cores / workers).max(1) };
    let start = std::time::Instant::now();
    let children = (0..workers).map(|k| spawn_worker(rt, threads, k, &config, store)).collect::<Result<Vec<_>>>()?;
    let (exits, forwarded) = wait_for_workers(children)?;
    let (sum, failed, stopped) = gather_workers(exits, forwarded);
    if !failed.is_empty() {
        // A worker that died is a failure only if its work is missing: the others take every
        // step they find, so the study may be complete all the same.
        let left = plan.missing(store);
        if left > 0 || stopped {
            return Err(Error::invalid(
                format!("{} failed; {left} step(s) not done", failed.join(", ")),
                "see its output above; run again to resume",
            ));
        }
        doublewin::progress::warn(&format!("{} failed, but the other workers finished every step", failed.join(", ")));
    }
    if stopped {
        exit_stopped();
    }
    let seconds = start.elapsed().as_secs_f64();
    let summary = RunSummary { stored: plan.len() - sum.computed, seconds, stopped: false, ..sum };
    eprintln!(
        "{workers} workers: {} steps computed in {seconds:.0} s; busy {:.0} s, idle {:.0} s ({:.1}% of the workers' time idle)",
        summary.computed,
        summary.busy,
        summary.idle,
        100.0 * summary.idle_fraction()
    );
    Ok(summary)
}

/// SIGTERM and SIGUSR1 ask this process to stop after the step in flight.
fn install_stop_handlers() {
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGTERM, on_stop_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGUSR1, on_stop_signal as *const () as libc::sighandler_t);
    }
}

/// The study as a file in the store, named by its content, for the workers to read.
fn write_worker_config(study: &Study, store: &Store) -> Result<PathBuf> {
    let text =
        serde_json::to_string_pretty(study).map_err(|e| Error::invalid(format!("cannot write the study: {e}"), "report this as a bug"))?;
    let config = store.root().join("studies").join(format!("{}.json", &doublewin::fsio::sha256(text.as_bytes())[..16]));
    doublewin::fsio::write_atomic(&config, text.as_bytes())?;
    Ok(config)
}

/// Starts worker `k` (`study run --worker`), which prints its [`RunSummary`] as JSON on stdout
/// (progress on stderr) and dies with this process.
fn spawn_worker(rt: &Runtime, threads: usize, k: usize, config: &std::path::Path, store: &Store) -> Result<std::process::Child> {
    let exe = std::env::current_exe().map_err(|e| Error::io("<current executable>", e))?;
    let mut command = std::process::Command::new(&exe);
    command
        .args(["--json", "--threads", &threads.to_string(), "--seed", &rt.seed.to_string(), "--device", &device_arg(rt.device)])
        .args(["study", "run", "--worker", "--worker-name", &format!("worker {}", k + 1)])
        .args(["--config", &config.to_string_lossy(), "--store", &store.root().to_string_lossy()])
        .stdout(std::process::Stdio::piped());
    // A worker outlives no parent: if this process dies (even by SIGKILL, which it cannot
    // pass on), the kernel sends each worker SIGTERM, and it stops after its step in flight.
    // SAFETY: prctl(2) is async-signal-safe, and the closure touches nothing else.
    unsafe {
        use std::os::unix::process::CommandExt;
        let parent = libc::getpid();
        command.pre_exec(move || {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            // The parent may have died before the prctl: then nobody would send the signal.
            if libc::getppid() != parent {
                libc::raise(libc::SIGTERM);
            }
            Ok(())
        });
    }
    command.spawn().map_err(|e| Error::io(&exe, e))
}

/// Waits for every worker, passing a stop request on to those still running (once). Returns
/// each worker with its exit status, and whether a stop was passed on.
fn wait_for_workers(mut children: Vec<std::process::Child>) -> Result<(Vec<(std::process::Child, std::process::ExitStatus)>, bool)> {
    let pids: Vec<u32> = children.iter().map(|c| c.id()).collect();
    let mut forwarded = false;
    let mut exits: Vec<Option<std::process::ExitStatus>> = vec![None; children.len()];
    while exits.iter().any(Option::is_none) {
        if doublewin::runtime::stop_requested() && !forwarded {
            for (pid, e) in pids.iter().zip(&exits) {
                if e.is_none() {
                    // SAFETY: kill(2) on our own child's pid; failure (it just exited) is harmless.
                    unsafe { libc::kill(*pid as libc::pid_t, libc::SIGTERM) };
                }
            }
            forwarded = true;
        }
        for (c, e) in children.iter_mut().zip(exits.iter_mut()) {
            if e.is_none() {
                *e = c.try_wait().map_err(|err| Error::io("<worker>", err))?;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    Ok((children.into_iter().zip(exits.into_iter().flatten()).collect(), forwarded))
}

/// Adds up the workers' summaries (read from their stdout) and names the workers that failed;
/// also says whether any was stopped (`forwarded`: a stop this process passed on).
fn gather_workers(workers: Vec<(std::process::Child, std::process::ExitStatus)>, forwarded: bool) -> (RunSummary, Vec<String>, bool) {
    let (mut sum, mut failed, mut stopped) = (RunSummary::default(), Vec::new(), forwarded);
    for (k, (mut child, status)) in workers.into_iter().enumerate() {
        let mut out = String::new();
        if let Some(mut pipe) = child.stdout.take() {
            use std::io::Read;
            let _ = pipe.read_to_string(&mut out);
        }
        if let Ok(w) = serde_json::from_str::<RunSummary>(&out) {
            sum.computed += w.computed;
            sum.busy += w.busy;
            sum.idle += w.idle;
        }
        match status.code() {
            Some(0) => {}
            Some(doublewin::study::EXIT_STOPPED) => stopped = true,
            // Killed by a signal we did not forward (SIGKILL, or SIGTERM from outside while
            // this process was told nothing): it stopped mid-step, the store keeps the rest.
            None if stopped => {}
            _ => failed.push(format!("worker {} ({status})", k + 1)),
        }
    }
    (sum, failed, stopped)
}

/// Whether `flag` is on the command line or `var` is set (a value the user chose).
fn flag_or_env(flag: &str, var: &str) -> bool {
    flag_given(flag) || std::env::var_os(var).is_some_and(|v| !v.is_empty())
}

/// The `--device` value naming a device.
fn device_arg(d: tch::Device) -> String {
    match d {
        tch::Device::Cuda(i) => format!("cuda:{i}"),
        _ => "cpu".into(),
    }
}

/// The threat model of a command: `--eps`, else the data's default radius.
fn threat_for(eps: Option<f64>, data: &Splits) -> Result<ThreatModel> {
    let threat = ThreatModel::linf(eps.unwrap_or_else(|| doublewin::attack::default_eps(data.image_shape())));
    threat.check()?;
    Ok(threat)
}

fn run(cli: Cli) -> Result<()> {
    let json = cli.json;
    if json {
        // stdout carries the one JSON document; every progress line goes to stderr.
        doublewin::progress::set_observer(Box::new(doublewin::progress::Lines::detect_stderr()));
    }
    doublewin::runtime::check_threads(cli.threads, if flag_given("--threads") { "--threads" } else { "DOUBLEWIN_THREADS" })?;
    let rt = Runtime::new(cli.device, cli.threads, cli.seed)?;
    match cli.command {
        Command::Quickstart { profile, out } => {
            let report = walkthrough::quickstart(&rt, profile.profile, &out)?;
            print(json, &report, format!("{report}\nwrote {}", out.display()))?;
        }
        Command::Train(args) => train_cmd(rt, json, args)?,
        Command::Pretrain { regime, profile, store } => pretrain_cmd(rt, json, regime, profile, store)?,
        Command::Imp(args) => imp_cmd(rt, json, args)?,
        Command::Transfer(args) => transfer_cmd(rt, json, args)?,
        Command::Study { action } => study(&rt, json, action)?,
        Command::Store { action } => store_cmd(json, action)?,
        Command::Evaluate(args) => evaluate_cmd(rt, json, args)?,
        Command::Data { action } => data_cmd(json, action)?,
        Command::Bench(args) => bench_cmd(rt, json, args)?,
        Command::Info => info_cmd(&rt, json)?,
    }
    Ok(())
}

/// `pretrain`: the profile study's source models through the store.
fn pretrain_cmd(rt: Runtime, json: bool, regime: Vec<RegimeKind>, profile: ProfileArg, store: Option<PathBuf>) -> Result<()> {
    let session = Session::new(rt, profile.profile, open_store(store)?);
    let regimes: Vec<Pretraining> =
        if regime.is_empty() { Pretraining::ALL.to_vec() } else { regime.into_iter().map(Pretraining::from).collect() };
    let report = session.source_models(&regimes)?;
    let paths = report.models.iter().map(|m| format!("{}: {}", m.pretraining, m.weights.display())).collect::<Vec<_>>().join("\n");
    print(json, &report, format!("{report}\n{paths}"))?;
    Ok(())
}

/// `store export` / `store import`: a finished study's steps as one archive, and back.
fn store_cmd(json: bool, action: StoreAction) -> Result<()> {
    match action {
        StoreAction::Export { which, archive } => {
            let (study, store) = which.open()?;
            let plan = study.plan()?;
            let missing = plan.missing(&store);
            if missing > 0 {
                return Err(Error::invalid(
                    format!("{missing} of the study's {} steps are not done in {}", plan.len(), store.root().display()),
                    "run the study to the end first (`doublewin study run` with the same --profile / --config)",
                ));
            }
            let steps: Vec<(&str, String)> = plan.steps.iter().map(|s| (s.kind, s.key.clone())).collect();
            let summary = store.export(&steps, &archive)?;
            let text = format!("{} steps written to {} ({:.1} MB)", summary.steps, archive.display(), summary.bytes as f64 / 1e6);
            print(json, &summary, text)?;
        }
        StoreAction::Import { store, archive } => {
            let store = open_store(store)?;
            let summary = store.import(&archive)?;
            let text = format!("{} steps imported into {}, {} already there kept", summary.added, store.root().display(), summary.kept);
            print(json, &summary, text)?;
        }
    }
    Ok(())
}

/// `data list` / `data download`.
fn data_cmd(json: bool, action: DataAction) -> Result<()> {
    match action {
        DataAction::List => {
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
            print(json, &rows, table)?;
        }
        DataAction::Download { name, dir, base_url } => {
            let dir = dir.unwrap_or_else(|| embedded::data_dir().join("downloads"));
            let (train, test) = download::fetch(name, &dir, base_url.as_deref())?;
            print(json, &serde_json::json!({"train": train.len(), "test": test.len(), "dir": dir}), format!("{train}\n{test}"))?;
        }
    }
    Ok(())
}

/// `info`: versions, device, threads, seed, folders.
fn info_cmd(rt: &Runtime, json: bool) -> Result<()> {
    let info = serde_json::json!({
        "doublewin": doublewin::VERSION,
        "libtorch": doublewin::LIBTORCH_VERSION,
        "device": format!("{:?}", rt.device),
        "cuda_backend_loaded": doublewin::runtime::load_cuda_backend(),
        "cuda_devices": tch::Cuda::device_count(),
        "threads": rt.threads,
        "seed": rt.seed,
        "data_dir": embedded::data_dir(),
        "store": Store::default_root(),
    });
    let text = serde_json::to_string_pretty(&info).unwrap_or_default();
    print(json, &info, text)
}

fn train_cmd(rt: Runtime, json: bool, args: TrainArgs) -> Result<()> {
    let TrainArgs { dataset, arch, epochs, lr, batch_size, fraction, no_augment, out, resume_dir } = args;
    let mut cfg = TrainConfig::default().epochs(epochs).lr(lr).batch_size(batch_size).seed(rt.seed);
    if no_augment {
        cfg = cfg.augment(AugmentChoice::None);
    }
    cfg.check()?;
    let data = dataset.splits(VALIDATION_FRACTION, rt.seed)?.with_train_fraction(fraction, rt.seed)?;
    let mut net = Network::new(NetworkSpec::for_data(arch, &data.train)?, rt.device, rt.seed)?;
    let history = train_with(&mut net, &data, &cfg, &mut Callbacks::progress(dataset.name()), resume_dir.as_deref())?;
    let test = evaluate(&net, &data.test, cfg.recipe.eval_batch_size)?;
    net.save(&out)?;
    let value = serde_json::json!({"history": history, "test": test, "net": out, "config_hash": cfg.hash()?});
    print(json, &value, format!("{history}\ntest {test}\nsaved {}", out.display()))?;
    Ok(())
}

fn imp_cmd(rt: Runtime, json: bool, args: ImpArgs) -> Result<()> {
    let ImpArgs { net, dataset, rounds, rate, regime, epochs, fraction, eps, out } = args;
    if let Some(eps) = eps {
        ThreatModel::linf(eps).check()?;
    }
    let source = dataset.splits(VALIDATION_FRACTION, rt.seed)?.with_train_fraction(fraction, rt.seed)?;
    let threat = threat_for(eps, &source)?;
    let cfg = ImpConfig::default()
        .rounds(rounds)
        .rate(rate)
        .retrain(TrainConfig::default().epochs(epochs).seed(rt.seed).regime(Regime::of(regime, &threat)?));
    cfg.check()?;
    let pretrained = Network::load(&net, rt.device)?;
    pretrained.check_fits(&source.train)?;
    let tickets = imp(&pretrained, &source, &cfg, &out)?;
    let rows: Vec<serde_json::Value> = tickets
        .0
        .iter()
        .map(|t| serde_json::json!({"round": t.round, "sparsity": t.sparsity(), "mask": t.path, "retrained": t.retrained}))
        .collect();
    print(json, &rows, tickets.table())?;
    Ok(())
}

fn transfer_cmd(rt: Runtime, json: bool, args: TransferArgs) -> Result<()> {
    let TransferArgs { net, mask, dataset, fine_tuning, fraction, epochs, lr, eps } = args;
    let splits = dataset.splits(VALIDATION_FRACTION, rt.seed)?;
    let threat = threat_for(eps, &splits)?;
    let cfg = TransferConfig::new(fine_tuning, &threat)?
        .recipe(Recipe::default().epochs(epochs).lr(lr).batch_size(64))
        .fraction(fraction)
        .seed(rt.seed);
    cfg.check()?;
    let pretrained = Network::load(&net, rt.device)?;
    let mask = mask.map(Mask::load).transpose()?;
    let report = transfer(&pretrained, mask.as_ref(), &splits, &cfg)?;
    print(json, &report, &report)?;
    Ok(())
}

fn evaluate_cmd(rt: Runtime, json: bool, args: EvaluateArgs) -> Result<()> {
    let EvaluateArgs { net, dataset, eps, attack, mask, examples, save_examples } = args;
    if examples == Some(0) {
        return Err(Error::invalid("--examples 0: no test example to evaluate", "use --examples 1 or more, or leave it out for all"));
    }
    let threat = eps.map(|eps| ThreatModel::linf(eps).test(attack));
    if let Some(t) = &threat {
        t.check()?;
    }
    let net = Network::load(&net, rt.device)?;
    let (_, test) = dataset.load()?;
    let test = match examples {
        Some(n) if n < test.len() => test.fraction(n as f64 / test.len() as f64, rt.seed)?,
        _ => test,
    };
    net.check_fits(&test)?;
    if let Some(path) = &save_examples {
        let tensors = [("images".to_string(), test.images().shallow_clone()), ("labels".to_string(), test.labels().shallow_clone())];
        doublewin::model::io::write_tensors(path, &tensors)?;
    }
    if let Some(m) = mask {
        Mask::load(m)?.apply(&net)?;
    }
    match threat {
        None => {
            let e = evaluate(&net, &test, doublewin::train::EVAL_BATCH_SIZE)?;
            print(json, &e, format!("{}: {e}", test.name()))?;
        }
        Some(threat) => {
            let attacks: Vec<_> = threat.test_attacks().iter().map(|a| a.seeded(rt.seed)).collect();
            let e = robust_evaluate(&net, &test, &attacks, doublewin::train::EVAL_BATCH_SIZE)?;
            print(json, &e, &e)?;
        }
    }
    Ok(())
}

fn bench_cmd(rt: Runtime, json: bool, args: BenchArgs) -> Result<()> {
    let BenchArgs { quick, repeats, warmup, only, no_peer, rounds, first_result, out } = args;
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
        let args: Vec<String> = std::env::args().collect();
        doublewin::fsio::write_atomic(out, doublewin_bench::markdown_document(&report, &args).as_bytes())?;
    }
    let wrote = out.map(|o| format!("wrote {}", o.display())).unwrap_or_default();
    print(json, &report, format!("{report}{wrote}"))?;
    Ok(())
}

fn study(rt: &Runtime, json: bool, action: StudyAction) -> Result<()> {
    match action {
        StudyAction::Plan { which, parallel } => {
            let (study, store) = which.open()?;
            let plan = study.plan()?;
            let estimate = plan.estimate(&store, parallel.workers);
            let value = serde_json::json!({"steps": plan.to_json(&store), "estimate": estimate});
            print(json, &value, format!("{}{estimate}", plan.table(&store)))?;
        }
        StudyAction::Run { which, parallel, worker, worker_name } => study_run(rt, json, which, parallel, worker, worker_name)?,
        StudyAction::Report { which, parallel, out, require_done } => study_report(rt, json, which, parallel, out, require_done)?,
        StudyAction::Ladder { which, parallel, ladder_seeds, only, export } => {
            study_ladder(rt, json, which, parallel, ladder_seeds, only, export)?
        }
        StudyAction::Submit { which, slurm: _, options, dir, out, submit } => {
            let store = which.store.clone().unwrap_or_else(Store::default_root);
            let (study, _) = which.open()?;
            let mut s = slurm::write(&study, &store, &out, &dir, &options, rt.seed)?;
            if submit {
                s = slurm::submit(s)?;
            }
            let text = s.to_string();
            print(json, &s, text)?;
        }
        StudyAction::Show { profile } => {
            let study = Study::for_profile(profile.profile);
            let text = serde_json::to_string_pretty(&study).unwrap_or_default();
            print(true, &study, text)?;
        }
        StudyAction::List { store } => {
            let store = Store::open_existing(store.unwrap_or_else(Store::default_root))?;
            let entries = store.entries()?;
            let mut t = Table::new(format!("Store {}", store.root().display()), &["kind", "key", "step", "bytes"]);
            for e in &entries {
                t.push(vec![e.kind.clone(), e.key.clone(), e.label.clone(), e.bytes.to_string()]);
            }
            print(json, &entries, t)?;
        }
        StudyAction::Clean { kind, store, old_format } => study_clean(json, kind, store, old_format)?,
    }
    Ok(())
}

/// `study run`: the missing steps (here, or with workers), then the verdict table (a worker
/// prints its run summary instead).
fn study_run(rt: &Runtime, json: bool, which: StudyChoice, parallel: Parallel, worker: bool, worker_name: Option<String>) -> Result<()> {
    let (study, store) = which.open()?;
    if let Some(name) = worker_name {
        let lines = if json { doublewin::progress::Lines::detect_stderr() } else { doublewin::progress::Lines::detect() };
        doublewin::progress::set_observer(Box::new(lines.prefix(format!("[{name}] "))));
    }
    let plan = study.plan()?;
    // Only the process a person started reports it: a Slurm or local worker would read
    // every record of the store for a line nobody sees.
    let estimate = (!worker).then(|| plan.estimate(&store, parallel.workers));
    if let Some(e) = &estimate {
        eprintln!("[study] expected: {e}");
    }
    let summary = run_in_parallel(rt, &study, &store, parallel.workers, worker)?;
    if let Some(e) = estimate.filter(|e| e.missing > 0) {
        eprintln!("[study] took {:.0} min ({:.0} s); expected {:.0} min", summary.seconds / 60.0, summary.seconds, e.wall_seconds / 60.0);
    }
    if worker {
        let text = format!(
            "worker done: {} steps computed, {} found done, {:.0} s (busy {:.0} s, idle {:.0} s: {:.1}% idle)",
            summary.computed,
            summary.stored,
            summary.seconds,
            summary.busy,
            summary.idle,
            100.0 * summary.idle_fraction()
        );
        return print(json, &summary, text);
    }
    let results = doublewin::study::StudyResults::collect(&study, &plan, &store, summary)?;
    print(json, &results, format!("{}\n{results}", results.transfer_table()))?;
    Ok(())
}

/// `study report`: runs what is missing (unless `require_done`) and writes the report.
fn study_report(rt: &Runtime, json: bool, which: StudyChoice, parallel: Parallel, out: PathBuf, require_done: bool) -> Result<()> {
    let profile = which.profile.profile;
    let (study, store) = which.open()?;
    if require_done {
        let plan = study.plan()?;
        let missing = plan.missing(&store);
        if missing > 0 {
            return Err(Error::invalid(
                format!("{missing} of the study's {} steps are not in {}", plan.len(), store.root().display()),
                "run the workers first (study run), or drop --require-done to compute them here",
            ));
        }
    }
    let workers = if parallel.workers > 1 { Some(run_in_parallel(rt, &study, &store, parallel.workers, false)?) } else { None };
    let mut report = Session::new(*rt, profile, store).with_study(study).report()?;
    // The workers computed the steps; the report's own pass found them in the store.
    if let Some(w) = workers {
        report.results.computed_steps += w.computed;
        report.results.seconds += w.seconds;
    }
    let html = report.save(&out)?;
    let text = format!("{}\n{report}wrote {} and {}", report.results.verdict_table(), html.display(), out.join("report.md").display());
    print(json, &report.results, text)?;
    Ok(())
}

/// `study ladder`: every rung through the store (or, with `export`, each rung's study as a file).
fn study_ladder(
    rt: &Runtime,
    json: bool,
    which: StudyChoice,
    parallel: Parallel,
    ladder_seeds: usize,
    only: Vec<String>,
    export: Option<PathBuf>,
) -> Result<()> {
    let (study, store) = which.open()?;
    let ladder = doublewin::study::Ladder::toward_paper(&study, ladder_seeds)?.only(&only)?;
    if let Some(dir) = export {
        let saved = doublewin::study::LadderReport::load(&store, &study)?;
        let studies = ladder.studies(saved.as_ref())?;
        let mut written = Vec::new();
        for (name, s) in &studies {
            let path = dir.join(format!("{name}.json"));
            doublewin::fsio::write_json(&path, s)?;
            written.push(path);
        }
        let mut text = written.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join("\n");
        if ladder.combine && studies.len() == ladder.rungs.len() {
            text.push_str("\n(the combined rung is known once these have run: run `study ladder` again, then export again)");
        }
        return print(json, &written, text);
    }
    let report = ladder.run(&store, |s| {
        let summary = run_in_parallel(rt, s, &store, parallel.workers, false)?;
        doublewin::study::StudyResults::collect(s, &s.plan()?, &store, summary)
    })?;
    let report = report.merged_with(doublewin::study::LadderReport::load(&store, &study)?);
    let path = report.save(&store)?;
    let text = format!("{report}wrote {}", path.display());
    print(json, &report, text)?;
    Ok(())
}

/// `study clean`: removes steps of the store (of one kind, or of an old step format).
fn study_clean(json: bool, kind: Option<String>, store: Option<PathBuf>, old_format: bool) -> Result<()> {
    let root = store.unwrap_or_else(Store::default_root);
    if let Some(k) = kind.as_deref().filter(|k| !doublewin::study::StepDesc::kinds().contains(k)) {
        return Err(Error::invalid(
            format!("--kind {k} is not a step kind"),
            format!("use one of {} (or no --kind: every step)", doublewin::study::StepDesc::kinds().join(", ")),
        ));
    }
    let n = if old_format { Store::remove_old_format(&root)? } else { Store::open_existing(&root)?.clean(kind.as_deref())? };
    print(json, &serde_json::json!({"removed": n}), format!("removed {n} steps from {}", root.display()))?;
    Ok(())
}

/// Whether `flag` (e.g. "--threads") is on the command line (else clap took its value from the
/// environment variable, or the default).
fn flag_given(flag: &str) -> bool {
    std::env::args().any(|a| a == flag || a.starts_with(&format!("{flag}=")))
}

/// Environment variables that stand for flags, checked before clap reads them, so that a bad
/// value is reported under the variable's name rather than the flag's.
fn check_env() -> Result<()> {
    for (var, flag, what) in [
        ("DOUBLEWIN_THREADS", "--threads", "a thread count (0 = libtorch's default)"),
        ("DOUBLEWIN_SEED", "--seed", "a non-negative integer seed"),
    ] {
        if let Ok(v) = std::env::var(var) {
            if !flag_given(flag) && v.trim().parse::<u64>().is_err() {
                return Err(Error::invalid(format!("{var}='{v}' is not {what}"), format!("unset {var} or set it to {what}")));
            }
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    if let Err(e) = check_env() {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Error::Stopped) => {
            eprintln!("{}", Error::Stopped);
            ExitCode::from(doublewin::study::EXIT_STOPPED as u8)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
