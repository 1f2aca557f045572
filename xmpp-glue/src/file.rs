//! Encrypted files (docs/xmpp-glue.md §9, xep-draft §"Encrypted file transfer"): a file is
//! sealed under a random key, chunk by chunk, and its offer travels inside OTRv4.
//!
//! The ciphertext is the STREAM construction (Hoang, Reyhanitabar, Rogaway, Vizár 2015;
//! the `aead-stream` crate's big-endian 32-bit counter flavour) over ChaCha20-Poly1305:
//! 64 KiB plaintext chunks, each sealed with the 7-byte nonce prefix, its index and a
//! last-chunk flag, so a reordered, dropped, appended or truncated chunk fails to open.
//! The key and prefix are random per file ([`FileKey`]); the [`FileOffer`] that carries
//! them (with the download URL, size, SHA-256, name and media type) is the value of a
//! type 7 TLV with the use indication [`FILE_CONTEXT`] inside an OTRv4 data message.
//! Nothing decrypted leaves [`open`] before every chunk and the hash verified.

use aead_stream::{DecryptorBE32, EncryptorBE32};
use chacha20poly1305::aead::array::Array;
use chacha20poly1305::{ChaCha20Poly1305, KeyInit};
use rand_core::CryptoRng;
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// The use indication of the type 7 TLV that carries a file offer (otrv4.md §"Extra
/// Symmetric Key": the first 4 bytes say what the TLV is for). The TLV's extra symmetric
/// key is not used: the file key travels in the offer (docs/spec-notes.md §"File keys").
pub const FILE_CONTEXT: [u8; 4] = *b"O4fi";

/// Plaintext bytes per STREAM chunk (each ciphertext chunk is 16 bytes longer).
pub const FILE_CHUNK: usize = 64 * 1024;

/// The largest file the engine sends or accepts unless configured otherwise
/// ([`crate::EngineConfig::max_file_size`]): 100 MiB.
pub const DEFAULT_MAX_FILE_SIZE: u64 = 100 * 1024 * 1024;

/// The offer encoding's version byte (xep-draft §"Encrypted file transfer").
const OFFER_VERSION: u8 = 1;
const TAG_LEN: u64 = 16;
const KEY_LEN: usize = 32;
const PREFIX_LEN: usize = 7;
/// Longest URL, file name and media type an offer may carry.
const MAX_URL: usize = 2048;
const MAX_NAME: usize = 255;
const MAX_MEDIA_TYPE: usize = 255;

/// What went wrong with a file transfer. `Display` is a message for users.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FileError {
    /// The file is larger than the configured limit (sending or receiving).
    #[error("the file is {size} bytes, more than the limit of {max} bytes")]
    TooLarge {
        /// Its size.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// A URL is not `https://` (nor the loopback `http://` origin the configuration allows).
    #[error("refused URL {0}: only https:// is allowed")]
    BadUrl(String),
    /// The download is shorter than the offer announced.
    #[error("the download is truncated ({got} of {expected} bytes)")]
    Truncated {
        /// Bytes received.
        got: u64,
        /// Bytes the offer announced.
        expected: u64,
    },
    /// The download does not verify: a chunk was changed, reordered or appended, or the
    /// key or hash is not the sender's. Nothing of it is handed out.
    #[error("the downloaded file was tampered with (it does not verify); it was discarded")]
    Tampered,
    /// A file offer inside a message does not decode.
    #[error("malformed file offer: {0}")]
    BadOffer(&'static str),
    /// No HTTP upload service (XEP-0363) was found on our domain.
    #[error("no HTTP upload service found on {0}")]
    NoUploadService(String),
    /// The upload service refused a slot, or answered without one.
    #[error("the upload service refused a slot: {0}")]
    SlotRefused(String),
    /// The HTTP upload failed (reported by the caller).
    #[error("the upload failed: {0}")]
    Upload(String),
    /// The HTTP download failed (reported by the caller).
    #[error("the download failed: {0}")]
    Download(String),
    /// No transfer with this id is under way.
    #[error("no file transfer {0} is under way")]
    UnknownTransfer(u64),
}

/// A file's key and nonce prefix: random per file, zeroized on drop, never printed.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub(crate) struct FileKey {
    key: [u8; KEY_LEN],
    prefix: [u8; PREFIX_LEN],
}

impl core::fmt::Debug for FileKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("FileKey(..)")
    }
}

impl FileKey {
    fn random<R: CryptoRng + ?Sized>(rng: &mut R) -> FileKey {
        let mut k = FileKey {
            key: [0; KEY_LEN],
            prefix: [0; PREFIX_LEN],
        };
        rng.fill_bytes(&mut k.key);
        rng.fill_bytes(&mut k.prefix);
        k
    }

    fn aead(&self) -> ChaCha20Poly1305 {
        ChaCha20Poly1305::new(&Array::from(self.key))
    }
}

/// The size of the ciphertext of a `size`-byte file (one tag per chunk, at least one
/// chunk), or `None` if it does not fit in a `u64`.
pub fn ciphertext_len(size: u64) -> Option<u64> {
    let chunk = FILE_CHUNK as u64;
    let chunks = size.div_ceil(chunk).max(1);
    size.checked_add(chunks.checked_mul(TAG_LEN)?)
}

/// A sealed file: its ciphertext, key and plaintext hash.
pub(crate) struct Sealed {
    pub ciphertext: Vec<u8>,
    pub key: FileKey,
    pub sha256: [u8; 32],
}

/// Encrypts `plain` under a fresh random key (STREAM, [`FILE_CHUNK`]-byte chunks).
pub(crate) fn seal<R: CryptoRng + ?Sized>(plain: &[u8], rng: &mut R) -> Result<Sealed, FileError> {
    let key = FileKey::random(rng);
    let total = ciphertext_len(plain.len() as u64).ok_or(FileError::TooLarge {
        size: plain.len() as u64,
        max: u64::MAX,
    })?;
    let mut out = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
    let mut enc =
        EncryptorBE32::<ChaCha20Poly1305>::from_aead(key.aead(), &Array::from(key.prefix));
    let n = plain.len().div_ceil(FILE_CHUNK).max(1);
    let mut chunks = plain.chunks(FILE_CHUNK);
    for _ in 1..n {
        let c = chunks.next().unwrap_or_default();
        let next = enc.encrypt_next(c).map_err(|_| FileError::Tampered)?;
        out.extend_from_slice(&next);
    }
    let last = enc
        .encrypt_last(chunks.next().unwrap_or_default())
        .map_err(|_| FileError::Tampered)?;
    out.extend_from_slice(&last);
    Ok(Sealed {
        ciphertext: out,
        key,
        sha256: Sha256::digest(plain).into(),
    })
}

/// Decrypts and verifies a download against its offer: the length first (truncation),
/// then every chunk, then the hash. The plaintext is released only if all of it verifies.
pub(crate) fn open(ciphertext: &[u8], offer: &FileOffer) -> Result<Zeroizing<Vec<u8>>, FileError> {
    let expected = ciphertext_len(offer.size).ok_or(FileError::BadOffer("size"))?;
    let got = ciphertext.len() as u64;
    if got < expected {
        return Err(FileError::Truncated { got, expected });
    }
    if got > expected {
        return Err(FileError::Tampered);
    }
    let mut plain = Zeroizing::new(Vec::with_capacity(
        usize::try_from(offer.size).map_err(|_| FileError::BadOffer("size"))?,
    ));
    let key = &offer.key;
    let mut dec =
        DecryptorBE32::<ChaCha20Poly1305>::from_aead(key.aead(), &Array::from(key.prefix));
    let size = FILE_CHUNK + TAG_LEN as usize;
    let n = ciphertext.len().div_ceil(size).max(1);
    let mut chunks = ciphertext.chunks(size);
    for _ in 1..n {
        let c = chunks.next().ok_or(FileError::Tampered)?;
        let part = Zeroizing::new(dec.decrypt_next(c).map_err(|_| FileError::Tampered)?);
        plain.extend_from_slice(&part);
    }
    let last = chunks.next().unwrap_or_default();
    let part = Zeroizing::new(dec.decrypt_last(last).map_err(|_| FileError::Tampered)?);
    plain.extend_from_slice(&part);
    // The hash is public (it is in the offer) and checked after the AEAD verified: no
    // secret depends on this comparison's timing.
    if <[u8; 32]>::from(Sha256::digest(plain.as_slice())) != offer.sha256 {
        return Err(FileError::Tampered);
    }
    Ok(plain)
}

/// What a receiving device needs to fetch and open a file (xep-draft §"Encrypted file
/// transfer"), carried inside the OTRv4 message.
#[derive(Clone)]
pub(crate) struct FileOffer {
    /// Where the ciphertext is (the slot's GET URL).
    pub url: String,
    /// The plaintext size.
    pub size: u64,
    /// SHA-256 of the plaintext.
    pub sha256: [u8; 32],
    /// The file name the sender gave (no path separators or control characters).
    pub name: String,
    /// Its media type (e.g. `image/png`).
    pub media_type: String,
    /// The file key.
    pub key: FileKey,
}

impl core::fmt::Debug for FileOffer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("FileOffer")
            .field("url", &self.url)
            .field("size", &self.size)
            .field("name", &self.name)
            .field("media_type", &self.media_type)
            .finish_non_exhaustive()
    }
}

fn name_ok(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name
            .chars()
            .any(|c| c == '/' || c == '\\' || c.is_control())
}

fn media_type_ok(mt: &str) -> bool {
    !mt.is_empty()
        && mt
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
}

impl FileOffer {
    /// Checks a name and media type we are about to send (as [`FileOffer::check`] will
    /// at the receiver).
    pub fn probe(name: &str, media_type: &str) -> Result<(), FileError> {
        if name.len() > MAX_NAME || !name_ok(name) {
            return Err(FileError::BadOffer("file name"));
        }
        if media_type.len() > MAX_MEDIA_TYPE || !media_type_ok(media_type) {
            return Err(FileError::BadOffer("media type"));
        }
        Ok(())
    }

    /// Checks what the sender controls: name, media type, lengths.
    pub fn check(&self) -> Result<(), FileError> {
        if self.url.len() > MAX_URL || self.url.is_empty() {
            return Err(FileError::BadOffer("url length"));
        }
        if self.name.len() > MAX_NAME || !name_ok(&self.name) {
            return Err(FileError::BadOffer("file name"));
        }
        if self.media_type.len() > MAX_MEDIA_TYPE || !media_type_ok(&self.media_type) {
            return Err(FileError::BadOffer("media type"));
        }
        Ok(())
    }

    /// The TLV value: `O4fi` ‖ version 1 ‖ key (32) ‖ nonce prefix (7) ‖ size (u64 BE) ‖
    /// SHA-256 (32) ‖ url, name, media type (each a u16 BE length and UTF-8 bytes).
    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        let mut v = Zeroizing::new(Vec::with_capacity(
            4 + 1
                + KEY_LEN
                + PREFIX_LEN
                + 8
                + 32
                + 6
                + self.url.len()
                + self.name.len()
                + self.media_type.len(),
        ));
        v.extend_from_slice(&FILE_CONTEXT);
        v.push(OFFER_VERSION);
        v.extend_from_slice(&self.key.key);
        v.extend_from_slice(&self.key.prefix);
        v.extend_from_slice(&self.size.to_be_bytes());
        v.extend_from_slice(&self.sha256);
        for s in [&self.url, &self.name, &self.media_type] {
            let len = u16::try_from(s.len()).unwrap_or(u16::MAX);
            v.extend_from_slice(&len.to_be_bytes());
            v.extend_from_slice(s.as_bytes().get(..usize::from(len)).unwrap_or_default());
        }
        v
    }

    /// Decodes a TLV value [`FileOffer::encode`] made (with its `O4fi` use indication),
    /// and checks it ([`FileOffer::check`]).
    pub fn decode(value: &[u8]) -> Result<FileOffer, FileError> {
        let mut r = Reader(value);
        if r.take(4)? != FILE_CONTEXT.as_slice() {
            return Err(FileError::BadOffer("not a file offer"));
        }
        if r.take(1)? != [OFFER_VERSION].as_slice() {
            return Err(FileError::BadOffer("unknown version"));
        }
        let mut key = FileKey {
            key: [0; KEY_LEN],
            prefix: [0; PREFIX_LEN],
        };
        key.key.copy_from_slice(r.take(KEY_LEN)?);
        key.prefix.copy_from_slice(r.take(PREFIX_LEN)?);
        let mut size = [0u8; 8];
        size.copy_from_slice(r.take(8)?);
        let mut sha256 = [0u8; 32];
        sha256.copy_from_slice(r.take(32)?);
        let url = r.string()?;
        let name = r.string()?;
        let media_type = r.string()?;
        if !r.0.is_empty() {
            return Err(FileError::BadOffer("trailing bytes"));
        }
        let offer = FileOffer {
            url,
            size: u64::from_be_bytes(size),
            sha256,
            name,
            media_type,
            key,
        };
        offer.check()?;
        Ok(offer)
    }
}

/// Decodes a file offer's TLV value ([`FileOffer::decode`], with its checks) and encodes
/// it again; the fuzz target's entry (feature `stanzas`), never used by the engine.
#[cfg(feature = "stanzas")]
pub fn reencode_offer(value: &[u8]) -> Result<Zeroizing<Vec<u8>>, FileError> {
    FileOffer::decode(value).map(|o| o.encode())
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], FileError> {
        if self.0.len() < n {
            return Err(FileError::BadOffer("too short"));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }

    fn string(&mut self) -> Result<String, FileError> {
        let l = self.take(2)?;
        let len = usize::from(u16::from_be_bytes([
            l.first().copied().unwrap_or(0),
            l.get(1).copied().unwrap_or(0),
        ]));
        let s = self.take(len)?;
        String::from_utf8(s.to_vec()).map_err(|_| FileError::BadOffer("not UTF-8"))
    }
}

/// Whether `url` may be fetched or written: `https://`, or an `http://` URL on the origin
/// `allowed_http` (a loopback origin for tests, e.g. `http://127.0.0.1:5280`).
pub(crate) fn url_allowed(url: &str, allowed_http: Option<&str>) -> bool {
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    if let Some(rest) = url.strip_prefix("https://") {
        return !rest.is_empty() && !rest.starts_with('/');
    }
    match allowed_http {
        Some(origin) => url
            .strip_prefix(origin)
            .is_some_and(|rest| rest.starts_with('/')),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 31 % 251) as u8).collect()
    }

    fn offer_for(plain: &[u8], rng: &mut StdRng) -> (Vec<u8>, FileOffer) {
        let s = seal(plain, rng).unwrap();
        let offer = FileOffer {
            url: "https://upload.example.org/abc/x.bin".into(),
            size: plain.len() as u64,
            sha256: s.sha256,
            name: "photo.jpg".into(),
            media_type: "image/jpeg".into(),
            key: s.key.clone(),
        };
        (s.ciphertext.clone(), offer)
    }

    #[test]
    fn round_trip_at_chunk_boundaries() {
        let mut rng = StdRng::seed_from_u64(1);
        for n in [
            0,
            1,
            FILE_CHUNK - 1,
            FILE_CHUNK,
            FILE_CHUNK + 1,
            3 * FILE_CHUNK + 5,
        ] {
            let plain = data(n);
            let (c, offer) = offer_for(&plain, &mut rng);
            assert_eq!(c.len() as u64, ciphertext_len(n as u64).unwrap(), "{n}");
            assert_eq!(
                open(&c, &offer).unwrap().as_slice(),
                plain.as_slice(),
                "{n}"
            );
        }
        // 0 bytes: one empty last chunk (a tag); 64 KiB: one chunk; +1: two.
        assert_eq!(ciphertext_len(0), Some(16));
        assert_eq!(
            ciphertext_len(FILE_CHUNK as u64),
            Some(FILE_CHUNK as u64 + 16)
        );
        assert_eq!(
            ciphertext_len(FILE_CHUNK as u64 + 1),
            Some(FILE_CHUNK as u64 + 33)
        );
        assert_eq!(ciphertext_len(u64::MAX), None);
    }

    #[test]
    fn known_answer_of_the_construction() {
        // All-zero key and prefix, "abc": ChaCha20-Poly1305 with nonce 0^7 ‖ counter 0 ‖
        // last flag 1 (aead-stream's big-endian 32-bit STREAM).
        let key = FileKey {
            key: [0; 32],
            prefix: [0; 7],
        };
        let enc =
            EncryptorBE32::<ChaCha20Poly1305>::from_aead(key.aead(), &Array::from(key.prefix));
        let c = enc.encrypt_last(&b"abc"[..]).unwrap();
        use chacha20poly1305::aead::Aead;
        let mut nonce = [0u8; 12];
        nonce[11] = 1;
        let direct = key
            .aead()
            .encrypt(&Array::from(nonce), &b"abc"[..])
            .unwrap();
        assert_eq!(c, direct);
    }

    #[test]
    fn every_tampered_byte_is_refused() {
        let mut rng = StdRng::seed_from_u64(2);
        let plain = data(FILE_CHUNK + 100);
        let (c, offer) = offer_for(&plain, &mut rng);
        for i in (0..c.len())
            .step_by(997)
            .chain([0, FILE_CHUNK + 15, c.len() - 1])
        {
            let mut t = c.clone();
            t[i] ^= 0x01;
            assert_eq!(
                open(&t, &offer).unwrap_err(),
                FileError::Tampered,
                "byte {i}"
            );
        }
    }

    #[test]
    fn truncation_reordering_and_extension_are_refused() {
        let mut rng = StdRng::seed_from_u64(3);
        let plain = data(3 * FILE_CHUNK);
        let (c, offer) = offer_for(&plain, &mut rng);
        let full = c.len() as u64;
        // Cut at a chunk boundary, and anywhere.
        for cut in [FILE_CHUNK + 16, 2 * (FILE_CHUNK + 16), c.len() - 1, 0] {
            assert_eq!(
                open(&c[..cut], &offer).unwrap_err(),
                FileError::Truncated {
                    got: cut as u64,
                    expected: full
                }
            );
        }
        // A truncated file announced as truncated: the last-chunk flag catches it.
        let mut short = offer.clone();
        short.size = 2 * FILE_CHUNK as u64;
        assert_eq!(
            open(&c[..2 * (FILE_CHUNK + 16)], &short).unwrap_err(),
            FileError::Tampered
        );
        // Two chunks swapped.
        let n = FILE_CHUNK + 16;
        let mut swapped = c[n..2 * n].to_vec();
        swapped.extend_from_slice(&c[..n]);
        swapped.extend_from_slice(&c[2 * n..]);
        assert_eq!(open(&swapped, &offer).unwrap_err(), FileError::Tampered);
        // Appended bytes.
        let mut longer = c.clone();
        longer.push(0);
        assert_eq!(open(&longer, &offer).unwrap_err(), FileError::Tampered);
    }

    #[test]
    fn wrong_key_prefix_or_hash_is_refused() {
        let mut rng = StdRng::seed_from_u64(4);
        let plain = data(1000);
        let (c, offer) = offer_for(&plain, &mut rng);
        let mut k = offer.clone();
        k.key.key[0] ^= 1;
        assert_eq!(open(&c, &k).unwrap_err(), FileError::Tampered);
        let mut p = offer.clone();
        p.key.prefix[6] ^= 1;
        assert_eq!(open(&c, &p).unwrap_err(), FileError::Tampered);
        let mut h = offer.clone();
        h.sha256[31] ^= 1;
        assert_eq!(open(&c, &h).unwrap_err(), FileError::Tampered);
        // Another file's key.
        let (_, other) = offer_for(&plain, &mut rng);
        assert_eq!(open(&c, &other).unwrap_err(), FileError::Tampered);
    }

    #[test]
    fn offers_round_trip_and_bad_ones_are_typed_errors() {
        let mut rng = StdRng::seed_from_u64(5);
        let (_, offer) = offer_for(b"hello", &mut rng);
        let v = offer.encode();
        let back = FileOffer::decode(&v).unwrap();
        assert_eq!(back.encode(), v);
        assert_eq!(
            (back.url.as_str(), back.size, back.name.as_str()),
            ("https://upload.example.org/abc/x.bin", 5, "photo.jpg")
        );
        assert!(!format!("{back:?}").contains(&hex::encode(back.key.key)));
        for cut in 0..v.len() {
            assert!(matches!(
                FileOffer::decode(&v[..cut]),
                Err(FileError::BadOffer(_))
            ));
        }
        let mut trailing = v.to_vec();
        trailing.push(0);
        assert_eq!(
            FileOffer::decode(&trailing).unwrap_err(),
            FileError::BadOffer("trailing bytes")
        );
        let mut version = v.to_vec();
        version[4] = 2;
        assert_eq!(
            FileOffer::decode(&version).unwrap_err(),
            FileError::BadOffer("unknown version")
        );
        for bad in ["../etc/passwd", "a/b", "a\\b", "..", "", "x\ny"] {
            let mut o = offer.clone();
            o.name = bad.into();
            assert_eq!(
                FileOffer::decode(&o.encode()).unwrap_err(),
                FileError::BadOffer("file name"),
                "{bad:?}"
            );
        }
        let mut o = offer.clone();
        o.media_type = "text/html\"".into();
        assert!(FileOffer::decode(&o.encode()).is_err());
    }

    #[test]
    fn urls_are_https_or_the_allowed_origin() {
        let http = Some("http://127.0.0.1:5280");
        assert!(url_allowed("https://x.org/f", None));
        assert!(!url_allowed("http://x.org/f", None));
        assert!(url_allowed("http://127.0.0.1:5280/f", http));
        assert!(!url_allowed("http://127.0.0.1:52800/f", http));
        assert!(!url_allowed("http://127.0.0.1:5280@evil.org/f", http));
        assert!(!url_allowed("https:///f", None));
        assert!(!url_allowed("https://x.org/a b", None));
        assert!(!url_allowed("file:///etc/passwd", http));
        assert!(!url_allowed("ftp://x.org/f", None));
    }

    proptest! {
        #[test]
        fn offer_decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let mut v = FILE_CONTEXT.to_vec();
            v.push(OFFER_VERSION);
            v.extend_from_slice(&bytes);
            let _ = FileOffer::decode(&v);
            let _ = FileOffer::decode(&bytes);
        }
    }
}
