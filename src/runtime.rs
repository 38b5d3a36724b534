//! Runtime set-up: which device computations run on, how many CPU threads, and the seeding of
//! every random number generator the crate uses (libtorch's and our own [`Rng`]).

use crate::error::{Error, Result};

/// This crate's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The libtorch version tch 0.26 is built against.
pub const LIBTORCH_VERSION: &str = "2.13.0";
use std::sync::OnceLock;
use tch::Device;

/// Which device to run on. `Auto` picks CUDA when a GPU is usable, else the CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, Default)]
pub enum DeviceChoice {
    #[default]
    Auto,
    Cpu,
    Cuda(usize),
}

impl std::str::FromStr for DeviceChoice {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim().to_ascii_lowercase();
        match s.as_str() {
            "" | "auto" => Ok(DeviceChoice::Auto),
            "cpu" => Ok(DeviceChoice::Cpu),
            "cuda" | "gpu" => Ok(DeviceChoice::Cuda(0)),
            _ => s
                .strip_prefix("cuda:")
                .and_then(|i| i.parse().ok())
                .map(DeviceChoice::Cuda)
                .ok_or_else(|| Error::invalid(format!("unknown device '{s}'"), "use auto, cpu, cuda or cuda:N")),
        }
    }
}

static CUDA_BACKEND: OnceLock<bool> = OnceLock::new();

/// Loads libtorch's CUDA backend into the process if it is installed.
///
/// Binaries of this crate link it (see build.rs), but code built elsewhere, notably notebook
/// cells compiled by evcxr, does not: there `libtorch_cuda.so` must be opened with
/// RTLD_GLOBAL *before* the first CUDA query, because libtorch caches the answer.
/// Returns whether the library is loaded. Harmless on CPU-only machines.
pub fn load_cuda_backend() -> bool {
    *CUDA_BACKEND.get_or_init(|| {
        let name = c"libtorch_cuda.so";
        // SAFETY: dlopen with a valid C string; the handle is intentionally never closed.
        let handle = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
        !handle.is_null()
    })
}

/// Resolves a [`DeviceChoice`] into a libtorch device, checking that a requested GPU exists.
pub fn select_device(choice: DeviceChoice) -> Result<Device> {
    load_cuda_backend();
    match choice {
        DeviceChoice::Cpu => Ok(Device::Cpu),
        DeviceChoice::Auto => Ok(Device::cuda_if_available()),
        DeviceChoice::Cuda(i) => {
            let n = tch::Cuda::device_count() as usize;
            if i < n {
                Ok(Device::Cuda(i))
            } else if n == 0 {
                Err(Error::invalid(
                    format!("CUDA device {i} was requested but no GPU is usable (libtorch_cuda loaded: {})", load_cuda_backend()),
                    "use DeviceChoice::Cpu / --device cpu, or see environment.md (CUDA)",
                ))
            } else {
                Err(Error::invalid(format!("CUDA device {i} requested but only {n} present"), format!("use cuda:0 .. cuda:{}", n - 1)))
            }
        }
    }
}

/// doublewin's cache folder: `$DOUBLEWIN_CACHE`, else `doublewin` in `$XDG_CACHE_HOME` or
/// `~/.cache`. The data (`$DOUBLEWIN_DATA`, default `data` in it) and the experiment store
/// (`$DOUBLEWIN_STORE`, default `store` in it) live there unless set on their own.
pub fn cache_dir() -> std::path::PathBuf {
    if let Some(d) = std::env::var_os("DOUBLEWIN_CACHE").filter(|d| !d.is_empty()) {
        return d.into();
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| ".".into())).join(".cache"));
    cache.join("doublewin")
}

/// Process-wide settings. Create one with [`Runtime::new`] (or [`Runtime::from_env`]) at the start
/// of a program or notebook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Runtime {
    pub device: Device,
    pub threads: usize,
    pub seed: u64,
}

/// Keeps freed tensor memory in the process's heap (glibc only; once per process). libtorch's
/// CPU allocator takes every activation and gradient buffer from malloc; glibc serves blocks
/// above its mmap threshold (128 KiB at start, raised adaptively as blocks are freed) with fresh
/// mappings that it returns to the kernel on free, so a training step page-faults and zero-fills
/// its buffers again on every step, and how many depends on the threshold's history in that
/// process. Measured (`doublewin bench --only at-sparse-mul-convnet --no-peer --repeats 6`, five
/// processes each): medians 1106-1753 ms before, 1149-1207 ms with these thresholds. The cost is
/// up to [`TRIM_THRESHOLD`] of freed memory kept per process.
pub fn keep_freed_memory() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: mallopt only sets two of glibc's allocator parameters; it is called once, before
        // the caller allocates tensors, and any return value leaves malloc working as before.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
            libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
        }
    });
}

/// Blocks up to this size come from the heap, not from a fresh mapping (256 MiB: every
/// activation of the profiles' networks at their batch sizes).
const MMAP_THRESHOLD: i32 = 256 << 20;
/// Freed heap memory above this is returned to the kernel (1 GiB).
pub const TRIM_THRESHOLD: i32 = 1 << 30;

impl Runtime {
    /// Selects the device, sets the intra-op thread count (0 = libtorch's default) and seeds;
    /// keeps freed tensor memory in the heap ([`keep_freed_memory`]).
    pub fn new(device: DeviceChoice, threads: usize, seed: u64) -> Result<Runtime> {
        keep_freed_memory();
        check_threads(threads, "threads")?;
        let device = select_device(device)?;
        if threads > 0 {
            tch::set_num_threads(threads as i32);
        }
        seed_everything(seed);
        Ok(Runtime { device, threads: tch::get_num_threads().max(1) as usize, seed })
    }

    /// Reads `DOUBLEWIN_DEVICE` (auto|cpu|cuda|cuda:N), `DOUBLEWIN_THREADS` and `DOUBLEWIN_SEED`.
    pub fn from_env() -> Result<Runtime> {
        let device = std::env::var("DOUBLEWIN_DEVICE").unwrap_or_default().parse()?;
        let threads = env_number("DOUBLEWIN_THREADS", 0)?;
        check_threads(threads as usize, "DOUBLEWIN_THREADS")?;
        let seed = env_number("DOUBLEWIN_SEED", 0)?;
        Runtime::new(device, threads as usize, seed)
    }

    /// A one-line description, e.g. for reports.
    pub fn describe(&self) -> String {
        format!("device {:?}, {} CPU threads, seed {}, libtorch {}", self.device, self.threads, self.seed, LIBTORCH_VERSION)
    }
}

/// Set when the process is asked to stop (SIGTERM / SIGUSR1 in the CLI, or a caller): a study
/// stops after the step in flight, and a resumable training loop after its next saved epoch.
static STOP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Asks every running study and resumable training loop of this process to stop at the next
/// point it can resume from. Async-signal-safe (one atomic store): a signal handler may call it.
pub fn request_stop() {
    STOP.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Whether [`request_stop`] was called.
pub fn stop_requested() -> bool {
    STOP.load(std::sync::atomic::Ordering::Relaxed)
}

/// The flag behind [`request_stop`], for [`crate::study::RunOptions::stop`].
pub fn stop_flag() -> &'static std::sync::atomic::AtomicBool {
    &STOP
}

/// The CPU cores this process may use (its affinity mask or cgroup quota; 1 when unknown).
pub fn available_cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// Refuses a thread count above the cores this process may use (libgomp aborts, then segfaults,
/// then overflows its stack as the count grows); `source` names where the value came from.
pub fn check_threads(threads: usize, source: &str) -> Result<()> {
    let cores = available_cores();
    if threads > cores {
        return Err(Error::invalid(
            format!("{source} = {threads}, but this process may use {cores} CPU core(s)"),
            format!("use at most {cores} (0 = libtorch's default, one thread per core)"),
        ));
    }
    Ok(())
}

fn env_number(name: &str, default: u64) -> Result<u64> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse()
            .map_err(|_| Error::invalid(format!("{name}='{v}' is not a non-negative integer"), format!("unset {name} or give a number"))),
        _ => Ok(default),
    }
}

/// Seeds libtorch's generators (CPU and all GPUs). Our own [`Rng`]s are seeded explicitly.
pub fn seed_everything(seed: u64) {
    tch::manual_seed(seed as i64);
}

/// A small, fast, seedable generator (SplitMix64) for the data pipeline: shuffles, splits,
/// crops. Owning it (instead of using libtorch's global generator) keeps data order identical
/// on CPU and GPU and independent of how many random numbers the model consumed.
#[derive(Debug, Clone)]
pub struct Rng {
    state: u64,
}

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng { state: seed ^ 0x5DEE_CE66_D1CE_4E5B }
    }

    /// A generator derived from this seed and a label, e.g. `Rng::derive(seed, "val-split")`,
    /// so different uses of one seed do not share a stream.
    pub fn derive(seed: u64, label: &str) -> Rng {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in label.bytes() {
            h = (h ^ b as u64).wrapping_mul(0x100_0000_01b3);
        }
        Rng::new(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ h)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0), without modulo bias worth caring about for n << 2^64.
    pub fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }

    /// Fisher-Yates shuffle.
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i + 1);
            v.swap(i, j);
        }
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.uniform().max(f64::MIN_POSITIVE);
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// A float tensor of `shape` on `device` with entries uniform in [lo, hi), drawn from this
    /// generator on the CPU, so the values are the same on every device.
    pub fn uniform_tensor(&mut self, shape: &[i64], lo: f64, hi: f64, device: tch::Device) -> Result<tch::Tensor> {
        let n: i64 = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| (lo + (hi - lo) * self.uniform()) as f32).collect();
        Ok(tch::Tensor::from_slice(&v).f_reshape(shape)?.f_to_device(device)?)
    }

    /// A float tensor of standard normal entries (see [`Rng::uniform_tensor`]).
    pub fn normal_tensor(&mut self, shape: &[i64], device: tch::Device) -> Result<tch::Tensor> {
        let n: i64 = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| self.normal() as f32).collect();
        Ok(tch::Tensor::from_slice(&v).f_reshape(shape)?.f_to_device(device)?)
    }

    /// A random permutation of `0..n`.
    pub fn permutation(&mut self, n: usize) -> Vec<i64> {
        let mut v: Vec<i64> = (0..n as i64).collect();
        self.shuffle(&mut v);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_choice_parses() {
        assert_eq!("cpu".parse::<DeviceChoice>().unwrap(), DeviceChoice::Cpu);
        assert_eq!("cuda:1".parse::<DeviceChoice>().unwrap(), DeviceChoice::Cuda(1));
        assert_eq!("".parse::<DeviceChoice>().unwrap(), DeviceChoice::Auto);
        let err = "tpu".parse::<DeviceChoice>().unwrap_err().to_string();
        assert!(err.contains("tpu") && err.contains("cuda:N"), "{err}");
    }

    #[test]
    fn rng_is_deterministic_and_permutes() {
        let a = Rng::derive(7, "x").permutation(100);
        let b = Rng::derive(7, "x").permutation(100);
        let c = Rng::derive(7, "y").permutation(100);
        assert_eq!(a, b);
        assert_ne!(a, c);
        let mut s = a.clone();
        s.sort();
        assert_eq!(s, (0..100).collect::<Vec<_>>());
    }
}
