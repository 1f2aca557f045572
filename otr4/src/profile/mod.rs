//! Client Profiles and Prekey Profiles (otrv4.md §"Client Profile", §"Prekey Profile"):
//! build, sign, serialize, parse and validate in the spec's order against an injected `now`.

pub mod client;
pub mod prekey;
