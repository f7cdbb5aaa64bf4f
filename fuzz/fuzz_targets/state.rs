//! cargo fuzz target: see cuddy::fuzzing::state.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    cuddy::fuzzing::state(data);
});
