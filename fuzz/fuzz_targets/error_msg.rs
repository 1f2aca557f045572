//! Fuzzes the OTR error-message parser: never panics, only matches at the start, and a
//! recognised code with its text rebuilds to a message that parses the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use otr4::hazmat::wire::error_msg::{ERROR_PREFIX, build_error_with_text, parse_error};

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    let parsed = parse_error(&s);
    assert_eq!(parsed.is_some(), s.starts_with(ERROR_PREFIX));
    if let Some(e) = parsed {
        if let Some(code) = e.code {
            let rebuilt = build_error_with_text(code, e.text);
            assert_eq!(parse_error(&rebuilt), Some(e));
        }
    }
});
