//! `study submit --slurm`: a study as a Slurm job array of workers over one shared store, plus a
//! report job that runs when every worker has succeeded. This module writes the batch scripts
//! (and runs `sbatch` when asked); the workers themselves are `doublewin study run --worker`.

use doublewin::error::{Error, Result};
use doublewin::fsio::{sha256, write_atomic};
use doublewin::study::Study;
use std::path::{Path, PathBuf};
use std::process::Command;

/// How the array is laid out on the cluster.
#[derive(clap::Args, Debug, Clone)]
pub struct SlurmOptions {
    /// Array tasks (workers); each takes steps until the study is done
    #[arg(long, default_value_t = 4)]
    pub tasks: usize,
    /// At most this many tasks run at once (`--array=0-N%K`; default: all)
    #[arg(long)]
    pub max_running: Option<usize>,
    /// CPUs per task, also the worker's libtorch threads
    #[arg(long, default_value_t = 1)]
    pub cpus_per_task: usize,
    /// One GPU per task (`--gres=gpu:1`, workers on `--device cuda`)
    #[arg(long)]
    pub gpu: bool,
    #[arg(long)]
    pub partition: Option<String>,
    /// Wall-time limit per task; a task stopped by it finishes its step and is requeued
    #[arg(long, default_value = "04:00:00")]
    pub time: String,
    /// Memory per task (`--mem`)
    #[arg(long, default_value = "8G")]
    pub mem: String,
    /// Seconds before the time limit at which Slurm tells a task to stop (SIGUSR1): a worker
    /// stops after its step in flight, or a pre-training / IMP run after its next saved epoch,
    /// so this must cover the longest transfer or epoch on these nodes
    #[arg(long, default_value_t = 300)]
    pub signal_lead: u64,
}

/// The files `write` produced and, after `submit`, the job ids.
#[derive(Debug, serde::Serialize)]
pub struct Submission {
    pub dir: PathBuf,
    pub study: PathBuf,
    pub worker_script: PathBuf,
    pub report_script: PathBuf,
    pub array_job: Option<String>,
    pub report_job: Option<String>,
}

impl std::fmt::Display for Submission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "wrote {}, {} and {}", self.study.display(), self.worker_script.display(), self.report_script.display())?;
        match (&self.array_job, &self.report_job) {
            (Some(a), Some(r)) => write!(
                f,
                "submitted the worker array as job {a} and the report as job {r} (afterok:{a}); logs in {}/logs",
                self.dir.display()
            ),
            _ => write!(
                f,
                "submit with: a=$(sbatch --parsable {}) && sbatch --dependency=afterok:$a {}",
                self.worker_script.display(),
                self.report_script.display()
            ),
        }
    }
}

/// Writes `dir/study.json`, `dir/worker.sbatch` and `dir/report.sbatch` for `study` over the
/// store at `store` (absolute: every node must reach it at that path).
pub fn write(study: &Study, store: &Path, report_out: &Path, dir: &Path, o: &SlurmOptions, seed: u64) -> Result<Submission> {
    check_options(o)?;
    study.check()?;
    let abs = |p: &Path| -> Result<PathBuf> {
        std::fs::create_dir_all(p).map_err(|e| Error::io(p, e))?;
        p.canonicalize().map_err(|e| Error::io(p, e))
    };
    let (dir, store, report_out) = (abs(dir)?, abs(store)?, abs(report_out)?);
    let logs = abs(&dir.join("logs"))?;
    check_paths(&logs, &dir, &store, &report_out)?;
    let exe = std::env::current_exe().map_err(|e| Error::io("<current executable>", e))?;
    let text =
        serde_json::to_string_pretty(study).map_err(|e| Error::invalid(format!("cannot write the study: {e}"), "report this as a bug"))?;
    let name = format!("doublewin-{}", &sha256(text.as_bytes())[..8]);
    let study_file = dir.join("study.json");
    write_atomic(&study_file, text.as_bytes())?;
    let device = if o.gpu { "cuda" } else { "cpu" };
    let scripts = Scripts {
        name,
        study_file: &study_file,
        logs: &logs,
        header: sbatch_header(o),
        common: format!("{exe} --device {device} --threads {threads} --seed {seed}", exe = quote(&exe), threads = o.cpus_per_task),
        which: format!("--config {} --store {}", quote(&study_file), quote(&store)),
    };
    let (worker_script, report_script) = (dir.join("worker.sbatch"), dir.join("report.sbatch"));
    write_atomic(&worker_script, scripts.worker(o).as_bytes())?;
    write_atomic(&report_script, scripts.report(&report_out).as_bytes())?;
    Ok(Submission { dir, study: study_file, worker_script, report_script, array_job: None, report_job: None })
}

/// Refuses options Slurm would reject or that leave a task no time to work.
fn check_options(o: &SlurmOptions) -> Result<()> {
    if o.tasks == 0 || o.cpus_per_task == 0 || o.max_running == Some(0) {
        return Err(Error::invalid("--tasks, --cpus-per-task and --max-running must be at least 1", "pass positive counts"));
    }
    let limit = time_limit_seconds(&o.time)?;
    check_mem(&o.mem)?;
    let lead = o.signal_lead;
    if lead < 30 || lead * 2 > limit {
        return Err(Error::invalid(
            format!("--signal-lead {lead} s with --time {} ({limit} s)", o.time),
            format!(
                "use a lead of at least 30 s and at most half the time limit (a task needs time to work), e.g. --time {}",
                format_hms((2 * lead).max(3600))
            ),
        ));
    }
    if let Some(p) = &o.partition {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.,".contains(&b)) {
            return Err(Error::invalid(
                format!("--partition {p:?} is not a Slurm partition name"),
                "use letters, digits, '_', '-', '.' (several partitions separated by ',')",
            ));
        }
    }
    Ok(())
}

/// Refuses paths the scripts cannot hold.
fn check_paths(logs: &Path, dir: &Path, store: &Path, report_out: &Path) -> Result<()> {
    // `#SBATCH` lines are read by sbatch, not bash: a path there cannot be quoted, and `%` is
    // Slurm's file-name pattern character. Every other path in the scripts is quoted for bash.
    for (flag, path) in [("--dir", logs), ("--dir", dir)] {
        let text = path.display().to_string();
        if text.chars().any(|c| c.is_whitespace() || c.is_control() || "%\"'\\".contains(c)) {
            return Err(Error::invalid(
                format!(
                    "{flag} {}: Slurm's #SBATCH --output cannot hold a path with spaces, quotes, '%' or control characters",
                    path.display()
                ),
                format!("{flag}: use a folder whose path has none of them"),
            ));
        }
    }
    for path in [store, report_out] {
        if path.display().to_string().chars().any(|c| c.is_control()) {
            return Err(Error::invalid(
                format!("the path {:?} holds a control character", path.display().to_string()),
                "use a path without newlines or tabs",
            ));
        }
    }
    Ok(())
}

/// The `#SBATCH` lines both jobs share: cores, time, memory, partition, GPU.
fn sbatch_header(o: &SlurmOptions) -> String {
    let mut header = vec![
        format!("#SBATCH --cpus-per-task={}", o.cpus_per_task),
        format!("#SBATCH --time={}", o.time),
        format!("#SBATCH --mem={}", o.mem),
    ];
    if let Some(p) = &o.partition {
        header.push(format!("#SBATCH --partition={p}"));
    }
    if o.gpu {
        header.push("#SBATCH --gres=gpu:1".into());
    }
    header.join("\n")
}

/// What the worker and report scripts share.
struct Scripts<'a> {
    /// The job name (from the study's hash).
    name: String,
    study_file: &'a Path,
    logs: &'a Path,
    header: String,
    /// The executable with its device, threads and seed.
    common: String,
    /// `--config ... --store ...`.
    which: String,
}

impl Scripts<'_> {
    /// The worker array's script.
    fn worker(&self, o: &SlurmOptions) -> String {
        let (name, header, common, which) = (&self.name, &self.header, &self.common, &self.which);
        let lead = o.signal_lead;
        let limit = o.max_running.map(|k| format!("%{k}")).unwrap_or_default();
        format!(
            r#"#!/usr/bin/env bash
# A worker of the study in {study}: takes steps with non-blocking locks on the shared store until
# every step is done. Slurm sends SIGUSR1 {lead} s before the time limit: the worker stops after
# the step in flight (a pre-training or IMP run after its next saved epoch) with exit status
# {stopped}, and this task requeues itself to resume.
#SBATCH --job-name={name}
#SBATCH --array=0-{last}{limit}
#SBATCH --output={logs}/worker-%A_%a.log
#SBATCH --open-mode=append
#SBATCH --signal=B:USR1@{lead}
#SBATCH --requeue
{header}
set -u
{common} study run --worker --worker-name "task ${{SLURM_ARRAY_TASK_ID:-0}}" {which} &
pid=$!
trap 'kill -USR1 $pid' USR1 TERM
rc=0; wait $pid || rc=$?
while kill -0 $pid 2>/dev/null; do rc=0; wait $pid || rc=$?; done
if [ "$rc" -eq {stopped} ]; then
  echo "stopped between steps; requeueing"
  scontrol requeue "${{SLURM_ARRAY_JOB_ID}}_${{SLURM_ARRAY_TASK_ID}}"
  exit 0
fi
exit $rc
"#,
            study = self.study_file.display(),
            lead = lead,
            last = o.tasks - 1,
            logs = self.logs.display(),
            stopped = doublewin::study::EXIT_STOPPED,
        )
    }

    /// The report job's script.
    fn report(&self, report_out: &Path) -> String {
        let (name, header, common, which) = (&self.name, &self.header, &self.common, &self.which);
        format!(
            r#"#!/usr/bin/env bash
# The report of the study in {study}, from the shared store only (submitted with
# --dependency=afterok on the worker array; it fails if a step is missing).
#SBATCH --job-name={name}-report
#SBATCH --output={logs}/report-%j.log
{header}
set -eu
{common} study report --require-done {which} --out {out}
"#,
            study = self.study_file.display(),
            logs = self.logs.display(),
            out = quote(report_out),
        )
    }
}

/// The longest `--time` accepted: a year (a larger value is a typo, and near u64's range the
/// arithmetic would wrap around).
const MAX_TIME_SECONDS: u64 = 365 * 86_400;

/// Seconds of a Slurm `--time` value: M, M:S, H:M:S, D-H, D-H:M or D-H:M:S.
pub fn time_limit_seconds(time: &str) -> Result<u64> {
    let bad = || {
        Error::invalid(
            format!("--time {time:?} is not a Slurm time limit"),
            "use minutes (90), MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS (e.g. 04:00:00)",
        )
    };
    let (days, rest) = match time.split_once('-') {
        Some((d, r)) => (d.parse::<u64>().map_err(|_| bad())?, r),
        None => (0, time),
    };
    let parts: Vec<u64> = rest.split(':').map(|p| p.parse::<u64>().map_err(|_| bad())).collect::<Result<_>>()?;
    let hms = |h: u64, m: u64, s: u64| h.checked_mul(3600)?.checked_add(m.checked_mul(60)?)?.checked_add(s);
    let seconds = match (time.contains('-'), parts.as_slice()) {
        (false, [m]) => hms(0, *m, 0),
        (false, [m, s]) => hms(0, *m, *s),
        (_, [h, m, s]) => hms(*h, *m, *s),
        (true, [h]) => hms(*h, 0, 0),
        (true, [h, m]) => hms(*h, *m, 0),
        _ => return Err(bad()),
    }
    .ok_or_else(bad)?;
    let total = days.checked_mul(86_400).and_then(|d| d.checked_add(seconds)).ok_or_else(bad)?;
    if total == 0 {
        return Err(bad());
    }
    if total > MAX_TIME_SECONDS {
        return Err(Error::invalid(
            format!("--time {time:?} is {total} s, beyond a year"),
            "use a limit a cluster grants, e.g. 04:00:00 (tasks requeue themselves at the limit)",
        ));
    }
    Ok(total)
}

/// Refuses a `--mem` value Slurm would not read: a positive integer with an optional K, M, G or
/// T suffix.
pub fn check_mem(mem: &str) -> Result<()> {
    let digits = mem.trim_end_matches(['K', 'M', 'G', 'T', 'k', 'm', 'g', 't']);
    let suffix = mem.len() - digits.len();
    if suffix > 1 || digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || digits.parse::<u64>().ok() == Some(0) {
        return Err(Error::invalid(
            format!("--mem {mem:?} is not a Slurm memory size"),
            "use a positive number with K, M, G or T, e.g. 8G",
        ));
    }
    Ok(())
}

fn format_hms(s: u64) -> String {
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// Submits the array, then the report with `--dependency=afterok:<array>`.
pub fn submit(mut s: Submission) -> Result<Submission> {
    let array = sbatch(&[], &s.worker_script)?;
    let report = sbatch(&[format!("--dependency=afterok:{array}")], &s.report_script)?;
    s.array_job = Some(array);
    s.report_job = Some(report);
    Ok(s)
}

/// Runs `sbatch --parsable ARGS SCRIPT`; returns the job id.
fn sbatch(args: &[String], script: &Path) -> Result<String> {
    let out = Command::new("sbatch").arg("--parsable").args(args).arg(script).output().map_err(|e| {
        Error::invalid(
            format!("cannot run sbatch: {e}"),
            "run on a Slurm login node (sbatch on PATH, SLURM_CONF set if needed), or submit the written scripts by hand",
        )
    })?;
    if !out.status.success() {
        return Err(Error::invalid(
            format!("sbatch {} failed: {}", script.display(), String::from_utf8_lossy(&out.stderr).trim()),
            "check the #SBATCH lines (partition, time, memory) against your cluster",
        ));
    }
    let id = String::from_utf8_lossy(&out.stdout).trim().split(';').next().unwrap_or_default().to_string();
    if id.is_empty() {
        return Err(Error::invalid(format!("sbatch {} printed no job id", script.display()), "check sbatch --parsable by hand"));
    }
    Ok(id)
}

/// Single-quotes a path for bash.
fn quote(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_limits_and_memory_sizes_are_read_as_slurm_reads_them() {
        assert_eq!(time_limit_seconds("90").unwrap(), 5400);
        assert_eq!(time_limit_seconds("10:30").unwrap(), 630);
        assert_eq!(time_limit_seconds("04:00:00").unwrap(), 14_400);
        assert_eq!(time_limit_seconds("1-02").unwrap(), 93_600);
        assert_eq!(time_limit_seconds("1-00:30").unwrap(), 88_200);
        assert_eq!(time_limit_seconds("2-00:00:10").unwrap(), 172_810);
        for bad in ["", "four hours", "1:2:3:4", "0", "-5", "1-", "10:xx"] {
            let e = time_limit_seconds(bad).unwrap_err().to_string();
            assert!(e.contains("--time") && e.contains("HH:MM:SS"), "{bad}: {e}");
        }
        for good in ["8G", "512M", "1024", "2T", "64k"] {
            check_mem(good).unwrap();
        }
        for bad in ["", "G", "8GB", "-1G", "0", "eight"] {
            assert!(check_mem(bad).unwrap_err().to_string().contains("--mem"), "{bad}");
        }
    }
}
