//! `infra import ADDR ID`: adopts an object that exists outside infra into
//! the state, at the address of a resource block that describes it. The
//! next `plan` shows how it differs from the configuration.

use std::path::PathBuf;
use std::process::ExitCode;

use infra_provider_sdk::{ImportRequest, ObjectIdentity};

use crate::apply::ApplyJob;
use crate::diagnostics::{ReportStyle, did_you_mean, render_all};
use crate::eval::provider_of;
use crate::plan::plan_loaded;
use crate::state::ResourceState;

use super::planning::{Opened, fail, open};

#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// The address of the resource block to import into (`local_file.motd`)
    pub address: String,
    /// The provider's id of the existing object (for `local_file`, its path)
    pub id: String,
    #[command(flatten)]
    pub variables: super::VariableArgs,
}

pub fn run(directory: Option<PathBuf>, args: &ImportArgs, style: ReportStyle) -> ExitCode {
    let Opened {
        options,
        loaded,
        state_path,
        lock,
        mut state,
        providers,
        problems,
        runtime,
        ..
    } = match open(directory, &args.variables, &[], Some("import"), style) {
        Ok(opened) => opened,
        Err(code) => return code,
    };
    let (mut checked, _) = plan_loaded(loaded, &options, &state, &[]);
    checked.diagnostics.extend(problems);
    checked.diagnostics.sort();
    eprint!(
        "{}",
        render_all(&checked.diagnostics, &checked.sources, style)
    );
    if checked.diagnostics.has_errors() {
        return ExitCode::from(1);
    }
    let evaluated = checked.evaluated.unwrap_or_default();
    let instances = ApplyJob::instances_of(&evaluated);
    let Some(instance) = instances.get(&args.address) else {
        let help = did_you_mean(&args.address, instances.keys().map(String::as_str))
            .unwrap_or_else(|| {
                "write a resource block for it first; `infra graph --format text` lists the configured addresses".into()
            });
        return fail(format!(
            "`{}` is not in the configuration\n  help: {help}",
            args.address
        ));
    };
    if state.resources.contains_key(&args.address) {
        return fail(format!(
            "`{}` is already in the state\n  help: to adopt another object there, `infra state rm {}` first (the current object is left as it is)",
            args.address, args.address
        ));
    }
    let provider_name = provider_of(&instance.type_name);
    let Some(provider) = providers.get(provider_name) else {
        return fail(format!("no provider `{provider_name}` in this build"));
    };
    let request = ImportRequest {
        type_name: instance.type_name.clone(),
        identity: ObjectIdentity {
            address: args.address.clone(),
            lineage: state.lineage.clone(),
        },
        id: args.id.clone(),
    };
    let imported = match runtime.block_on(provider.import(request)) {
        Ok(response) => response,
        Err(error) => {
            return fail(format!(
                "importing `{}` from `{}` failed: {error}",
                args.address, args.id
            ));
        }
    };
    state.resources.insert(
        args.address.clone(),
        ResourceState {
            type_name: instance.type_name.clone(),
            provider: provider.name().to_string(),
            sensitive: crate::apply::held_secrets(&instance.sensitive, &imported.state),
            attributes: imported.state,
            dependencies: instance.dependencies.clone(),
        },
    );
    if let Err(error) = crate::state::save(&state_path, &state) {
        return fail(error.to_string());
    }
    drop(lock);
    println!(
        "Imported {} ({}). `infra plan` shows how it differs from the configuration.",
        args.address, args.id
    );
    ExitCode::SUCCESS
}
