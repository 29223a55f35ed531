//! Events on a terminal: finished changes scroll, and below them a spinner
//! per change in flight with its elapsed time, redrawn in place
//! (indicatif).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::{Event, Renderer};

pub struct Live {
    bars: MultiProgress,
    in_flight: Mutex<BTreeMap<String, ProgressBar>>,
    style: ProgressStyle,
}

impl Default for Live {
    fn default() -> Live {
        Live::new()
    }
}

impl Live {
    pub fn new() -> Live {
        let style = ProgressStyle::with_template("  {spinner:.dim} {msg:.dim} {elapsed:.dim}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
        Live {
            bars: MultiProgress::with_draw_target(ProgressDrawTarget::stdout()),
            in_flight: Mutex::new(BTreeMap::new()),
            style,
        }
    }

    fn println(&self, line: &str) {
        if self.bars.println(line).is_err() {
            println!("{line}");
        }
    }
}

impl Renderer for Live {
    fn render(&self, _at: SystemTime, event: &Event) {
        match event {
            Event::Started { address, verb } => {
                let bar = self.bars.add(ProgressBar::new_spinner());
                bar.set_style(self.style.clone());
                bar.set_message(format!("{address}: {}…", verb.doing()));
                bar.enable_steady_tick(Duration::from_millis(120));
                self.in_flight
                    .lock()
                    .expect("live view")
                    .insert(address.clone(), bar);
            }
            // The spinner shows the elapsed time already.
            Event::Progress { .. } => {}
            // Beside the change's spinner, and kept in the scrollback.
            Event::Step { address, message } => {
                if let Some(bar) = self.in_flight.lock().expect("live view").get(address) {
                    bar.set_message(format!("{address}: {message}"));
                }
                self.println(&format!("{address}: {message}"));
            }
            Event::Finished { address, .. }
            | Event::Failed { address, .. }
            | Event::Skipped { address, .. } => {
                if let Some(bar) = self.in_flight.lock().expect("live view").remove(address) {
                    bar.finish_and_clear();
                    self.bars.remove(&bar);
                }
                if let Some(line) = super::plain::line(event) {
                    self.println(&line);
                }
            }
            other => {
                if let Some(line) = super::plain::line(other) {
                    self.println(&line);
                }
            }
        }
    }

    fn close(&self) {
        for (_, bar) in std::mem::take(&mut *self.in_flight.lock().expect("live view")) {
            bar.finish_and_clear();
        }
        let _ = self.bars.clear();
    }
}
