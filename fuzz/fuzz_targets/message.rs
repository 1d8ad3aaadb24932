//! Fuzz target `message`: see `mstore::fuzzing`. Seeds: `corpus/fuzz/message/`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| mstore::fuzzing::run("message", data));
