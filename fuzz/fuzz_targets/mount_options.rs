//! cargo fuzz target: see cuddy::fuzzing::mount_options.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    cuddy::fuzzing::mount_options(data);
});
