//! Ctrl-C (SIGINT) and SIGTERM before an apply starts changing things —
//! while reading the configuration, waiting for the lock, refreshing,
//! planning, asking for confirmation: nothing has changed, so infra
//! releases the state lock it holds and exits at once with 130 or 143
//! (128 + the signal), as the shell and CI expect. Once apply starts its
//! walk, its own handling takes over (`apply.rs`: start nothing new, let
//! what runs finish, save the state).

use std::sync::Once;
use std::sync::atomic::{AtomicBool, Ordering};

/// Whether an apply's walk runs (its own handler decides then).
static APPLYING: AtomicBool = AtomicBool::new(false);

/// Installs the handler (once per process; later calls do nothing). Returns
/// once the signals are caught.
pub fn install() {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        let (ready, installed) = std::sync::mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("stop-signals".into())
            .spawn(move || {
                let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    let _ = ready.send(());
                    return;
                };
                runtime.block_on(async {
                    use tokio::signal::unix::{SignalKind, signal};
                    let (Ok(mut interrupt), Ok(mut terminate)) = (
                        signal(SignalKind::interrupt()),
                        signal(SignalKind::terminate()),
                    ) else {
                        let _ = ready.send(());
                        return;
                    };
                    let _ = ready.send(());
                    loop {
                        let code = tokio::select! {
                            _ = interrupt.recv() => 130,
                            _ = terminate.recv() => 143,
                        };
                        if APPLYING.load(Ordering::SeqCst) {
                            continue;
                        }
                        crate::state::release_held_locks();
                        eprintln!(
                            "\nInterrupted before anything was changed; the state lock is released."
                        );
                        std::process::exit(code);
                    }
                });
            });
        if spawned.is_ok() {
            let _ = installed.recv();
        }
    });
}

/// While alive, an apply's walk runs and this handler stands aside.
pub struct Applying;

impl Applying {
    pub fn start() -> Applying {
        APPLYING.store(true, Ordering::SeqCst);
        Applying
    }
}

impl Drop for Applying {
    fn drop(&mut self) {
        APPLYING.store(false, Ordering::SeqCst);
    }
}
