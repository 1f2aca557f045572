//! Secret-redacting `Debug`: the [`redacted_debug!`] macro, the one way a type of this crate
//! whose fields cannot all be derived prints itself, and [`Hex`] for byte fields.
//!
//! A secret is never named in the macro, so it cannot be printed: a type lists the public
//! fields it shows, and a trailing `..` says that others (the secrets) are left out.

use core::fmt;

/// Debug-prints bytes as lowercase hex.
pub(crate) struct Hex<'a>(pub(crate) &'a [u8]);

impl fmt::Debug for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// Debug-prints the first 8 bytes as lowercase hex, then `..`.
pub(crate) struct HexPrefix<'a>(pub(crate) &'a [u8]);

impl fmt::Debug for HexPrefix<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0.iter().take(8) {
            write!(f, "{b:02x}")?;
        }
        f.write_str("..")
    }
}

/// Implements `Debug` from a list of what may be shown:
///
/// - `redacted_debug!(Secret)` prints `Secret(..)` and nothing of the value;
/// - `redacted_debug!(Public(|s| expr))` prints `Public(<expr>)`;
/// - `redacted_debug!(Keys { public, mac: hex, data: len, label = |s| expr, .. })` prints a
///   struct with the listed fields only: `field` as its own `Debug`, `field: hex` as
///   lowercase hex, `field: len` as its length, `label = |s| expr` as `expr` computed from
///   `s = &self`; a trailing `..` prints `, ..` for the fields left out.
macro_rules! redacted_debug {
    ($name:ident) => {
        impl ::core::fmt::Debug for $name {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.write_str(concat!(stringify!($name), "(..)"))
            }
        }
    };
    ($name:ident(|$s:ident| $e:expr)) => {
        impl ::core::fmt::Debug for $name {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                let $s = self;
                f.debug_tuple(stringify!($name)).field(&$e).finish()
            }
        }
    };
    ($name:ident $(<$lt:lifetime>)? { $($fields:tt)* }) => {
        impl ::core::fmt::Debug for $name $(<$lt>)? {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                let mut d = f.debug_struct(stringify!($name));
                $crate::debug::redacted_debug!(@fields self, d, $($fields)*)
            }
        }
    };
    (@fields $self:ident, $d:ident, .. $(,)?) => { $d.finish_non_exhaustive() };
    (@fields $self:ident, $d:ident,) => { $d.finish() };
    (@fields $self:ident, $d:ident, $f:ident : hex $(, $($rest:tt)*)?) => {{
        $d.field(stringify!($f), &$crate::debug::Hex(&$self.$f));
        $crate::debug::redacted_debug!(@fields $self, $d, $($($rest)*)?)
    }};
    (@fields $self:ident, $d:ident, $f:ident : len $(, $($rest:tt)*)?) => {{
        $d.field(stringify!($f), &$self.$f.len());
        $crate::debug::redacted_debug!(@fields $self, $d, $($($rest)*)?)
    }};
    (@fields $self:ident, $d:ident, $label:ident = |$s:ident| $e:expr $(, $($rest:tt)*)?) => {{
        {
            let $s = $self;
            $d.field(stringify!($label), &$e);
        }
        $crate::debug::redacted_debug!(@fields $self, $d, $($($rest)*)?)
    }};
    (@fields $self:ident, $d:ident, $f:ident $(, $($rest:tt)*)?) => {{
        $d.field(stringify!($f), &$self.$f);
        $crate::debug::redacted_debug!(@fields $self, $d, $($($rest)*)?)
    }};
}

pub(crate) use redacted_debug;

#[cfg(test)]
mod tests {
    use alloc::format;
    use alloc::vec::Vec;

    struct Opaque(#[allow(dead_code)] [u8; 4]);
    redacted_debug!(Opaque);

    struct Shown(u32);
    redacted_debug!(Shown(|s| s.0 + 1));

    struct Mixed {
        tag: u32,
        mac: [u8; 2],
        body: Vec<u8>,
        secret: [u8; 4],
    }
    redacted_debug!(Mixed { tag, mac: hex, body: len, first = |s| s.body.first().copied(), .. });

    struct All {
        tag: u32,
        mac: [u8; 2],
    }
    redacted_debug!(All { tag, mac: hex });

    #[test]
    fn the_macro_prints_only_what_is_listed() {
        assert_eq!(format!("{:?}", Opaque([0xaa; 4])), "Opaque(..)");
        assert_eq!(format!("{:?}", Shown(1)), "Shown(2)");
        let m = Mixed {
            tag: 7,
            mac: [0xab, 0xcd],
            body: alloc::vec![9, 8],
            secret: [0xee; 4],
        };
        assert_eq!(m.secret.len(), 4);
        assert_eq!(
            format!("{m:?}"),
            "Mixed { tag: 7, mac: abcd, body: 2, first: Some(9), .. }"
        );
        let a = All {
            tag: 1,
            mac: [0, 1],
        };
        assert_eq!(format!("{a:?}"), "All { tag: 1, mac: 0001 }");
    }
}
