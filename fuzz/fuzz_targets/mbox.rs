//! Fuzz target `mbox`: see `mstore::fuzzing`. Seeds: `corpus/fuzz/mbox/`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| mstore::fuzzing::run("mbox", data));
