//! Opaque handles as checked table entries: a `u64` of (generation, kind, index) into one
//! process-wide slab, so a null, freed, stale, foreign or forged handle is an error, never UB.
//!
//! Layout of a handle: bits 0–23 the slot index + 1, bits 24–31 the [`Kind`], bits 32–63
//! the slot's generation (starts at 1, bumped on free). `0` is never issued. The table lock
//! is held only to look a slot up; each object has its own mutex, taken with `try_lock`: a
//! second concurrent call on one handle gets `OTR4_BUSY` instead of blocking or racing.
#![forbid(unsafe_code)]

use std::sync::{Arc, Mutex, MutexGuard, TryLockError};

use super::status::{Error, Result, otr4_status};

/// What a handle refers to (its kind bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An XMPP-level engine.
    Engine = 1,
    /// A session-level client.
    Session = 2,
    /// The in-memory XMPP server (feature `sim`).
    Sim = 3,
    /// Rust-side tests of the table.
    #[cfg(test)]
    Test = 0x7f,
}

const INDEX_BITS: u32 = 24;
const MAX_SLOTS: usize = (1 << INDEX_BITS) - 1;

/// One object behind a handle, with its own lock.
pub type Shared<T> = Arc<Mutex<T>>;

struct Slot<T> {
    generation: u32,
    kind: Option<Kind>,
    object: Option<Shared<T>>,
}

/// A table of objects of type `T` (an enum of every handle type).
pub struct Table<T> {
    slots: Vec<Slot<T>>,
    free: Vec<usize>,
}

impl<T> Default for Table<T> {
    fn default() -> Self {
        Table::new()
    }
}

impl<T> Table<T> {
    /// An empty table.
    pub const fn new() -> Table<T> {
        Table {
            slots: Vec::new(),
            free: Vec::new(),
        }
    }

    /// Stores `object`, returns its handle.
    pub fn insert(&mut self, kind: Kind, object: T) -> Result<u64> {
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                if self.slots.len() >= MAX_SLOTS {
                    return Err(Error::new(
                        otr4_status::OTR4_REFUSED,
                        "too many live handles",
                    ));
                }
                self.slots.push(Slot {
                    generation: 1,
                    kind: None,
                    object: None,
                });
                self.slots.len() - 1
            }
        };
        let slot = self
            .slots
            .get_mut(index)
            .ok_or_else(|| Error::new(otr4_status::OTR4_PANIC, "handle table corrupt"))?;
        slot.kind = Some(kind);
        slot.object = Some(Arc::new(Mutex::new(object)));
        Ok(encode(slot.generation, kind, index))
    }

    fn slot(&self, handle: u64, kind: Kind) -> Result<(usize, &Slot<T>)> {
        let bad = || {
            Error::new(
                otr4_status::OTR4_INVALID_HANDLE,
                format!("invalid {kind:?} handle {handle:#x} (null, freed, stale or foreign)"),
            )
        };
        let (generation, k, index) = decode(handle).ok_or_else(bad)?;
        if k != kind as u8 {
            return Err(bad());
        }
        let slot = self.slots.get(index).ok_or_else(bad)?;
        if slot.generation != generation || slot.kind != Some(kind) || slot.object.is_none() {
            return Err(bad());
        }
        Ok((index, slot))
    }

    /// The object of `handle`, if it is a live handle of `kind`.
    pub fn get(&self, handle: u64, kind: Kind) -> Result<Shared<T>> {
        let (_, slot) = self.slot(handle, kind)?;
        slot.object
            .clone()
            .ok_or_else(|| Error::new(otr4_status::OTR4_INVALID_HANDLE, "freed handle"))
    }

    /// Frees `handle`: later uses of it are `OTR4_INVALID_HANDLE`. A call running on it
    /// keeps the object alive until it returns.
    pub fn remove(&mut self, handle: u64, kind: Kind) -> Result<Shared<T>> {
        let (index, _) = self.slot(handle, kind)?;
        let slot = self
            .slots
            .get_mut(index)
            .ok_or_else(|| Error::new(otr4_status::OTR4_PANIC, "handle table corrupt"))?;
        let object = slot
            .object
            .take()
            .ok_or_else(|| Error::new(otr4_status::OTR4_INVALID_HANDLE, "freed handle"))?;
        slot.kind = None;
        // A slot whose generation would wrap is retired instead of reused.
        if let Some(g) = slot.generation.checked_add(1) {
            slot.generation = g;
            self.free.push(index);
        }
        Ok(object)
    }

    /// How many handles are live.
    pub fn live(&self) -> usize {
        self.slots.iter().filter(|s| s.object.is_some()).count()
    }
}

fn encode(generation: u32, kind: Kind, index: usize) -> u64 {
    (u64::from(generation) << 32) | ((kind as u64) << INDEX_BITS) | (index as u64 + 1)
}

fn decode(handle: u64) -> Option<(u32, u8, usize)> {
    let generation = u32::try_from(handle >> 32).ok()?;
    let kind = u8::try_from((handle >> INDEX_BITS) & 0xff).ok()?;
    let index = usize::try_from(handle & ((1 << INDEX_BITS) - 1)).ok()?;
    Some((generation, kind, index.checked_sub(1)?))
}

/// Locks an object for one call: `OTR4_BUSY` if another call holds it, `OTR4_PANIC` if a
/// caught panic left it poisoned.
pub fn lock<T>(object: &Mutex<T>) -> Result<MutexGuard<'_, T>> {
    match object.try_lock() {
        Ok(g) => Ok(g),
        Err(TryLockError::WouldBlock) => Err(Error::new(
            otr4_status::OTR4_BUSY,
            "another call on this handle is running",
        )),
        Err(TryLockError::Poisoned(_)) => Err(Error::new(
            otr4_status::OTR4_PANIC,
            "an earlier call on this handle panicked; free it",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_foreign_and_null_handles_are_errors() {
        let mut t: Table<u32> = Table::new();
        let a = t.insert(Kind::Test, 1).unwrap();
        assert!(t.get(a, Kind::Test).is_ok());
        assert_eq!(
            t.get(0, Kind::Test).unwrap_err().status,
            otr4_status::OTR4_INVALID_HANDLE
        );
        assert_eq!(
            t.get(a, Kind::Engine).unwrap_err().status,
            otr4_status::OTR4_INVALID_HANDLE
        );
        assert_eq!(
            t.get(a ^ 1 << 40, Kind::Test).unwrap_err().status,
            otr4_status::OTR4_INVALID_HANDLE
        );
        assert_eq!(
            t.get(a + 1, Kind::Test).unwrap_err().status,
            otr4_status::OTR4_INVALID_HANDLE
        );
        t.remove(a, Kind::Test).unwrap();
        assert_eq!(
            t.get(a, Kind::Test).unwrap_err().status,
            otr4_status::OTR4_INVALID_HANDLE
        );
        assert_eq!(
            t.remove(a, Kind::Test).unwrap_err().status,
            otr4_status::OTR4_INVALID_HANDLE
        );
        // The slot is reused with a new generation: the old handle stays invalid.
        let b = t.insert(Kind::Test, 2).unwrap();
        assert_ne!(a, b);
        assert_eq!(
            t.get(a, Kind::Test).unwrap_err().status,
            otr4_status::OTR4_INVALID_HANDLE
        );
        assert_eq!(*t.get(b, Kind::Test).unwrap().lock().unwrap(), 2);
        assert_eq!(t.live(), 1);
    }

    #[test]
    fn a_second_call_on_a_locked_handle_is_busy() {
        let mut t: Table<u32> = Table::new();
        let a = t.insert(Kind::Test, 1).unwrap();
        let obj = t.get(a, Kind::Test).unwrap();
        let _g = lock(&obj).unwrap();
        assert_eq!(lock(&obj).unwrap_err().status, otr4_status::OTR4_BUSY);
    }
}
