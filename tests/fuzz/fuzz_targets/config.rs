//! The config parser (the ironhoard binary's config module, included as
//! is) on arbitrary text: it never panics, and an error names the file.
#![no_main]
#[allow(dead_code)]
#[path = "../../../userspace/ironhoard/src/config.rs"]
mod config;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let path = std::path::Path::new("/nonexistent/ironhoard.toml");
    match config::Config::parse(text, path, &config::Overrides::default()) {
        Ok(_) => {}
        Err(e) => assert!(e.to_string().contains("/nonexistent/ironhoard.toml"), "{e}"),
    }
});
