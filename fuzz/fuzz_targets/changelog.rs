//! Fuzz target `changelog`: see `mstore::fuzzing`. Seeds: `corpus/fuzz/changelog/`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| mstore::fuzzing::run("changelog", data));
