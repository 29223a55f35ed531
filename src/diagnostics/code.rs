//! [`Code`]: the catalogue of diagnostic codes. Every diagnostic infra
//! reports has one; `docs/diagnostics.md` explains each (a test keeps the
//! two in step, and another that each code is produced by some test).

use std::fmt;

macro_rules! codes {
    ($($variant:ident => $name:literal, $summary:literal;)*) => {
        /// A stable identifier of a kind of problem, shown as `infra::NAME`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Code {
            $(#[doc = $summary] $variant,)*
        }

        impl Code {
            /// Every code, in the catalogue's order.
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];

            /// `infra::syntax`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Code::$variant => concat!("infra::", $name),)*
                }
            }

            /// What the code means, in a line.
            pub fn summary(self) -> &'static str {
                match self {
                    $(Code::$variant => $summary,)*
                }
            }
        }
    };
}

codes! {
    // Reading files.
    Syntax => "syntax", "the text does not parse (unexpected token, unclosed string, block, list or heredoc)";
    TooDeep => "too_deep", "nesting over 64 levels, or over 512 operators in one expression";
    FileTooLarge => "file_too_large", "a file over 64 MiB";
    NotUtf8 => "not_utf8", "a file that is not UTF-8 text";
    Io => "io", "a file that cannot be read";
    NoConfiguration => "no_configuration", "no configuration directory, or no `.infra` files in it";
    // Blocks and their shape.
    UnknownBlock => "unknown_block", "a top-level block kind that does not exist";
    BlockLabels => "block_labels", "a block with missing or extra labels";
    UnexpectedBlock => "unexpected_block", "a nested block where it does not belong";
    UnexpectedAttribute => "unexpected_attribute", "an attribute where only blocks belong";
    UnknownArgument => "unknown_argument", "an argument the block (or resource type, or module) does not take";
    MissingArgument => "missing_argument", "a required argument is missing";
    ComputedArgument => "computed_argument", "an argument only the provider sets";
    Duplicate => "duplicate", "something declared or set twice (both places are shown)";
    CountAndForEach => "count_and_for_each", "a resource or module call sets both `count` and `for_each`";
    ReservedName => "reserved_name", "a name infra keeps for itself";
    // Names and references.
    UnknownReference => "unknown_reference", "a name that is not declared (with a \"did you mean\")";
    UnknownAttribute => "unknown_attribute", "an attribute the object does not have";
    InvalidReference => "invalid_reference", "a reference that cannot be used here (`count.index` without `count` …)";
    Cycle => "cycle", "a dependency cycle (the shortest chain, each hop with file:line)";
    ModuleCycle => "module_cycle", "a module that includes itself";
    ModuleSource => "module_source", "a module source that is not a local directory with `.infra` files";
    // Values.
    UnknownFunction => "unknown_function", "a function that does not exist";
    FunctionArity => "function_arity", "a function called with the wrong number of arguments";
    FunctionError => "function_error", "a function that rejects its arguments";
    TypeMismatch => "type_mismatch", "a value of the wrong type";
    InvalidType => "invalid_type", "a type constraint that is not a type";
    InvalidIndex => "invalid_index", "an index out of range, or a missing key";
    DivisionByZero => "division_by_zero", "a division by zero";
    EvaluationTooLarge => "evaluation_too_large", "an evaluation over its budget: 20 million steps (values walked count), a value over 1,000,000 elements, a string over 16 MiB, over 10,000 module instances";
    UnknownValue => "unknown_value", "`count`, `for_each` or backend settings that depend on values known only after apply";
    // Variables.
    MissingVariable => "missing_variable", "a required variable without a value";
    UndeclaredVariable => "undeclared_variable", "a value for a variable that is not declared";
    VarSyntax => "var_syntax", "a `-var` that is not NAME=VALUE";
    VarFile => "var_file", "a variable file with something other than `name = value` lines";
    // Providers and resource types.
    UnknownResourceType => "unknown_resource_type", "a resource or data source type its provider does not have";
    NoProvider => "no_provider", "a resource whose provider is not built into infra";
    ProviderValidation => "provider_validation", "a provider's own check of argument values failed";
    // Backends and deployments.
    UnknownBackend => "unknown_backend", "a backend kind that does not exist";
    UnknownProvider => "unknown_provider", "a deployment provider that does not exist";
    UnknownStrategy => "unknown_strategy", "a deployment strategy that does not exist";
    InvalidStrategy => "invalid_strategy", "strategy settings that could never make progress";
    InvalidDuration => "invalid_duration", "a duration that is not like `30s`, `5m` or `1h30m`";
    Deadlines => "deadlines", "deadlines that contradict each other";
    UnsupportedStrategy => "unsupported_strategy", "a rollout feature the deployment's provider does not have yet (on aws: sticky canary steps, latency bounds)";
    ListenerWeights => "listener_weights", "an aws deployment's listener that does not leave its `forward` weights to the deployment (`ignore_changes = [forward]`)";
    NoHealthCheck => "no_health_check", "a deployment without a `health` block (the default check is used)";
    InvalidQuery => "invalid_query", "a PromQL query of a rollout's analysis that promtool rejects";
    // Planning.
    Refresh => "refresh", "a refresh that failed: the provider could not read an object";
    DataSource => "data_source", "a data source lookup that failed";
    PreventDestroy => "prevent_destroy", "a plan would replace or destroy a resource that sets `prevent_destroy`";
    Target => "target", "`--target` names no resource";
    Replace => "replace", "`--replace` names no resource that exists";
    Interrupted => "interrupted", "an interrupted run was creating an object that infra can neither find nor rule out";
    // Applying.
    Apply => "apply", "a provider operation failed during apply (with the provider's error code)";
    Import => "import", "an import that failed";
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_lowercase_and_prefixed() {
        let mut names: Vec<&str> = Code::ALL.iter().map(|c| c.as_str()).collect();
        for name in &names {
            let rest = name.strip_prefix("infra::").expect("prefixed");
            assert!(
                rest.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "{name}"
            );
        }
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Code::ALL.len());
    }
}
