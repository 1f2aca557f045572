//! The engine's file-transfer calls (docs/xmpp-glue.md §9): it hands the sealed file, the
//! upload-service answers and the offers of decrypted messages to [`crate::transfer`].
//!
//! [`Engine::send_file`] seals and asks for a slot, [`Engine::upload_done`] sends the offer
//! to every device through the same dispatch as a text, [`Engine::download_done`] opens.

use rand_core::CryptoRng;

use crate::carriage::ExtraTlvs;
use crate::events::Output;
use crate::file::{self, FileError, FileOffer};
use crate::incoming::IqResponse;
use crate::requests::Pending;
use crate::stanza::{bare, domain};
use crate::transfer::{Limits, TransferId};

use super::Engine;

impl Engine {
    /// Sends a file to every device of `to` and to our other devices: it is sealed under
    /// a fresh key now, a slot is asked of our domain's HTTP upload service, and an
    /// [`Output::Upload`] follows; report its outcome to [`Engine::upload_done`]. The
    /// contact's device list is fetched meanwhile if it is not known yet.
    pub fn send_file<R: CryptoRng + ?Sized>(
        &mut self,
        to: &str,
        name: &str,
        media_type: &str,
        data: &[u8],
        now: i64,
        rng: &mut R,
    ) -> (TransferId, Vec<Output>) {
        self.prepare(now, rng);
        let to = bare(to).to_owned();
        let size = data.len() as u64;
        let max = self.cfg.max_file_size;
        let checked = if size > max {
            Err(FileError::TooLarge { size, max })
        } else {
            FileOffer::probe(name, media_type).and_then(|()| file::seal(data, rng))
        };
        let id = match checked {
            Ok(sealed) => {
                let d = domain(&self.cfg.jid).to_owned();
                self.files.send(
                    &mut self.car,
                    &mut self.reqs,
                    &d,
                    &to,
                    name,
                    media_type,
                    size,
                    sealed,
                )
            }
            Err(e) => self.files.refuse(&mut self.car, &to, e),
        };
        if to != self.cfg.jid && !self.dir.knows(&to) {
            self.fetch_list(&to);
        }
        (id, self.finish())
    }

    /// The caller's outcome of an [`Output::Upload`]: on success the offer (URL, key,
    /// size, hash, name, media type) goes to every device inside OTRv4, and
    /// [`crate::GlueEvent::FileSent`] follows; on failure [`crate::GlueEvent::FileFailed`].
    pub fn upload_done<R: CryptoRng + ?Sized>(
        &mut self,
        transfer: TransferId,
        result: Result<(), String>,
        now: i64,
        rng: &mut R,
    ) -> Vec<Output> {
        self.prepare(now, rng);
        if let Some((to, tlv)) = self.files.uploaded(&mut self.car, transfer, result) {
            let extra = ExtraTlvs(vec![tlv]);
            self.dispatch_with(&to, "", &extra, now, rng);
        }
        self.finish()
    }

    /// The caller's outcome of an [`Output::Download`]: the bytes are verified and
    /// decrypted, then [`crate::GlueEvent::File`]; or [`crate::GlueEvent::FileFailed`]
    /// (tampered, truncated, download failed) and nothing of the file.
    pub fn download_done<R: CryptoRng + ?Sized>(
        &mut self,
        transfer: TransferId,
        result: Result<Vec<u8>, String>,
        now: i64,
        rng: &mut R,
    ) -> Vec<Output> {
        self.prepare(now, rng);
        self.files.downloaded(&mut self.car, transfer, result);
        self.finish()
    }

    /// The offers found in this call's decrypted messages become downloads (at the end of
    /// every call).
    pub(super) fn offers_found(&mut self) {
        let offers = self.car.take_offers();
        if !offers.is_empty() {
            let limits = Limits {
                max: self.cfg.max_file_size,
                http_origin: self.cfg.allow_http_origin.as_deref(),
            };
            self.files.offers(&mut self.car, offers, &limits);
        }
    }

    /// An answer of the upload service's discovery or of a slot request.
    pub(super) fn upload_answer(&mut self, p: Pending, r: &IqResponse) {
        let d = domain(&self.cfg.jid).to_owned();
        match p {
            Pending::UploadItems => self.files.items(&mut self.car, &mut self.reqs, &d, r),
            Pending::UploadInfo { jid } => {
                self.files.info(&mut self.car, &mut self.reqs, &d, &jid, r);
            }
            Pending::UploadSlot { transfer } => {
                let limits = Limits {
                    max: self.cfg.max_file_size,
                    http_origin: self.cfg.allow_http_origin.as_deref(),
                };
                self.files.slot(&mut self.car, transfer, r, &limits);
            }
            _ => {}
        }
    }
}
