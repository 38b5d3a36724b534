//! `cargo bench`: the doublewin vs PyTorch benchmark through the library. Quick mode by default
//! (a check that it works); `DOUBLEWIN_BENCH=full cargo bench` for the full run, and
//! `DOUBLEWIN_BENCH_OUT=path.md` to write the Markdown report, `DOUBLEWIN_BENCH_ONLY=pgd,convnet`
//! to select workloads.

use doublewin_bench::{markdown_document, run, BenchConfig};
use std::process::ExitCode;

fn main() -> ExitCode {
    let full = std::env::var("DOUBLEWIN_BENCH").is_ok_and(|v| v == "full") || std::env::args().any(|a| a == "--full");
    let mut cfg = if full { BenchConfig::default() } else { BenchConfig::quick() };
    if let Ok(only) = std::env::var("DOUBLEWIN_BENCH_ONLY") {
        cfg.only = only.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
    }
    match run(&cfg) {
        Ok(report) => {
            println!("{report}");
            if let Some(out) = std::env::var_os("DOUBLEWIN_BENCH_OUT") {
                let args = vec!["cargo".to_string(), "bench".to_string()];
                if let Err(e) = doublewin::fsio::write_atomic(std::path::Path::new(&out), markdown_document(&report, &args).as_bytes()) {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
