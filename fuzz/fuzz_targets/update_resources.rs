//! cargo fuzz target: see cuddy::fuzzing::update_resources.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    cuddy::fuzzing::update_resources(data);
});
