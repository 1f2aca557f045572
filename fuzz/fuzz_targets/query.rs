//! Fuzzes query-message parsing and whitespace-tag detection: never panic; parsed
//! versions round-trip through the builders.
#![no_main]

use libfuzzer_sys::fuzz_target;
use otr4::hazmat::wire::query::{build_query, find_whitespace_tag, parse_query, tag_message};

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    if let Ok(Some(v)) = parse_query(&s) {
        assert_eq!(parse_query(&build_query(v)), Ok(Some(v)));
    }
    let (text, found) = find_whitespace_tag(&s);
    match found {
        None => assert_eq!(text, s),
        Some(v) => {
            assert!(text.len() + 16 <= s.len());
            if !v.is_empty() {
                let (_, again) = find_whitespace_tag(&tag_message("x", v));
                assert_eq!(again, Some(v));
            }
        }
    }
});
