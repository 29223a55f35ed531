//! Events as timestamped lines, for logs and CI (stdout is not a
//! terminal): `2026-11-30T08:15:02.123Z random_id.x: created in 0.4s`.

use std::io::Write as _;
use std::time::SystemTime;

use super::{Event, Renderer, seconds, timestamp};

/// Writes one line per event to stdout.
#[derive(Default)]
pub struct Plain;

impl Renderer for Plain {
    fn render(&self, at: SystemTime, event: &Event) {
        if let Some(line) = line(event) {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{} {line}", timestamp(at));
        }
    }
}

/// The text of an event, without its timestamp; `None` for events people
/// need not see.
pub(super) fn line(event: &Event) -> Option<String> {
    Some(match event {
        Event::WaitingForLock {
            holder,
            operation,
            since,
        } => {
            format!("Waiting for the state lock, held by {holder} for `{operation}` since {since}…")
        }
        Event::RefreshStarted { .. }
        | Event::RefreshFinished { .. }
        | Event::ApplyStarted { .. }
        | Event::ApplyFinished { .. } => return None,
        Event::Started { address, verb } => format!("{address}: {}…", verb.doing()),
        Event::Progress {
            address,
            verb,
            elapsed,
        } => format!(
            "{address}: still {}… [{}s elapsed]",
            verb.doing(),
            elapsed.as_secs()
        ),
        Event::Finished {
            address,
            verb,
            elapsed,
        } => format!("{address}: {} in {}", verb.done(), seconds(*elapsed)),
        Event::Failed {
            address,
            verb,
            elapsed,
            failure,
        } => format!(
            "{address}: {} failed after {}: {failure}",
            verb.doing(),
            seconds(*elapsed)
        ),
        Event::Skipped {
            address,
            verb,
            because,
        } => format!(
            "{address}: not {} (waits for {because}, which failed)",
            verb.done()
        ),
        Event::Note { message } => message.clone(),
        Event::Step { address, message } => format!("{address}: {message}"),
    })
}
