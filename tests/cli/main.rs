//! Integration tests: the real binary against real misbehaving processes (the demo's hidden
//! worker modes), real registries and logs. Every simulation a test starts is stopped by a
//! guard's `Drop`, also when the test fails.

/// A snapshot under tests/cli/snapshots, named as given (shared by the renderer tests).
macro_rules! snap {
    ($name:expr, $text:expr) => {
        insta::with_settings!({ snapshot_path => "snapshots", prepend_module_to_snapshot => false }, {
            insta::assert_snapshot!($name, $text);
        })
    };
}

mod attribution;
mod check;
mod contract;
mod demo;
mod discovery;
#[cfg(feature = "mlx")]
mod distributed;
mod docs;
mod evidence;
mod fleet;
mod gpu;
mod grafana;
mod hostile;
mod inspect;
mod layers;
mod logs;
mod memory;
#[cfg(feature = "mlx")]
mod mlx_lm_hang;
#[cfg(feature = "mlx")]
mod mlx_lm_server;
#[cfg(feature = "mlx")]
mod progress;
mod python;
mod recording;
mod registry;
mod render;
mod repro;
#[cfg(feature = "mlx")]
mod repro_mlx;
#[cfg(feature = "mlx")]
mod run;
mod stacks;
#[cfg(feature = "mlx")]
mod stock_server;
mod top;
mod util;
mod watch;
