//! The `infra` binary: parse arguments, run the command, exit with its code.

use std::process::ExitCode;

use clap::Parser;

/// mimalloc: a cold `infra` run makes hundreds of thousands of small
/// allocations; at 100k resources it runs 1.4x faster than glibc's malloc
/// (see benches/parse_eval.rs and the README).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Deeply nested input is bounded by the parser, but a generous stack keeps
/// debug builds and large configurations far from the limit.
const MAIN_STACK_BYTES: usize = 256 << 20;

fn main() -> ExitCode {
    // Rust ignores SIGPIPE, which turns `infra plan | head` into a panic
    // when head exits; restore the default so infra stops quietly, as other
    // command-line tools do.
    #[cfg(unix)]
    // SAFETY: called first thing, before any other thread exists, with a
    // handler (the default) that touches no memory of ours.
    #[allow(unsafe_code)]
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let args = infra::cli::normalize_arguments(std::env::args());
    // A usage error exits 1, as every other error (clap's own code is 2,
    // which infra keeps for "changes" and "drift": a CI job with a typo
    // must fail, not report drift).
    let cli = match infra::cli::Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return ExitCode::from(if error.use_stderr() {
                infra::cli::exit::ERROR
            } else {
                infra::cli::exit::OK
            });
        }
    };
    std::thread::Builder::new()
        .name("infra".into())
        .stack_size(MAIN_STACK_BYTES)
        .spawn(move || infra::cli::run(cli))
        .expect("start the main thread")
        .join()
        .unwrap_or(ExitCode::from(101))
}
