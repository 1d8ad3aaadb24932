//! Fuzz target `outcomes`: the body is `fuzz/bodies.rs`. Seeds: `corpus/fuzz/outcomes/`.
#![no_main]
#[allow(dead_code)]
#[path = "../bodies.rs"]
mod bodies;
libfuzzer_sys::fuzz_target!(|data: &[u8]| bodies::run("outcomes", data));
