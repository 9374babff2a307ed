//! The product's nouns, in one layer every other layer may use and that uses none of them.
//!
//! Readings of processes ([`process`]), verdicts and their evidence ([`verdict`]), requests
//! from a server log ([`request`]), a worker's token progress ([`progress`]), registry entries ([`registry`]), stacks ([`stacks`]), the
//! check report ([`report`]) and the snapshot record ([`snapshot`]). Collectors fill them, the
//! diagnosis judges them, renderers print them; nothing here imports anything but the model
//! and the leaf helpers (`fmt`, `error`).

pub mod distributed;
pub mod gpu;
pub mod incident;
pub mod leak;
pub mod logs;
pub mod pressure;
pub mod process;
pub mod progress;
pub mod registry;
pub mod report;
pub mod request;
pub mod snapshot;
pub mod socket;
pub mod stacks;
pub mod top;
pub mod verdict;
pub mod views;
pub mod waits;

pub use distributed::*;
pub use gpu::*;
pub use incident::Incident;
pub use logs::*;
pub use pressure::pressure_level;
pub use process::*;
pub use progress::*;
pub use registry::*;
pub use report::*;
pub use request::*;
pub use snapshot::*;
pub use socket::*;
pub use stacks::*;
pub use top::*;
pub use verdict::*;
pub use views::*;

/// Version of every JSON document mlsdiag prints; bumped on incompatible changes.
pub const SCHEMA_VERSION: u32 = 1;
