//! Links the function binary as a position-dependent executable on Linux:
//! a position-independent one has the dynamic loader apply about 78,000
//! relocations to 1.6 MB of data at every start (each touched page copied),
//! which was half of a cold start's work before `main`. Shared libraries,
//! the stack and the heap are still placed at random; the binary's own code
//! is not. `FUNCTIONS_PIE=1` keeps the position-independent build.
fn main() {
    println!("cargo:rerun-if-env-changed=FUNCTIONS_PIE");
    let linux = std::env::var("CARGO_CFG_TARGET_OS").is_ok_and(|os| os == "linux");
    if linux && std::env::var_os("FUNCTIONS_PIE").is_none() {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
}
