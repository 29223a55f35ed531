//! What an apply prints while it runs.
//!
//! In CI (not a terminal), plain lines: `random_id.x: creating…`, then
//! `random_id.x: created in 0.4s`, and every 10 seconds a
//! `still creating… [20s elapsed]` line for long operations. On a
//! terminal, the same finished lines scroll, and below them a live block
//! lists the changes in flight with their elapsed time.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Create,
    Update,
    Destroy,
    Read,
}

impl Verb {
    pub fn doing(self) -> &'static str {
        match self {
            Verb::Create => "creating",
            Verb::Update => "updating",
            Verb::Destroy => "destroying",
            Verb::Read => "reading",
        }
    }

    pub fn done(self) -> &'static str {
        match self {
            Verb::Create => "created",
            Verb::Update => "updated",
            Verb::Destroy => "destroyed",
            Verb::Read => "read",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    Quiet,
    Plain,
    Live,
}

pub struct Progress {
    mode: ProgressMode,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    in_flight: BTreeMap<String, (Verb, Instant, u64)>,
    /// Lines of the live block currently on screen.
    drawn: usize,
}

/// At most this many in-flight lines in the live block.
const LIVE_LINES: usize = 8;
/// Plain mode repeats a still-running operation this often.
const STILL_EVERY: Duration = Duration::from_secs(10);

impl Progress {
    pub fn new(mode: ProgressMode) -> Progress {
        Progress {
            mode,
            inner: Mutex::new(Inner::default()),
        }
    }

    pub fn mode(&self) -> ProgressMode {
        self.mode
    }

    pub fn started(&self, address: &str, verb: Verb) {
        if self.mode == ProgressMode::Quiet {
            return;
        }
        let mut inner = self.inner.lock().expect("progress");
        inner
            .in_flight
            .insert(address.to_string(), (verb, Instant::now(), 0));
        let line = match self.mode {
            ProgressMode::Plain => Some(format!("{address}: {}…", verb.doing())),
            _ => None,
        };
        self.emit(&mut inner, line);
    }

    pub fn finished(&self, address: &str, verb: Verb, outcome: Result<(), &str>) {
        if self.mode == ProgressMode::Quiet {
            return;
        }
        let mut inner = self.inner.lock().expect("progress");
        let elapsed = inner
            .in_flight
            .remove(address)
            .map(|(_, since, _)| since.elapsed())
            .unwrap_or_default();
        let line = match outcome {
            Ok(()) => format!("{address}: {} in {}", verb.done(), seconds(elapsed)),
            Err(message) => format!(
                "{address}: {} failed after {}: {message}",
                verb.doing(),
                seconds(elapsed)
            ),
        };
        self.emit(&mut inner, Some(line));
    }

    /// A line outside the per-resource ones (interrupts, notes).
    pub fn note(&self, line: &str) {
        if self.mode == ProgressMode::Quiet {
            eprintln!("{line}");
            return;
        }
        let mut inner = self.inner.lock().expect("progress");
        self.emit(&mut inner, Some(line.to_string()));
    }

    /// Called periodically: redraws the live block, or prints the
    /// still-running lines in plain mode.
    pub fn tick(&self) {
        let mut inner = self.inner.lock().expect("progress");
        match self.mode {
            ProgressMode::Quiet => {}
            ProgressMode::Live => self.emit(&mut inner, None),
            ProgressMode::Plain => {
                let mut lines = Vec::new();
                for (address, (verb, since, reported)) in inner.in_flight.iter_mut() {
                    let periods = since.elapsed().as_secs() / STILL_EVERY.as_secs();
                    if periods > *reported {
                        *reported = periods;
                        lines.push(format!(
                            "{address}: still {}… [{}s elapsed]",
                            verb.doing(),
                            periods * STILL_EVERY.as_secs()
                        ));
                    }
                }
                let mut out = std::io::stdout().lock();
                for line in lines {
                    let _ = writeln!(out, "{line}");
                }
            }
        }
    }

    /// The addresses in flight now (what a second Ctrl-C abandons).
    pub fn in_flight(&self) -> Vec<String> {
        self.inner
            .lock()
            .expect("progress")
            .in_flight
            .keys()
            .cloned()
            .collect()
    }

    /// Clears the live block for good (before the summary).
    pub fn close(&self) {
        if self.mode != ProgressMode::Live {
            return;
        }
        let mut inner = self.inner.lock().expect("progress");
        let mut out = String::new();
        erase(&mut out, inner.drawn);
        inner.drawn = 0;
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(out.as_bytes());
        let _ = stdout.flush();
    }

    fn emit(&self, inner: &mut Inner, line: Option<String>) {
        let mut out = String::new();
        if self.mode == ProgressMode::Live {
            erase(&mut out, inner.drawn);
        }
        if let Some(line) = line {
            out.push_str(&line);
            out.push('\n');
        }
        if self.mode == ProgressMode::Live {
            let mut drawn = 0;
            for (address, (verb, since, _)) in inner.in_flight.iter().take(LIVE_LINES) {
                let _ = writeln!(
                    out,
                    "  \x1b[2m{address}: {}… {}\x1b[0m",
                    verb.doing(),
                    seconds_whole(since.elapsed())
                );
                drawn += 1;
            }
            if inner.in_flight.len() > LIVE_LINES {
                let _ = writeln!(
                    out,
                    "  \x1b[2m… and {} more in flight\x1b[0m",
                    inner.in_flight.len() - LIVE_LINES
                );
                drawn += 1;
            }
            inner.drawn = drawn;
        }
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(out.as_bytes());
        let _ = stdout.flush();
    }
}

/// Moves the cursor up over `lines` lines and clears to the end of screen.
fn erase(out: &mut String, lines: usize) {
    if lines > 0 {
        let _ = write!(out, "\x1b[{lines}F\x1b[J");
    }
}

/// `0.4s`, `12.0s`.
pub fn seconds(elapsed: Duration) -> String {
    format!("{:.1}s", elapsed.as_secs_f64())
}

fn seconds_whole(elapsed: Duration) -> String {
    format!("{}s", elapsed.as_secs())
}
