//! `reconstruct`: a thin shell over [`mstore::cli::reconstruct_main`].
fn main() -> std::process::ExitCode {
    mstore::cli::reconstruct_main()
}
