//! The config file: TOML through figment into `Config`, then validation (Redis URLs,
//! the log filter, argon2 parameters, URLs).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = gatehouse::config::Config::from_toml_str(&String::from_utf8_lossy(data));
});
