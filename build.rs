//! Points the embedded dashboard at `frontend/dist` when it has been built, or at an empty
//! folder otherwise, so the crate always compiles and the server explains at `/` how to build it.

use std::path::PathBuf;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("manifest dir"));
    let dist = manifest.join("frontend").join("dist");
    println!("cargo:rerun-if-changed=frontend/dist");
    println!("cargo:rerun-if-changed=frontend/dist/index.html");
    let dir = if dist.join("index.html").is_file() {
        dist
    } else {
        let empty = PathBuf::from(std::env::var("OUT_DIR").expect("out dir")).join("no-dashboard");
        std::fs::create_dir_all(&empty).expect("create placeholder folder");
        empty
    };
    println!("cargo:rustc-env=TOLLGATE_WEB_DIR={}", dir.display());
}
