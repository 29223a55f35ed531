//! `infra init`: records where the configuration's state is kept, and —
//! when the `backend` block changed — copies the state from the old place
//! to the new one (`--migrate-state`, Terraform's flag), or takes the new
//! place as it is (`--reconfigure`).

use std::path::PathBuf;
use std::process::ExitCode;

use crate::diagnostics::ReportStyle;
use crate::events::Events;
use crate::state::migration::{BackendRecord, previous_backend, write_record};

use super::planning::{LockArgs, declared_backend, take_lock};

#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// Copy the state from the backend it was kept in to the one the configuration now names
    #[arg(long)]
    pub migrate_state: bool,
    /// With --migrate-state: overwrite a different state already in the new backend
    #[arg(long)]
    pub force_copy: bool,
    /// Use the backend the configuration names as it is, without copying anything
    #[arg(long, conflicts_with = "migrate_state")]
    pub reconfigure: bool,
    #[command(flatten)]
    pub lock: LockArgs,
    #[command(flatten)]
    pub variables: super::VariableArgs,
}

fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(1)
}

pub fn run(directory: Option<PathBuf>, args: &InitArgs, style: ReportStyle) -> ExitCode {
    let (dir, declared) = match declared_backend(directory, &args.variables, style) {
        Ok(found) => found,
        Err(code) => return code,
    };
    let configured = BackendRecord::of(declared.as_ref());
    let new = match crate::state::backend::resolve(&dir, declared) {
        Ok(backend) => backend,
        Err(message) => return fail(message),
    };
    let previous = if args.reconfigure {
        None
    } else {
        match previous_backend(&dir, &configured) {
            Ok(previous) => previous,
            Err(message) => return fail(message),
        }
    };
    let Some(previous) = previous else {
        // Nothing moved: make sure the state can be read here, and record it.
        if let Err(error) = new.read() {
            return fail(error);
        }
        if let Err(message) = write_record(&dir, &configured) {
            return fail(message);
        }
        println!("The state is kept in the {}.", new.describe());
        return ExitCode::SUCCESS;
    };
    if !args.migrate_state {
        return fail(format!(
            "the backend changed: the state was kept in the {}, and the configuration now names the {}\n  help: `infra init --migrate-state` copies the state there; `infra init --reconfigure` uses the new place as it is",
            previous.describe(),
            new.describe()
        ));
    }
    let old = match crate::state::backend::resolve(&dir, Some(previous.declared())) {
        Ok(backend) => backend,
        Err(message) => return fail(format!("the previous backend: {message}")),
    };
    // Both locked: no run may change either while the state moves.
    let _old_lock = match take_lock(
        old.as_ref(),
        "init --migrate-state",
        &args.lock,
        &Events::none(),
    ) {
        Ok(lock) => lock,
        Err(code) => return code,
    };
    let _new_lock = match take_lock(
        new.as_ref(),
        "init --migrate-state",
        &args.lock,
        &Events::none(),
    ) {
        Ok(lock) => lock,
        Err(code) => return code,
    };
    let moving = match old.read() {
        Ok(stored) => stored.state,
        Err(error) => return fail(format!("reading the state to copy: {error}")),
    };
    let Some(moving) = moving else {
        if let Err(message) = write_record(&dir, &configured) {
            return fail(message);
        }
        println!(
            "The {} holds no state: nothing to copy. The state is now kept in the {}.",
            old.describe(),
            new.describe()
        );
        return ExitCode::SUCCESS;
    };
    let there = match new.read() {
        Ok(stored) => stored,
        Err(error) => return fail(error),
    };
    if let Some(existing) = &there.state
        && *existing != moving
        && !args.force_copy
    {
        return fail(format!(
            "the {} already holds a state (lineage {}, {} resource(s)), not the one in the {}\n  help: check which one is current (`infra state pull` from each); `--force-copy` overwrites the new one",
            new.describe(),
            existing.lineage,
            existing.resources.len(),
            old.describe()
        ));
    }
    let holds_secrets = moving.resources.values().any(|r| !r.sensitive.is_empty())
        || moving.outputs.values().any(|o| o.sensitive);
    if holds_secrets && let Err(why) = new.may_write_secrets() {
        return fail(why);
    }
    if let Err(error) = new.save(&moving, &there.version) {
        return fail(error);
    }
    // Read back: what is there now must be what was copied.
    match new.read() {
        Ok(stored) if stored.state.as_ref() == Some(&moving) => {}
        Ok(_) => {
            return fail(format!(
                "the {} does not hold the copied state when read back; the old state is left as it was",
                new.describe()
            ));
        }
        Err(error) => return fail(error),
    }
    if let Err(message) = write_record(&dir, &configured) {
        return fail(message);
    }
    println!(
        "Copied the state ({} resource(s)) from the {} to the {}.\nThe old state is left as it was; remove it once you have checked the new one (`git rm` it if it is committed).",
        moving.resources.len(),
        old.describe(),
        new.describe()
    );
    ExitCode::SUCCESS
}
