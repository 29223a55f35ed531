//! `infra import ADDR ID`: adopts an object that exists outside infra into
//! the state, at the address of a resource block that describes it. The
//! next `plan` shows how it differs from the configuration.

use std::path::PathBuf;
use std::process::ExitCode;

use infra_provider_sdk::{ImportRequest, ObjectIdentity};

use crate::diagnostics::{Code, Diagnostic, Diagnostics, ReportStyle, did_you_mean, render_all};
use crate::eval::provider_of;
use crate::events::Events;
use crate::plan::{adopt_pending, plan_loaded, planned_instances};
use crate::providers::{Operation, OperationFailure};
use crate::state::ResourceState;

use super::planning::{LockArgs, Opened, fail, open};

#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// The address of the resource block to import into (`local_file.motd`)
    pub address: String,
    /// The provider's id of the existing object (for `local_file`, its path)
    pub id: String,
    #[command(flatten)]
    pub lock: LockArgs,
    #[command(flatten)]
    pub variables: super::VariableArgs,
}

pub fn run(directory: Option<PathBuf>, args: &ImportArgs, style: ReportStyle) -> ExitCode {
    let Opened {
        options,
        loaded,
        backend,
        lock,
        mut state,
        version,
        pending,
        providers,
        runtime,
    } = match open(
        directory,
        &args.variables,
        &[],
        Some(("import", &args.lock)),
        &Events::none(),
        style,
    ) {
        Ok(opened) => opened,
        Err(code) => return code,
    };
    // The save below folds an interrupted run's journal into the state:
    // the creates it left pending are looked for first.
    let problems = runtime.block_on(async {
        let mut problems = providers
            .configure(&loaded.provider_settings(&options), &options.dir)
            .await;
        problems.extend(adopt_pending(&mut state, &pending, &providers).await.0);
        problems
    });
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
    let sources = checked.sources;
    let evaluated = checked.evaluated.unwrap_or_default();
    let instances = planned_instances(&evaluated);
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
        type_name: instance.type_name.to_string(),
        identity: ObjectIdentity {
            address: args.address.clone(),
            lineage: state.lineage.clone(),
        },
        id: args.id.clone(),
    };
    let imported = match runtime.block_on(async {
        let imported = provider.import(request).await;
        providers.close().await;
        imported
    }) {
        Ok(response) => response,
        Err(error) => {
            let failure = OperationFailure::from_provider(Operation::Import, &args.address, error);
            let mut diagnostic = Diagnostic::error(
                Code::Import,
                format!("importing `{}` from `{}` failed: {}", args.address, args.id, failure.reason()),
            )
            .with_label(instance.span, "imported into this resource")
            .with_help("check the id: it must name an existing object of this type (`infra state list` shows what is already imported)");
            if let Some(code) = &failure.code {
                diagnostic = diagnostic.with_note(format!("the provider's error code is `{code}`"));
            }
            let mut diagnostics = Diagnostics::new();
            diagnostics.push(diagnostic);
            eprint!("{}", render_all(&diagnostics, &sources, style));
            return ExitCode::from(1);
        }
    };
    state.resources.insert(
        args.address.clone(),
        ResourceState {
            type_name: instance.type_name.to_string(),
            provider: provider.name().to_string(),
            sensitive: crate::apply::held_secrets(&instance.sensitive, &imported.state),
            attributes: imported.state,
            dependencies: instance.recorded_dependencies.to_vec(),
        },
    );
    if let Err(error) = backend.save(&state, &version) {
        return fail(error.to_string());
    }
    drop(lock);
    println!(
        "Imported {} ({}). `infra plan` shows how it differs from the configuration.",
        args.address, args.id
    );
    ExitCode::SUCCESS
}
