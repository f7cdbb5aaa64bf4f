//! cargo fuzz target: see cuddy::fuzzing::exec_process.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    cuddy::fuzzing::exec_process(data);
});
