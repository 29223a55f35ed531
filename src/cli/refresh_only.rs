//! `plan -refresh-only` and `apply -refresh-only` (Terraform's): accept
//! changes made outside infra into the state, on purpose and reviewed,
//! without changing any object. The plan shows the drift as `infra drift`
//! does; the apply asks (unless `-auto-approve`), then saves the refreshed
//! state under the lock — an object deleted outside infra leaves the state,
//! an edited one keeps its new attributes.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::diagnostics::ReportStyle;
use crate::events::Events;

use super::drift::{Compared, compare};
use super::planning::{PlanningArgs, fail, open};

/// Opens (locking for apply) and compares; none when there is no state.
fn compared(
    directory: Option<PathBuf>,
    planning: &PlanningArgs,
    lock_for: Option<&str>,
    style: ReportStyle,
) -> Result<Option<Compared>, ExitCode> {
    let opened = open(
        directory,
        &planning.variables,
        &[],
        lock_for.map(|operation| (operation, &planning.lock)),
        &Events::none(),
        style,
    )?;
    if !opened.version.exists() {
        println!("No state yet: there is nothing to refresh (apply creates the state).");
        return Ok(None);
    }
    compare(opened, planning.parallelism, style).map(Some)
}

fn show(compared: &Compared) {
    let (report, opened) = (&compared.report, &compared.opened);
    if report.has_drift() {
        println!(
            "Objects have changed outside infra; a refresh-only apply records this in the state:\n"
        );
    }
    print!("{}", report.render(&opened.options.schemas, &opened.state));
}

pub fn plan(
    directory: Option<PathBuf>,
    planning: &PlanningArgs,
    detailed_exitcode: bool,
    style: ReportStyle,
) -> ExitCode {
    let compared = match compared(directory, planning, None, style) {
        Ok(Some(compared)) => compared,
        Ok(None) => return ExitCode::SUCCESS,
        Err(code) => return code,
    };
    show(&compared);
    if compared.report.has_drift() {
        println!(
            "\nThis is a refresh-only plan: `infra apply -refresh-only` records these changes in the state and changes no object."
        );
        if detailed_exitcode {
            return ExitCode::from(super::exit::CHANGES);
        }
    }
    ExitCode::SUCCESS
}

pub fn apply(
    directory: Option<PathBuf>,
    planning: &PlanningArgs,
    auto_approve: bool,
    input: bool,
    style: ReportStyle,
) -> ExitCode {
    let compared = match compared(directory, planning, Some("apply -refresh-only"), style) {
        Ok(Some(compared)) => compared,
        Ok(None) => return ExitCode::SUCCESS,
        Err(code) => return code,
    };
    show(&compared);
    if !compared.report.has_drift() {
        return ExitCode::SUCCESS;
    }
    if !auto_approve && let Err(code) = super::apply::confirm("apply -refresh-only", input) {
        return code;
    }
    let opened = &compared.opened;
    if let Err(error) = opened.backend.save(&compared.refreshed, &opened.version) {
        return fail(error.to_string());
    }
    println!(
        "\nApply complete! The state now records {} change(s) made outside infra; no object was changed.",
        compared.report.drifted.len()
    );
    ExitCode::SUCCESS
}
