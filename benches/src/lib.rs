//! Criterion benches for otr4 live in `benches/benches/`; this library is empty.
