//! A reader for the S-expressions libgcrypt writes and reads (RFC 9804 §6.2 canonical and §6.4
//! advanced representations), the syntax of libotr's `otr.private_key` file.
//!
//! Only what a key file can hold: lists, tokens, quoted strings, `#hex#`, `|base64|`, `N:raw`
//! octets and display hints (read and dropped). No recursion (an explicit stack, bounded
//! depth); every atom is allocated from bytes actually present, and zeroized on drop.

use alloc::vec::Vec;

use base64::Engine as _;
use zeroize::Zeroizing;

use crate::debug::redacted_debug;

/// The deepest list nesting accepted (a key file nests 5 deep).
pub const MAX_DEPTH: usize = 32;

/// One S-expression: an octet string or a list (RFC 9804 §2).
#[cfg_attr(test, derive(PartialEq, Eq))]
pub enum Sexp {
    /// An octet string; it may hold a private value, so it is zeroized on drop.
    Atom(Zeroizing<Vec<u8>>),
    /// A list of S-expressions.
    List(Vec<Sexp>),
}

redacted_debug!(Sexp);

impl Sexp {
    /// The octets of an atom.
    pub fn atom(&self) -> Option<&[u8]> {
        match self {
            Sexp::Atom(a) => Some(a),
            Sexp::List(_) => None,
        }
    }

    /// The elements of a list.
    pub fn list(&self) -> Option<&[Sexp]> {
        match self {
            Sexp::Atom(_) => None,
            Sexp::List(l) => Some(l),
        }
    }

    /// The list's first element, when it is an atom: its name (`(name …)`).
    pub fn head(&self) -> Option<&[u8]> {
        self.list()?.first()?.atom()
    }

    /// The first direct child list named `name`.
    pub fn child(&self, name: &[u8]) -> Option<&Sexp> {
        self.list()?.iter().find(|c| c.head() == Some(name))
    }

    /// The atom after the name in the direct child `(name value)`.
    pub fn value_of(&self, name: &[u8]) -> Option<&[u8]> {
        self.child(name)?.list()?.get(1)?.atom()
    }
}

/// Why the bytes are not one S-expression. `offset` is where the reader stopped (from 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SexpError {
    /// The input ends inside an expression.
    #[error("S-expression ends early (at byte {offset})")]
    UnexpectedEnd {
        /// Where.
        offset: usize,
    },
    /// A byte that cannot start or continue an expression here.
    #[error("unexpected byte 0x{byte:02x} at byte {offset} of the S-expression")]
    UnexpectedByte {
        /// The byte.
        byte: u8,
        /// Where.
        offset: usize,
    },
    /// Lists nest deeper than 32 (`MAX_DEPTH` of the reader).
    #[error("S-expression nests deeper than {MAX_DEPTH} lists (at byte {offset})")]
    TooDeep {
        /// Where.
        offset: usize,
    },
    /// A `#…#` or `|…|` string, or a quoted string's escape, does not decode.
    #[error("bad hexadecimal, base64 or escape at byte {offset} of the S-expression")]
    BadEncoding {
        /// Where the string starts.
        offset: usize,
    },
    /// Bytes follow the one top-level expression.
    #[error("data after the end of the S-expression (at byte {offset})")]
    TrailingData {
        /// Where.
        offset: usize,
    },
}

/// RFC 9804 §4.3 token characters (a token does not start with a digit).
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-./_:*+=".contains(&b)
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// Hexadecimal digits (either case, an even number of them) to octets.
pub(crate) fn decode_hex(digits: &[u8]) -> Option<Vec<u8>> {
    if !digits.len().is_multiple_of(2) {
        return None;
    }
    let val = |c: u8| char::from(c).to_digit(16);
    digits
        .chunks_exact(2)
        .map(|p| match p {
            [h, l] => u8::try_from(val(*h)? * 16 + val(*l)?).ok(),
            _ => None,
        })
        .collect()
}

struct Cursor<'a> {
    input: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.input.get(self.pos).copied()
    }

    fn next(&mut self) -> Result<u8, SexpError> {
        let b = self
            .peek()
            .ok_or(SexpError::UnexpectedEnd { offset: self.pos })?;
        self.pos += 1;
        Ok(b)
    }

    fn skip_space(&mut self) {
        while self.peek().is_some_and(is_space) {
            self.pos += 1;
        }
    }

    /// `N:raw` (the decimal already seen starts at `self.pos`).
    fn raw(&mut self) -> Result<Vec<u8>, SexpError> {
        let start = self.pos;
        let mut n: usize = 0;
        while let Some(d) = self.peek().filter(u8::is_ascii_digit) {
            n = n
                .checked_mul(10)
                .and_then(|n| n.checked_add(usize::from(d - b'0')))
                .ok_or(SexpError::BadEncoding { offset: start })?;
            self.pos += 1;
        }
        match self.next()? {
            b':' => {}
            byte => {
                return Err(SexpError::UnexpectedByte {
                    byte,
                    offset: self.pos - 1,
                });
            }
        }
        // The length is checked against the bytes present before anything is allocated.
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.input.len())
            .ok_or(SexpError::UnexpectedEnd {
                offset: self.input.len(),
            })?;
        let out = self.input.get(self.pos..end).unwrap_or_default().to_vec();
        self.pos = end;
        Ok(out)
    }

    fn token(&mut self) -> Vec<u8> {
        let start = self.pos;
        while self.peek().is_some_and(is_token_byte) {
            self.pos += 1;
        }
        self.input.get(start..self.pos).unwrap_or_default().to_vec()
    }

    /// The bytes up to the closing `delim` (the opening one already read), whitespace removed.
    fn delimited(&mut self, delim: u8) -> Result<Zeroizing<Vec<u8>>, SexpError> {
        let mut out = Zeroizing::new(Vec::new());
        loop {
            match self.next()? {
                b if b == delim => return Ok(out),
                b if is_space(b) => {}
                b => out.push(b),
            }
        }
    }

    fn hex(&mut self) -> Result<Vec<u8>, SexpError> {
        let start = self.pos - 1;
        let digits = self.delimited(b'#')?;
        decode_hex(&digits).ok_or(SexpError::BadEncoding { offset: start })
    }

    fn base64(&mut self) -> Result<Vec<u8>, SexpError> {
        let start = self.pos - 1;
        let text = self.delimited(b'|')?;
        let engine = base64::engine::GeneralPurpose::new(
            &base64::alphabet::STANDARD,
            base64::engine::GeneralPurposeConfig::new()
                .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
        );
        engine
            .decode(&*text)
            .map_err(|_| SexpError::BadEncoding { offset: start })
    }

    /// A quoted string (the opening `"` already read), with RFC 9804 §4.4's escapes.
    fn quoted(&mut self) -> Result<Vec<u8>, SexpError> {
        let mut out = Vec::new();
        loop {
            match self.next()? {
                b'"' => return Ok(out),
                b'\\' => {
                    let at = self.pos - 1;
                    let bad = SexpError::BadEncoding { offset: at };
                    match self.next()? {
                        b'b' => out.push(0x08),
                        b't' => out.push(b'\t'),
                        b'v' => out.push(0x0b),
                        b'n' => out.push(b'\n'),
                        b'f' => out.push(0x0c),
                        b'r' => out.push(b'\r'),
                        c @ (b'"' | b'\'' | b'\\') => out.push(c),
                        b'x' => {
                            let h = [self.next()?, self.next()?];
                            let s = core::str::from_utf8(&h).map_err(|_| bad)?;
                            out.push(u8::from_str_radix(s, 16).map_err(|_| bad)?);
                        }
                        c @ b'0'..=b'7' => {
                            let o = [c, self.next()?, self.next()?];
                            let s = core::str::from_utf8(&o).map_err(|_| bad)?;
                            out.push(u8::from_str_radix(s, 8).map_err(|_| bad)?);
                        }
                        // A backslash before a line break continues the string.
                        b'\n' => {
                            if self.peek() == Some(b'\r') {
                                self.pos += 1;
                            }
                        }
                        b'\r' => {
                            if self.peek() == Some(b'\n') {
                                self.pos += 1;
                            }
                        }
                        _ => return Err(bad),
                    }
                }
                b => out.push(b),
            }
        }
    }

    /// One atom starting at the current byte, or `None` if none starts here.
    fn atom(&mut self) -> Result<Option<Vec<u8>>, SexpError> {
        Ok(Some(match self.peek() {
            Some(b'"') => {
                self.pos += 1;
                self.quoted()?
            }
            Some(b'#') => {
                self.pos += 1;
                self.hex()?
            }
            Some(b'|') => {
                self.pos += 1;
                self.base64()?
            }
            Some(b'0'..=b'9') => self.raw()?,
            Some(b) if is_token_byte(b) => self.token(),
            _ => return Ok(None),
        }))
    }
}

/// Reads exactly one S-expression from `input` (whitespace around it allowed).
pub fn parse(input: &[u8]) -> Result<Sexp, SexpError> {
    let mut c = Cursor { input, pos: 0 };
    // The lists being read, innermost last.
    let mut open: Vec<Vec<Sexp>> = Vec::new();
    loop {
        c.skip_space();
        let offset = c.pos;
        let done = match c.peek() {
            None => return Err(SexpError::UnexpectedEnd { offset }),
            Some(b'(') => {
                if open.len() >= MAX_DEPTH {
                    return Err(SexpError::TooDeep { offset });
                }
                c.pos += 1;
                open.push(Vec::new());
                None
            }
            Some(b')') => {
                c.pos += 1;
                let list = open
                    .pop()
                    .ok_or(SexpError::UnexpectedByte { byte: b')', offset })?;
                Some(Sexp::List(list))
            }
            Some(b'[') => {
                // A display hint (RFC 9804 §4.6) says how to show the next atom: dropped.
                c.pos += 1;
                c.skip_space();
                c.atom()?.ok_or(SexpError::UnexpectedByte {
                    byte: c.peek().unwrap_or_default(),
                    offset: c.pos,
                })?;
                c.skip_space();
                match c.next()? {
                    b']' => {}
                    byte => {
                        return Err(SexpError::UnexpectedByte {
                            byte,
                            offset: c.pos - 1,
                        });
                    }
                }
                None
            }
            Some(byte) => {
                let atom = c
                    .atom()?
                    .ok_or(SexpError::UnexpectedByte { byte, offset })?;
                Some(Sexp::Atom(Zeroizing::new(atom)))
            }
        };
        if let Some(e) = done {
            match open.last_mut() {
                Some(parent) => parent.push(e),
                None => {
                    c.skip_space();
                    return match c.peek() {
                        None => Ok(e),
                        Some(_) => Err(SexpError::TrailingData { offset: c.pos }),
                    };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn atom(b: &[u8]) -> Sexp {
        Sexp::Atom(Zeroizing::new(b.to_vec()))
    }

    #[test]
    fn every_atom_form_reads_the_same_octets() {
        // RFC 9804 §6: one value, written in each representation.
        for text in [
            &b"(3:abc \"abc\" #616263# |YWJj| abc [text/plain]abc)"[..],
            b"  (3:abc\"abc\"#61 62 63#|YW Jj|abc [4:hint] \"ab\\\nc\")\n",
        ] {
            assert_eq!(
                parse(text).unwrap(),
                Sexp::List((0..6).map(|_| atom(b"abc")).collect())
            );
        }
    }

    #[test]
    fn quoted_escapes_as_libgcrypt_writes_them() {
        let s = parse(br#"("a\"b\t\\\x41\101\n")"#).unwrap();
        assert_eq!(s.list().unwrap()[0].atom().unwrap(), b"a\"b\t\\AA\n");
        // UTF-8 passes through unchanged.
        let s = parse("(\"Zoë\")".as_bytes()).unwrap();
        assert_eq!(s.list().unwrap()[0].atom().unwrap(), "Zoë".as_bytes());
    }

    #[test]
    fn nested_lookup() {
        let s = parse(b"(account (name \"a@b\") (protocol xmpp))").unwrap();
        assert_eq!(s.head(), Some(&b"account"[..]));
        assert_eq!(s.value_of(b"name"), Some(&b"a@b"[..]));
        assert_eq!(s.value_of(b"protocol"), Some(&b"xmpp"[..]));
        assert!(s.value_of(b"private-key").is_none());
    }

    #[test]
    fn malformed_input_is_a_typed_error() {
        let cases: &[(&[u8], SexpError)] = &[
            (b"", SexpError::UnexpectedEnd { offset: 0 }),
            (b"(a (b)", SexpError::UnexpectedEnd { offset: 6 }),
            (
                b")",
                SexpError::UnexpectedByte {
                    byte: b')',
                    offset: 0,
                },
            ),
            (b"(a) b", SexpError::TrailingData { offset: 4 }),
            (b"(#abc#)", SexpError::BadEncoding { offset: 1 }),
            (b"(#zz#)", SexpError::BadEncoding { offset: 1 }),
            (b"(|!!|)", SexpError::BadEncoding { offset: 1 }),
            (b"(\"\\q\")", SexpError::BadEncoding { offset: 2 }),
            (b"(\"abc)", SexpError::UnexpectedEnd { offset: 6 }),
            (b"(5:ab)", SexpError::UnexpectedEnd { offset: 6 }),
            (
                b"(99999999999999999999999:a)",
                SexpError::BadEncoding { offset: 1 },
            ),
            (
                b"(3x)",
                SexpError::UnexpectedByte {
                    byte: b'x',
                    offset: 2,
                },
            ),
            (
                b"({KDE6YSk=})",
                SexpError::UnexpectedByte {
                    byte: b'{',
                    offset: 1,
                },
            ),
        ];
        for (text, want) in cases {
            assert_eq!(parse(text), Err(*want), "{:?}", core::str::from_utf8(text));
        }
    }

    #[test]
    fn depth_is_bounded() {
        let ok: Vec<u8> = [vec![b'('; MAX_DEPTH], vec![b')'; MAX_DEPTH]].concat();
        assert!(parse(&ok).is_ok());
        let deep: Vec<u8> = [vec![b'('; MAX_DEPTH + 1], vec![b')'; MAX_DEPTH + 1]].concat();
        assert_eq!(parse(&deep), Err(SexpError::TooDeep { offset: MAX_DEPTH }));
    }
}
