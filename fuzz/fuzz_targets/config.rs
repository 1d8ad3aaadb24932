//! Fuzz target `config`: see `mstore::fuzzing`. Seeds: `corpus/fuzz/config/`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| mstore::fuzzing::run("config", data));
