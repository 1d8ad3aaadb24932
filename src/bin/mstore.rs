//! `mstore`: the umbrella command (placeholder).
fn main() {}
