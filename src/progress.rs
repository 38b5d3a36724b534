//! Progress reporting. Library code never prints: it reports what it is doing as an [`Event`] to
//! the process's [`Observer`] ([`emit`]), and a renderer turns events into lines. The default
//! renderer is [`Lines`]: on a terminal it redraws a live line within an epoch or a download
//! (`\r`); elsewhere (a notebook, where evcxr shows output line by line, or a log file) it prints
//! whole lines only, at most one every ten seconds within a long epoch; in a notebook, a study
//! shows one line per step (its epochs and notes are left out: a grid of hundreds of steps would
//! bury the cell's result). [`Silent`] and
//! [`Recorder`] (which keeps the lines, for tests) are the other two; implement [`Observer`]
//! for anything else and install it with [`set_observer`].

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Where a training run is within an epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchInfo {
    pub epoch: usize,
    pub epochs: usize,
    pub batch: usize,
    pub batches: usize,
}

/// The numbers of a finished training epoch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpochSummary {
    pub epoch: usize,
    pub train_loss: f64,
    pub train_accuracy: f64,
    /// Validation loss and accuracy, on the epochs the run validates.
    pub val: Option<(f64, f64)>,
    pub lr: f64,
    pub seconds: f64,
}

/// Something the library is doing or has done.
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    /// A training batch finished (`label` names the run).
    Batch { label: &'a str, info: BatchInfo },
    /// A training epoch finished.
    Epoch { label: &'a str, summary: EpochSummary },
    /// A study's plan: how many steps it has and how many the store already holds.
    StudyPlanned { total: usize, stored: usize },
    /// A study step starts (`done` of the `total` steps are done, by any worker).
    StepStarted { done: usize, total: usize, kind: &'a str, label: &'a str },
    /// A study step was computed; `eta` estimates the seconds left for the steps still to do
    /// (NaN until every kind of step left has been timed once).
    StepFinished { done: usize, total: usize, label: &'a str, seconds: f64, eta: f64 },
    /// A study finished: steps computed now and steps read from the store.
    StudyFinished { computed: usize, stored: usize, seconds: f64 },
    /// A download advanced (`total` when the server said).
    Download { name: &'a str, done: u64, total: Option<u64>, finished: bool },
    /// A line worth showing (an IMP round, a landscape row, a resumed run).
    Note(&'a str),
    /// Something the user should look at; never fatal.
    Warning(&'a str),
}

/// Receives every [`Event`] of the process.
pub trait Observer: Send {
    fn event(&mut self, event: &Event);
}

/// Prints events as lines (see the module comment).
#[derive(Debug)]
pub struct Lines {
    live: bool,
    /// Inside a study, show step lines and warnings only.
    steps_only: bool,
    in_study: bool,
    prefix: String,
    /// Write to stderr instead of stdout (a command whose stdout carries a JSON document).
    stderr: bool,
    last: Instant,
    epoch_started: Instant,
}

impl Lines {
    /// Live `\r` redraws within epochs and downloads: for terminals.
    pub fn terminal() -> Lines {
        Lines {
            live: true,
            steps_only: false,
            in_study: false,
            prefix: String::new(),
            stderr: false,
            last: Instant::now(),
            epoch_started: Instant::now(),
        }
    }
    /// Whole lines only, one per step inside a study: for notebooks.
    pub fn notebook() -> Lines {
        Lines { live: false, steps_only: true, ..Lines::terminal() }
    }
    /// Whole lines only, every epoch: for log files (cluster workers).
    pub fn log() -> Lines {
        Lines { live: false, ..Lines::terminal() }
    }
    /// [`Lines::notebook`] in an evcxr kernel, [`Lines::terminal`] on a terminal, else
    /// [`Lines::log`].
    pub fn detect() -> Lines {
        if std::env::var_os("EVCXR_IS_RUNTIME").is_some() {
            Lines::notebook()
        } else if std::io::stdout().is_terminal() {
            Lines::terminal()
        } else {
            Lines::log()
        }
    }

    /// [`Lines::detect`] for stderr: every line goes there, stdout stays free for one JSON
    /// document (`--json`).
    pub fn detect_stderr() -> Lines {
        let lines = if std::io::stderr().is_terminal() { Lines::terminal() } else { Lines::log() };
        Lines { stderr: true, ..lines }
    }

    /// Starts every line with `prefix` (e.g. "[worker 2] " when several processes print).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Lines {
        self.prefix = prefix.into();
        self
    }

    /// Lines within a long operation: live ones every 250 ms, else one every ten seconds.
    fn due(&mut self) -> bool {
        let every = if self.live { Duration::from_millis(250) } else { Duration::from_secs(10) };
        let due = self.last.elapsed() >= every;
        if due {
            self.last = Instant::now();
        }
        due
    }

    fn out(&self) -> Box<dyn Write> {
        if self.stderr {
            Box::new(std::io::stderr().lock())
        } else {
            Box::new(std::io::stdout().lock())
        }
    }

    fn partial(&self, text: &str) {
        let mut out = self.out();
        if self.live {
            let _ = write!(out, "\r{}{text}   ", self.prefix);
        } else {
            let _ = writeln!(out, "{}{text}", self.prefix);
        }
        let _ = out.flush();
    }

    fn line(&self, text: &str) {
        let clear = if self.live { "\r" } else { "" };
        let mut out = self.out();
        let _ = writeln!(out, "{clear}{}{text}", self.prefix);
        let _ = out.flush();
    }
}

/// "4m 05s", "12.3s".
pub fn format_seconds(s: f64) -> String {
    if s >= 60.0 {
        let s = s.round() as u64;
        format!("{}m {:02}s", s / 60, s % 60)
    } else {
        format!("{s:.1}s")
    }
}

impl Observer for Lines {
    fn event(&mut self, event: &Event) {
        match *event {
            Event::StudyPlanned { total, stored } => self.in_study = stored < total,
            Event::StudyFinished { .. } => self.in_study = false,
            _ => {}
        }
        if self.steps_only && self.in_study && matches!(event, Event::Batch { .. } | Event::Epoch { .. } | Event::Note(_)) {
            return;
        }
        match *event {
            Event::Batch { label, info } => {
                if info.batch == 1 {
                    self.epoch_started = Instant::now();
                }
                if info.batch < info.batches && self.due() {
                    let left = self.epoch_started.elapsed().as_secs_f64() * (info.batches - info.batch) as f64 / info.batch as f64;
                    self.partial(&format!(
                        "{label} epoch {}/{}: {:3.0}% ({}/{} batches, ~{} left)",
                        info.epoch,
                        info.epochs,
                        100.0 * info.batch as f64 / info.batches as f64,
                        info.batch,
                        info.batches,
                        format_seconds(left)
                    ));
                }
            }
            Event::Epoch { label, summary: r } => self.line(&format!(
                "{label} epoch {:>3}: train loss {:.4} acc {:6.2}% | {} | lr {:.4} | {:.1}s",
                r.epoch,
                r.train_loss,
                100.0 * r.train_accuracy,
                match r.val {
                    Some((loss, acc)) => format!("val loss {loss:.4} acc {:6.2}%", 100.0 * acc),
                    None => "not validated".to_string(),
                },
                r.lr,
                r.seconds
            )),
            Event::StudyPlanned { total, stored } => self.line(&if stored == total {
                format!("[study] {total} steps, all in the store")
            } else {
                format!("[study] {total} steps: {stored} in the store, {} to compute", total - stored)
            }),
            Event::StepStarted { done, total, kind, label } => {
                self.line(&format!("[study {}/{total}] {kind}: {label}", done + 1));
            }
            Event::StepFinished { done, total, label, seconds, eta } => {
                let eta = if done < total && eta.is_finite() { format!(", about {} left", format_seconds(eta)) } else { String::new() };
                self.line(&format!("[study {done}/{total}] done in {}: {label}{eta}", format_seconds(seconds)));
            }
            // Nothing computed: the plan's line already said everything was in the store.
            Event::StudyFinished { computed: 0, .. } => {}
            Event::StudyFinished { computed, stored, seconds } => self.line(&format!(
                "[study] {} steps: {computed} computed in {}, {stored} from the store",
                computed + stored,
                format_seconds(seconds)
            )),
            Event::Download { name, done, total, finished } => {
                let mb = done as f64 / 1e6;
                if finished {
                    self.line(&format!("{name}: {mb:.1} MB downloaded"));
                } else if self.due() {
                    self.partial(&match total {
                        Some(t) => format!("{name}: {mb:.1}/{:.1} MB ({:.0}%)", t as f64 / 1e6, 100.0 * done as f64 / t.max(1) as f64),
                        None => format!("{name}: {mb:.1} MB"),
                    });
                }
            }
            Event::Note(text) => self.line(text),
            Event::Warning(text) => self.line(&format!("warning: {text}")),
        }
    }
}

/// Drops every event.
#[derive(Debug, Default)]
pub struct Silent;

impl Observer for Silent {
    fn event(&mut self, _: &Event) {}
}

/// Keeps the lines [`Lines::notebook`] would print (batch lines excepted), for tests and for
/// showing a run's log afterwards. Clones share the same lines.
#[derive(Debug, Clone, Default)]
pub struct Recorder {
    lines: Arc<Mutex<Vec<String>>>,
}

impl Recorder {
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Observer for Recorder {
    fn event(&mut self, event: &Event) {
        let text = match *event {
            Event::Batch { .. } | Event::Download { finished: false, .. } => return,
            Event::Epoch { label, summary } => format!("{label} epoch {}", summary.epoch),
            Event::StudyPlanned { total, stored } => format!("planned {total} stored {stored}"),
            Event::StepStarted { kind, label, .. } => format!("started {kind}: {label}"),
            Event::StepFinished { label, .. } => format!("finished {label}"),
            Event::StudyFinished { computed, stored, .. } => format!("finished study: computed {computed} stored {stored}"),
            Event::Download { name, .. } => format!("downloaded {name}"),
            Event::Note(t) => t.to_string(),
            Event::Warning(t) => format!("warning: {t}"),
        };
        self.lines.lock().unwrap_or_else(|p| p.into_inner()).push(text);
    }
}

static OBSERVER: Mutex<Option<Box<dyn Observer>>> = Mutex::new(None);

/// Installs `observer` for the whole process; returns the one it replaces (`None`: the default
/// [`Lines::detect`]).
pub fn set_observer(observer: Box<dyn Observer>) -> Option<Box<dyn Observer>> {
    OBSERVER.lock().unwrap_or_else(|p| p.into_inner()).replace(observer)
}

/// Reports `event` to the process's observer.
pub fn emit(event: &Event) {
    let mut slot = OBSERVER.lock().unwrap_or_else(|p| p.into_inner());
    slot.get_or_insert_with(|| Box::new(Lines::detect())).event(event);
}

/// [`emit`] of a [`Event::Note`].
pub fn note(text: &str) {
    emit(&Event::Note(text));
}

/// [`emit`] of a [`Event::Warning`].
pub fn warn(text: &str) {
    emit(&Event::Warning(text));
}
