//! Instance tags (otrv4.md §"Instance Tags"): the 4-byte id of one client/device.
//!
//! Valid sender tags are `>= 0x100`; a receiver tag of 0 means "not known yet".

use crate::debug::redacted_debug;
use core::fmt;

/// The smallest valid instance tag (otrv4.md §"Instance Tags").
pub const MIN_VALID_INSTANCE_TAG: u32 = 0x0000_0100;

/// A 4-byte instance tag. Holds any `u32` as read from the wire; use
/// [`InstanceTag::is_valid_sender`] / `InstanceTag::is_valid_receiver` to check it.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct InstanceTag(pub u32);

impl InstanceTag {
    /// The "unknown receiver" tag, 0.
    pub const UNKNOWN: InstanceTag = InstanceTag(0);

    /// A sender tag must be at least `0x100`.
    pub fn is_valid_sender(self) -> bool {
        self.0 >= MIN_VALID_INSTANCE_TAG
    }

    /// A receiver tag is 0 (unknown) or at least `0x100`.
    pub(crate) fn is_valid_receiver(self) -> bool {
        self.0 == 0 || self.0 >= MIN_VALID_INSTANCE_TAG
    }

    hazmat_pub! {
        /// Draws a fresh valid instance tag from `rng`.
        fn random<R: rand_core::CryptoRng + ?Sized>(rng: &mut R) -> InstanceTag {
            loop {
                let t = rng.next_u32();
                if t >= MIN_VALID_INSTANCE_TAG {
                    return InstanceTag(t);
                }
            }
        }
    }
}

redacted_debug!(InstanceTag(|t| format_args!("{:08x}", t.0)));

impl fmt::Display for InstanceTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}", self.0)
    }
}
