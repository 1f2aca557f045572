//! Client Profiles and Prekey Profiles (otrv4.md §"Client Profile", §"Prekey Profile").
