//! `infra state list | show | rm | mv | rekey | pull | push | merge` and
//! `infra force-unlock`:
//! inspecting and editing the state file, under its lock, and merging two
//! branches' states (git's merge driver).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::diagnostics::{ReportStyle, did_you_mean};
use crate::eval::Value;
use crate::events::Events;
use crate::state::{Backend, State, covers};

use super::planning::{LockArgs, open_backend, take_lock};

#[derive(Debug, clap::Args)]
pub struct StateArgs {
    #[command(subcommand)]
    pub command: StateCommand,
    #[command(flatten)]
    pub lock: LockArgs,
    #[command(flatten)]
    pub variables: super::VariableArgs,
}

#[derive(Debug, clap::Subcommand)]
pub enum StateCommand {
    /// List the addresses in the state
    List,
    /// Show the recorded attributes of one resource instance
    Show {
        address: String,
        /// Print sensitive values instead of `(sensitive)`
        #[arg(long)]
        show_sensitive: bool,
    },
    /// Forget resource instances (the real objects are left alone)
    Rm {
        #[arg(required = true)]
        addresses: Vec<String>,
    },
    /// Move a resource instance, or every resource of a module (`module.net` → `module.net["a"]`), to another address (after renaming it in the configuration)
    Mv { from: String, to: String },
    /// Seal every secret of the state with the current key (rotation: the old one in INFRA_STATE_PREVIOUS_KEY)
    Rekey,
    /// Print the state as the backend stores it (secrets stay sealed)
    Pull,
    /// Replace the backend's state with FILE (`-`: stdin); refuses another lineage, or a state that would forget resources, unless --force
    Push {
        file: PathBuf,
        /// Push even when the lineage differs or resources would be forgotten
        #[arg(long)]
        force: bool,
    },
    /// Merge two states resource by resource into OURS (git's merge driver: `state merge %O %A %B`)
    Merge {
        /// The common ancestor (an empty file when both branches added the state)
        base: PathBuf,
        /// Our state; the merge is written here
        ours: PathBuf,
        /// Their state
        theirs: PathBuf,
    },
}

fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(1)
}

pub(super) fn open(backend: &dyn Backend) -> Result<(State, crate::state::StateVersion), ExitCode> {
    match backend.read() {
        Ok(crate::state::StoredState {
            state: Some(state),
            version,
            recovery,
        }) => {
            for create in &recovery.pending {
                eprintln!(
                    "warning: an interrupted run was creating `{}` and never recorded it; `infra plan` looks for it (run it before changing the state by hand)",
                    create.address
                );
            }
            Ok((state, version))
        }
        Ok(_) => Err(fail(format!(
            "no state yet ({})\n  help: nothing has been applied with this configuration yet",
            backend.describe()
        ))),
        Err(error) => Err(fail(error)),
    }
}

pub(super) fn unknown_address(state: &State, address: &str) -> ExitCode {
    let help = did_you_mean(address, state.resources.keys().map(String::as_str))
        .unwrap_or_else(|| "`infra state list` shows the addresses".into());
    fail(format!("`{address}` is not in the state\n  help: {help}"))
}

/// One resource of the state for people: its attributes, secrets hidden
/// unless `show_sensitive`, and what it depends on.
pub(super) fn describe(
    address: &str,
    resource: &crate::state::ResourceState,
    show_sensitive: bool,
) -> String {
    use std::fmt::Write as _;
    let mut out = format!(
        "# {address} ({}, provider {})\n",
        resource.type_name, resource.provider
    );
    let width = resource
        .attributes
        .keys()
        .map(|k| k.len())
        .max()
        .unwrap_or(0);
    for (name, value) in &resource.attributes {
        let value = Value::from_json(value);
        if show_sensitive {
            let _ = writeln!(out, "{name:width$} = {value}");
        } else {
            let shown = crate::eval::shown_redacted(&value, name, &resource.sensitive);
            let _ = writeln!(out, "{name:width$} = {shown}");
        }
    }
    if !resource.dependencies.is_empty() {
        let _ = writeln!(out, "# depends on {}", resource.dependencies.join(", "));
    }
    out
}

pub fn run(directory: Option<PathBuf>, args: &StateArgs, style: ReportStyle) -> ExitCode {
    if let StateCommand::Merge { base, ours, theirs } = &args.command {
        // Paths as git gives them, from where it runs: no configuration.
        return merge_files(base, ours, theirs);
    }
    let backend = match open_backend(directory, &args.variables, style) {
        Ok(backend) => backend,
        Err(code) => return code,
    };
    let backend = backend.as_ref();
    match &args.command {
        StateCommand::List => match open(backend) {
            Ok((state, _)) => {
                for address in state.resources.keys() {
                    println!("{address}");
                }
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        StateCommand::Show {
            address,
            show_sensitive,
        } => {
            let state = match open(backend) {
                Ok((state, _)) => state,
                Err(code) => return code,
            };
            let Some(resource) = state.resources.get(address) else {
                return unknown_address(&state, address);
            };
            print!("{}", describe(address, resource, *show_sensitive));
            ExitCode::SUCCESS
        }
        StateCommand::Rm { addresses } => edit(backend, "state rm", &args.lock, |state| {
            for address in addresses {
                if !state.resources.contains_key(address) {
                    return Err(unknown_address(state, address));
                }
            }
            for address in addresses {
                state.resources.remove(address);
                println!("Removed {address} (the real object is left alone)");
            }
            Ok(())
        }),
        StateCommand::Mv { from, to } => edit(backend, "state mv", &args.lock, |state| {
            // One instance, or every resource inside a module (instance):
            // `module.net` → `module.net["a"]` moves `module.net.x.y` to
            // `module.net["a"].x.y`.
            let moves: Vec<(String, String)> = if state.resources.contains_key(from) {
                vec![(from.clone(), to.clone())]
            } else if from.starts_with("module.") && to.starts_with("module.") {
                let prefix = format!("{from}.");
                state
                    .resources
                    .range(prefix.clone()..)
                    .take_while(|(address, _)| address.starts_with(&prefix))
                    .map(|(address, _)| {
                        (
                            address.clone(),
                            format!("{to}.{}", &address[prefix.len()..]),
                        )
                    })
                    .collect()
            } else {
                Vec::new()
            };
            if moves.is_empty() {
                return Err(unknown_address(state, from));
            }
            if let Some((_, taken)) = moves
                .iter()
                .find(|(_, to)| state.resources.contains_key(to))
            {
                return Err(fail(format!(
                    "`{taken}` is already in the state\n  help: remove it first with `infra state rm {taken}`"
                )));
            }
            for (from, to) in &moves {
                let resource = state.resources.remove(from).expect("listed above");
                state.resources.insert(to.clone(), resource);
            }
            for other in state.resources.values_mut() {
                // A dependency on what moved follows it; one on a whole
                // resource (or module) it was part of still holds for the
                // rest and gains the new address.
                let mut followed = Vec::new();
                other.dependencies.retain(|dependency| {
                    for (from, to) in &moves {
                        if covers(dependency, from) {
                            followed.push(to.clone());
                        }
                    }
                    !moves.iter().any(|(from, _)| dependency == from)
                });
                for to in followed {
                    if !other.dependencies.contains(&to) {
                        other.dependencies.push(to);
                    }
                }
            }
            for (from, to) in &moves {
                println!("Moved {from} to {to}");
            }
            Ok(())
        }),
        StateCommand::Rekey => {
            if !backend.seals() {
                return fail(format!(
                    "no key to seal with\n  help: set `{}` (32 random bytes in base64: `openssl rand -base64 32`), `{}` or the backend's `key_file`; the key the state is sealed with now goes in `{}`",
                    crate::state::sealing::KEY_VARIABLE,
                    crate::state::sealing::PASSPHRASE_VARIABLE,
                    crate::state::sealing::PREVIOUS_KEY_VARIABLE,
                ));
            }
            // Read opens with either key; the save seals with the current one.
            edit(backend, "state rekey", &args.lock, |state| {
                let secrets = state
                    .resources
                    .values()
                    .map(|r| {
                        r.sensitive
                            .iter()
                            .filter(|path| {
                                crate::eval::SensitivePath::parse(path)
                                    .find_json(&r.attributes)
                                    .is_some_and(|v| !v.is_null())
                            })
                            .count()
                    })
                    .sum::<usize>()
                    + state.outputs.values().filter(|o| o.sensitive).count();
                println!("Sealed {secrets} secret values with the current key");
                Ok(())
            })
        }
        StateCommand::Pull => match open(backend) {
            Ok((state, _)) => {
                print!("{}", backend.sealed(&state).to_canonical_json());
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        StateCommand::Push { file, force } => push(backend, file, *force, &args.lock),
        StateCommand::Merge { .. } => unreachable!("merged before a backend is opened"),
    }
}

/// `infra state merge BASE OURS THEIRS`: exit 0 with the merge in OURS, or
/// 1 — conflicts written into OURS between git's markers, or nothing
/// written when the states cannot be merged at all.
fn merge_files(base: &Path, ours: &Path, theirs: &Path) -> ExitCode {
    let read = |path: &Path| -> Result<Option<State>, String> {
        match std::fs::read_to_string(path) {
            // git gives an empty base when both branches added the state.
            Ok(text) if text.trim().is_empty() => Ok(None),
            Ok(_) => crate::state::load(path).map_err(|error| error.to_string()),
            Err(error) => Err(format!("cannot read `{}`: {error}", path.display())),
        }
    };
    let (base, ours_state, theirs_state) = match (read(base), read(ours), read(theirs)) {
        (Ok(base), Ok(Some(ours)), Ok(Some(theirs))) => (base, ours, theirs),
        (Ok(_), Ok(_), Ok(_)) => return fail("OURS and THEIRS must both be states"),
        (Err(error), _, _) | (_, Err(error), _) | (_, _, Err(error)) => return fail(error),
    };
    let merged = match crate::state::merge::merge(base.as_ref(), &ours_state, &theirs_state) {
        Ok(merged) => merged,
        Err(error) => return fail(format!("{error}\n  help: merge this file by hand")),
    };
    let text = crate::state::merge::merged_text(&merged);
    if let Err(error) = infra_provider_sdk::host::write_atomically(ours, text.as_bytes(), 0o600) {
        return fail(format!(
            "cannot write `{}`: {}",
            ours.display(),
            error.error
        ));
    }
    if merged.conflicts.is_empty() {
        return ExitCode::SUCCESS;
    }
    for conflict in &merged.conflicts {
        eprintln!("conflict: {}", conflict.describe());
    }
    eprintln!(
        "  help: {} changed on both branches: keep one side between the markers in `{}` (run `infra plan` after), then `git add` it",
        if merged.conflicts.len() == 1 {
            "it was"
        } else {
            "they were"
        },
        ours.display()
    );
    ExitCode::from(1)
}

/// Changes the state under its lock and saves it (keeping a backup).
fn edit(
    backend: &dyn Backend,
    operation: &str,
    lock: &LockArgs,
    change: impl FnOnce(&mut State) -> Result<(), ExitCode>,
) -> ExitCode {
    let _lock = match take_lock(backend, operation, lock, &Events::none()) {
        Ok(lock) => lock,
        Err(code) => return code,
    };
    let (mut state, version) = match open(backend) {
        Ok(opened) => opened,
        Err(code) => return code,
    };
    if let Err(code) = change(&mut state) {
        return code;
    }
    match backend.save(&state, &version) {
        Ok(_) => ExitCode::SUCCESS,
        Err(error) => fail(error),
    }
}

/// `infra state push FILE`: the backend's state replaced by FILE's, under
/// the lock and compare-and-swap. infra states carry no serial number (it
/// would conflict in every git merge), so "older" is judged by what would
/// be lost: a push that would forget resources the backend tracks, or
/// bring a state of another lineage, needs `--force`.
fn push(backend: &dyn Backend, file: &Path, force: bool, lock: &LockArgs) -> ExitCode {
    let text = if file == Path::new("-") {
        let mut text = String::new();
        if let Err(error) = std::io::Read::read_to_string(&mut std::io::stdin(), &mut text) {
            return fail(format!("cannot read the state from stdin: {error}"));
        }
        text
    } else {
        match std::fs::read_to_string(file) {
            Ok(text) => text,
            Err(error) => return fail(format!("cannot read `{}`: {error}", file.display())),
        }
    };
    let mut pushed = match crate::state::parse(file, &text) {
        Ok(state) => state,
        Err(error) => return fail(error),
    };
    if let Err(error) = backend.open_secrets(&mut pushed) {
        return fail(format!(
            "{error}\n  (in `{}`: a state is pushed with the key it is sealed with)",
            file.display()
        ));
    }
    let holds_secrets = pushed.resources.values().any(|r| !r.sensitive.is_empty())
        || pushed.outputs.values().any(|o| o.sensitive);
    if holds_secrets && let Err(why) = backend.may_write_secrets() {
        return fail(why);
    }
    let _lock = match take_lock(backend, "state push", lock, &Events::none()) {
        Ok(lock) => lock,
        Err(code) => return code,
    };
    let stored = match backend.read() {
        Ok(stored) => stored,
        Err(error) => return fail(error),
    };
    if let Some(current) = &stored.state
        && !force
    {
        if current.lineage != pushed.lineage {
            return fail(format!(
                "`{}` is another state (lineage {}) than the one in the {} (lineage {})\n  help: check that you push to the right backend; `--force` replaces it anyway",
                file.display(),
                pushed.lineage,
                backend.describe(),
                current.lineage
            ));
        }
        let forgotten: Vec<&String> = current
            .resources
            .keys()
            .filter(|address| !pushed.resources.contains_key(*address))
            .collect();
        if !forgotten.is_empty() {
            let shown: Vec<&str> = forgotten.iter().take(5).map(|a| a.as_str()).collect();
            let more = forgotten.len().saturating_sub(shown.len());
            return fail(format!(
                "pushing `{}` would forget {} resource(s) the {} tracks: {}{}\n  help: the file is older than the stored state; `infra state pull` the current one, or push with `--force` if forgetting them is what you want",
                file.display(),
                forgotten.len(),
                backend.describe(),
                shown.join(", "),
                if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                }
            ));
        }
    }
    match backend.save(&pushed, &stored.version) {
        Ok(_) => {
            println!(
                "Pushed {} resource(s) to the {}",
                pushed.resources.len(),
                backend.describe()
            );
            ExitCode::SUCCESS
        }
        Err(error) => fail(error),
    }
}

/// `infra force-unlock ID`.
pub fn force(directory: Option<PathBuf>, id: &str, style: ReportStyle) -> ExitCode {
    let backend = match open_backend(directory, &super::VariableArgs::default(), style) {
        Ok(backend) => backend,
        Err(code) => return code,
    };
    match backend.force_unlock(id) {
        Ok(held) => {
            println!(
                "Removed the lock of {} (pid {} on {}, `{}` since {})",
                held.who, held.pid, held.host, held.operation, held.when
            );
            ExitCode::SUCCESS
        }
        Err(error) => fail(error),
    }
}
