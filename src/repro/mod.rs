//! `repro`: replay requests until a rare hang shows, and say how sure the result is.

pub mod checkpoint;
pub mod endpoint;
#[cfg(feature = "mlx")]
pub mod mlx;
#[cfg(feature = "mlx")]
pub mod prompt;
#[cfg(feature = "mlx")]
pub mod qwen2;
pub mod stats;
#[cfg(feature = "mlx")]
pub mod tiny;
