//! Exit codes, the same for every command (docs/exit-codes.md), as
//! Terraform's where it has them.

/// Done, and nothing to change (or, for `apply`, everything applied).
pub const OK: u8 = 0;
/// An error: in the configuration, the command line, a provider, the state.
pub const ERROR: u8 = 1;
/// `plan --detailed-exitcode`: changes to make; `drift`: something drifted.
pub const CHANGES: u8 = 2;
/// The state lock is held by another run (after `--lock-timeout`): retry
/// later rather than alert.
pub const LOCKED: u8 = 3;
