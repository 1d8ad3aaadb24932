//! Fuzz target `dbsnap`: see `mstore::fuzzing`. Seeds: `corpus/fuzz/dbsnap/`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| mstore::fuzzing::run("dbsnap", data));
