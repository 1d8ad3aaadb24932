//! `mstore`: the umbrella command; a thin shell over [`mstore::cli::mstore_main`].
fn main() -> std::process::ExitCode {
    mstore::cli::mstore_main()
}
