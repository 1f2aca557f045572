//! The safe core every binding reuses: status codes, the handle table, OS randomness and
//! the clock, events, and the engine / session / sim objects.
//!
//! Nothing here is `unsafe` (each module is `#![forbid(unsafe_code)]`); the C layer
//! ([`crate::capi`]) only converts pointers and calls [`with`], [`insert`] and [`remove`].
#![forbid(unsafe_code)]

pub mod engine;
pub mod env;
pub mod events;
pub mod handles;
pub mod session;
#[cfg(feature = "sim")]
pub mod sim;
pub mod status;

use std::sync::{Mutex, MutexGuard};

use handles::{Kind, Table};
use status::{Error, Result, otr4_status};

/// An object behind a handle.
#[derive(Debug)]
pub enum Object {
    /// An XMPP-level engine.
    Engine(Box<engine::EngineCore>),
    /// A session-level client.
    Session(Box<session::SessionCore>),
    /// The in-memory XMPP server.
    #[cfg(feature = "sim")]
    Sim(Box<sim::SimCore>),
    /// Rust-side tests of the plumbing.
    #[cfg(test)]
    Test(u32),
}

impl Object {
    fn kind(&self) -> Kind {
        match self {
            Object::Engine(_) => Kind::Engine,
            Object::Session(_) => Kind::Session,
            #[cfg(feature = "sim")]
            Object::Sim(_) => Kind::Sim,
            #[cfg(test)]
            Object::Test(_) => Kind::Test,
        }
    }
}

static TABLE: Mutex<Table<Object>> = Mutex::new(Table::new());

fn table() -> MutexGuard<'static, Table<Object>> {
    // The table lock is never held while library code runs, so poisoning cannot leave it
    // half-updated: recover it.
    TABLE.lock().unwrap_or_else(|p| p.into_inner())
}

/// Stores `object`; returns its handle.
pub fn insert(object: Object) -> Result<u64> {
    let kind = object.kind();
    table().insert(kind, object)
}

/// Frees `handle` (of `kind`).
pub fn remove(handle: u64, kind: Kind) -> Result<()> {
    let object = table().remove(handle, kind)?;
    // Dropped here, outside the table lock (or later, by a call still running on it).
    drop(object);
    Ok(())
}

/// Runs `f` on the object of `handle` (of `kind`), holding its lock: `OTR4_BUSY` if
/// another call holds it.
pub fn with<R>(handle: u64, kind: Kind, f: impl FnOnce(&mut Object) -> Result<R>) -> Result<R> {
    let object = table().get(handle, kind)?;
    let mut guard = handles::lock(&object)?;
    f(&mut guard)
}

/// The error for an object of the wrong kind behind a handle of the right kind (cannot
/// happen: the table checks kinds).
pub fn wrong_kind() -> Error {
    Error::new(otr4_status::OTR4_INVALID_HANDLE, "handle of another type")
}
