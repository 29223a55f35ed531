//! Files and modules → declarations checked for shape. Knows which block
//! kinds exist and what arguments they take, but evaluates nothing.

mod declarations;
mod files;
mod loader;

pub use declarations::*;
pub use files::{Limited, read_limited};
pub use loader::{
    MAX_MODULE_INSTANCES, ModuleConfig, infra_files, load_root, normalize, read_and_parse,
};
