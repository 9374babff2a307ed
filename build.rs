//! Build script: with the `mlx` feature on Linux, embed the directory of the prebuilt
//! `libmlx.so` (published by the patched mlx-sys as `DEP_MLX_LIBDIR`) as an rpath, so the
//! binary and the tests run without `LD_LIBRARY_PATH`.
fn main() {
    println!("cargo:rerun-if-env-changed=DEP_MLX_LIBDIR");
    if let Ok(dir) = std::env::var("DEP_MLX_LIBDIR") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
}
