//! Makes binaries, tests and benches of this crate find libtorch at run time and keep CUDA.
//!
//! * tch gives no rpath to the binaries that use it: without one they fail with
//!   "libtorch_cpu.so: cannot open shared object file" unless LD_LIBRARY_PATH is set.
//! * rustc links with `--as-needed`, which drops `libtorch_cuda.so` (nothing references it
//!   by symbol), so CUDA silently disappears on GPU machines (tch-rs #980, #907).
//!   `--no-as-needed -ltorch` keeps it. These flags reach only this crate's own link steps,
//!   never proc-macros (which is why they are not in RUSTFLAGS).
fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
        println!("cargo:rustc-link-search=native={lib}");
        if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
            println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
            println!("cargo:rustc-link-arg=-ltorch");
            println!("cargo:rustc-link-arg=-Wl,--as-needed");
        }
    }
}
