//! `repro`: replay requests until a rare hang shows, and say how sure the result is.

pub mod endpoint;
pub mod stats;
