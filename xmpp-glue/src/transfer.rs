//! File transfers of the engine (docs/xmpp-glue.md §9): our domain's HTTP upload service
//! (XEP-0363) found and asked for slots, uploads and downloads handed to the caller, offers
//! received, and downloads opened.
//!
//! Sending: [`crate::Engine::send_file`] seals the file ([`crate::file`]), finds the upload
//! service (disco#items on our domain, disco#info on each item, feature
//! `urn:xmpp:http:upload:0`; answers only from the entity asked), asks it for a slot and
//! emits [`Output::Upload`]; [`crate::Engine::upload_done`] then sends the offer to every
//! device. Receiving: an offer inside a decrypted message becomes [`Output::Download`];
//! [`crate::Engine::download_done`] verifies and decrypts, and emits [`GlueEvent::File`].

use std::collections::BTreeMap;

use otr4::InstanceTag;
use otr4::{Tlv, TlvType};
use zeroize::Zeroizing;

use crate::carriage::Carriage;
use crate::events::GlueEvent;
use crate::file::{self, FileError, FileOffer, Sealed, ciphertext_len, url_allowed};
use crate::incoming::IqResponse;
use crate::requests::{Pending, Requests, Responder};
use crate::stanza::{self, UploadSlot};
use crate::trust::Trust;

/// The content type of every upload: the server sees ciphertext only, under a random name.
pub const UPLOAD_CONTENT_TYPE: &str = "application/octet-stream";

/// A file transfer, numbered by the engine (per engine, from 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TransferId(pub u64);

/// "PUT these bytes": the caller uploads `body` to `url` with `headers` and reports the
/// outcome to [`crate::Engine::upload_done`].
pub struct Upload {
    /// The transfer.
    pub transfer: TransferId,
    /// The slot's PUT URL (`https://`, or the allowed `http://` origin).
    pub url: String,
    /// Headers to send (at most `Authorization`, `Cookie`, `Expires`).
    pub headers: Vec<(String, String)>,
    /// The content type to send.
    pub content_type: &'static str,
    /// The encrypted file.
    pub body: Vec<u8>,
}

impl core::fmt::Debug for Upload {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Upload")
            .field("transfer", &self.transfer)
            .field("url", &self.url)
            .field("bytes", &self.body.len())
            .finish_non_exhaustive()
    }
}

/// "GET this URL": the caller downloads at most `max_len` bytes from `url` and passes them
/// to [`crate::Engine::download_done`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Download {
    /// The transfer.
    pub transfer: TransferId,
    /// The URL (`https://`, or the allowed `http://` origin).
    pub url: String,
    /// The exact length of the encrypted file; more is never needed (a longer answer is
    /// refused as tampered).
    pub max_len: u64,
}

/// A file received and verified.
pub struct ReceivedFile {
    /// The transfer.
    pub transfer: TransferId,
    /// The sender's bare JID.
    pub from: String,
    /// The sending device.
    pub device: InstanceTag,
    /// For a copy from another device of ours: the contact it was sent to.
    pub sent_to: Option<String>,
    /// The sending device's trust when the offer arrived (as for [`GlueEvent::Message`]).
    pub trust: Trust,
    /// Whether the device was on the sender's device list.
    pub listed: bool,
    /// The file name the sender gave (no path separators or control characters).
    pub name: String,
    /// The media type the sender gave.
    pub media_type: String,
    /// The file (zeroized on drop).
    pub data: Zeroizing<Vec<u8>>,
}

impl core::fmt::Debug for ReceivedFile {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ReceivedFile")
            .field("transfer", &self.transfer)
            .field("from", &self.from)
            .field("device", &self.device)
            .field("trust", &self.trust)
            .field("name", &self.name)
            .field("media_type", &self.media_type)
            .field("bytes", &self.data.len())
            .finish_non_exhaustive()
    }
}

/// An offer found in a decrypted message, with who sent it (collected by the carriage
/// during a call, registered by the engine at its end).
#[derive(Debug)]
pub(crate) struct OfferIn {
    pub from: String,
    pub device: InstanceTag,
    pub sent_to: Option<String>,
    pub trust: Trust,
    pub listed: bool,
    pub offer: Result<FileOffer, FileError>,
}

/// A file we send, from sealing to the offers.
struct Outgoing {
    to: String,
    name: String,
    media_type: String,
    size: u64,
    sealed: Sealed,
    /// The slot's GET URL once the slot is granted (the PUT was handed out).
    get: Option<String>,
}

/// What we know of our domain's upload service.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Service {
    Unknown,
    /// disco#info requests still unanswered.
    Discovering(usize),
    Found {
        jid: String,
        max: Option<u64>,
    },
    Absent,
}

/// The transfers in flight (not persisted: a restart forgets them).
pub(crate) struct Transfers {
    next: u64,
    service: Service,
    outgoing: BTreeMap<TransferId, Outgoing>,
    incoming: BTreeMap<TransferId, OfferIn>,
}

impl Default for Transfers {
    fn default() -> Transfers {
        Transfers {
            next: 1,
            service: Service::Unknown,
            outgoing: BTreeMap::new(),
            incoming: BTreeMap::new(),
        }
    }
}

/// The limits of the engine's configuration.
pub(crate) struct Limits<'a> {
    pub max: u64,
    pub http_origin: Option<&'a str>,
}

impl Transfers {
    fn id(&mut self) -> TransferId {
        let id = TransferId(self.next);
        self.next = self.next.saturating_add(1);
        id
    }

    fn fail(car: &mut Carriage, transfer: TransferId, peer: &str, error: FileError) {
        car.emit(GlueEvent::FileFailed {
            transfer,
            peer: peer.to_owned(),
            error,
        });
    }

    /// A file to send to `to`, already sealed: asks for a slot (after discovering the
    /// upload service of `domain` if needed).
    #[allow(clippy::too_many_arguments)]
    pub fn send(
        &mut self,
        car: &mut Carriage,
        reqs: &mut Requests,
        domain: &str,
        to: &str,
        name: &str,
        media_type: &str,
        size: u64,
        sealed: Sealed,
    ) -> TransferId {
        let id = self.id();
        self.outgoing.insert(
            id,
            Outgoing {
                to: to.to_owned(),
                name: name.to_owned(),
                media_type: media_type.to_owned(),
                size,
                sealed,
                get: None,
            },
        );
        match self.service.clone() {
            Service::Found { jid, max } => self.ask_slot(car, reqs, id, &jid, max),
            Service::Absent | Service::Unknown => {
                self.service = Service::Discovering(0);
                let d = domain.to_owned();
                reqs.send(
                    car,
                    Responder::Jid(d.clone()),
                    Pending::UploadItems,
                    |rid| stanza::disco_items(rid, &d),
                );
            }
            Service::Discovering(_) => {}
        }
        id
    }

    /// The stream came up again (requests in flight were forgotten): discovery and slot
    /// requests of the files still waiting for a slot are sent again.
    pub fn resume(&mut self, car: &mut Carriage, reqs: &mut Requests, domain: &str) {
        let waiting: Vec<TransferId> = self
            .outgoing
            .iter()
            .filter(|(_, o)| o.get.is_none())
            .map(|(id, _)| *id)
            .collect();
        match self.service.clone() {
            Service::Found { jid, max } => {
                for id in waiting {
                    self.ask_slot(car, reqs, id, &jid, max);
                }
            }
            _ => {
                self.service = Service::Unknown;
                if !waiting.is_empty() {
                    self.service = Service::Discovering(0);
                    let d = domain.to_owned();
                    reqs.send(
                        car,
                        Responder::Jid(d.clone()),
                        Pending::UploadItems,
                        |rid| stanza::disco_items(rid, &d),
                    );
                }
            }
        }
    }

    /// A refused transfer (checked before sealing): reported, never asked for.
    pub fn refuse(&mut self, car: &mut Carriage, to: &str, error: FileError) -> TransferId {
        let id = self.id();
        Self::fail(car, id, to, error);
        id
    }

    fn ask_slot(
        &mut self,
        car: &mut Carriage,
        reqs: &mut Requests,
        id: TransferId,
        service: &str,
        max: Option<u64>,
    ) {
        let Some(o) = self.outgoing.get(&id) else {
            return;
        };
        let len = o.sealed.ciphertext.len() as u64;
        if let Some(m) = max
            && len > m
        {
            let to = o.to.clone();
            self.outgoing.remove(&id);
            Self::fail(car, id, &to, FileError::TooLarge { size: len, max: m });
            return;
        }
        // A random name: the server learns the ciphertext's size and nothing else of it.
        let filename = format!("{}.bin", car.id());
        let s = service.to_owned();
        reqs.send(
            car,
            Responder::Jid(s.clone()),
            Pending::UploadSlot { transfer: id.0 },
            |rid| stanza::upload_slot_request(rid, &s, &filename, len, UPLOAD_CONTENT_TYPE),
        );
    }

    /// The answer to disco#items on our domain (`domain`): each item (and the domain
    /// itself) is asked whether it is an upload service.
    pub fn items(&mut self, car: &mut Carriage, reqs: &mut Requests, domain: &str, r: &IqResponse) {
        let mut jids: Vec<String> = vec![domain.to_owned()];
        if r.ok {
            for i in &r.disco_items {
                if i.node.is_none() && !jids.contains(&i.jid) {
                    jids.push(i.jid.clone());
                }
            }
        }
        self.service = Service::Discovering(jids.len());
        tracing::debug!(?jids, "upload service candidates");
        for j in jids {
            reqs.send(
                car,
                Responder::Jid(j.clone()),
                Pending::UploadInfo { jid: j.clone() },
                |rid| stanza::disco_info(rid, &j),
            );
        }
    }

    /// The disco#info answer of `jid`.
    pub fn info(
        &mut self,
        car: &mut Carriage,
        reqs: &mut Requests,
        domain: &str,
        jid: &str,
        r: &IqResponse,
    ) {
        let Service::Discovering(left) = self.service else {
            return;
        };
        tracing::debug!(
            jid,
            left,
            upload = r.upload_service.is_some(),
            "upload service disco#info"
        );
        match r.upload_service.filter(|_| r.ok) {
            Some(max) => {
                self.service = Service::Found {
                    jid: jid.to_owned(),
                    max,
                };
                let waiting: Vec<TransferId> = self
                    .outgoing
                    .iter()
                    .filter(|(_, o)| o.get.is_none())
                    .map(|(id, _)| *id)
                    .collect();
                for id in waiting {
                    self.ask_slot(car, reqs, id, jid, max);
                }
            }
            None if left <= 1 => {
                self.service = Service::Absent;
                for (id, o) in core::mem::take(&mut self.outgoing) {
                    Self::fail(
                        car,
                        id,
                        &o.to,
                        FileError::NoUploadService(domain.to_owned()),
                    );
                }
            }
            None => self.service = Service::Discovering(left - 1),
        }
    }

    /// The slot answer for `transfer`: the upload is handed to the caller.
    pub fn slot(&mut self, car: &mut Carriage, transfer: u64, r: &IqResponse, limits: &Limits<'_>) {
        let id = TransferId(transfer);
        tracing::debug!(
            transfer,
            ok = r.ok,
            slot = r.upload_slot.is_some(),
            "upload slot"
        );
        // A second answer (the request was sent again after a reconnection) is ignored.
        let Some(o) = self.outgoing.get_mut(&id).filter(|o| o.get.is_none()) else {
            return;
        };
        let slot: Result<UploadSlot, FileError> = match (&r.upload_slot, &r.failure) {
            (Some(s), _) if r.ok => Ok(UploadSlot::clone(s)),
            (_, Some(f)) => Err(FileError::SlotRefused(f.to_string())),
            _ => Err(FileError::SlotRefused("answer without a slot".to_owned())),
        };
        let slot = slot.and_then(|s| {
            for u in [&s.put, &s.get] {
                if !url_allowed(u, limits.http_origin) {
                    return Err(FileError::BadUrl(u.clone()));
                }
            }
            Ok(s)
        });
        match slot {
            Ok(s) => {
                o.get = Some(s.get);
                let body = core::mem::take(&mut o.sealed.ciphertext);
                car.upload(Upload {
                    transfer: id,
                    url: s.put,
                    headers: s.headers,
                    content_type: UPLOAD_CONTENT_TYPE,
                    body,
                });
            }
            Err(e) => {
                let to = o.to.clone();
                self.outgoing.remove(&id);
                Self::fail(car, id, &to, e);
            }
        }
    }

    /// The caller uploaded (or failed to): on success, the contact and the offer TLV to
    /// send to every device.
    pub fn uploaded(
        &mut self,
        car: &mut Carriage,
        id: TransferId,
        result: Result<(), String>,
    ) -> Option<(String, Tlv)> {
        let Some(o) = self.outgoing.get(&id) else {
            car.emit(GlueEvent::Error(crate::GlueError::File(
                FileError::UnknownTransfer(id.0),
            )));
            return None;
        };
        let Some(url) = o.get.clone() else {
            car.emit(GlueEvent::Error(crate::GlueError::File(
                FileError::UnknownTransfer(id.0),
            )));
            return None;
        };
        let o = self.outgoing.remove(&id)?;
        if let Err(e) = result {
            Self::fail(car, id, &o.to, FileError::Upload(e));
            return None;
        }
        let offer = FileOffer {
            url,
            size: o.size,
            sha256: o.sealed.sha256,
            name: o.name.clone(),
            media_type: o.media_type.clone(),
            key: o.sealed.key.clone(),
        };
        let value = offer.encode();
        car.emit(GlueEvent::FileSent {
            transfer: id,
            to: o.to.clone(),
        });
        Some((
            o.to,
            Tlv {
                typ: TlvType::ExtraSymmetricKey,
                value: value.to_vec(),
            },
        ))
    }

    /// Offers found during a call: each one checked (size, URL) and handed out as a download.
    pub fn offers(&mut self, car: &mut Carriage, offers: Vec<OfferIn>, limits: &Limits<'_>) {
        for o in offers {
            let id = self.id();
            let checked = o.offer.as_ref().map_err(Clone::clone).and_then(|f| {
                if f.size > limits.max {
                    return Err(FileError::TooLarge {
                        size: f.size,
                        max: limits.max,
                    });
                }
                if !url_allowed(&f.url, limits.http_origin) {
                    return Err(FileError::BadUrl(f.url.clone()));
                }
                let max_len = ciphertext_len(f.size).ok_or(FileError::BadOffer("size"))?;
                Ok((f.url.clone(), max_len))
            });
            match checked {
                Ok((url, max_len)) => {
                    self.incoming.insert(id, o);
                    car.download(Download {
                        transfer: id,
                        url,
                        max_len,
                    });
                }
                Err(e) => Self::fail(car, id, &o.from, e),
            }
        }
    }

    /// The caller downloaded (or failed to): verified and decrypted, the file is handed out.
    pub fn downloaded(
        &mut self,
        car: &mut Carriage,
        id: TransferId,
        result: Result<Vec<u8>, String>,
    ) {
        let Some(o) = self.incoming.remove(&id) else {
            car.emit(GlueEvent::Error(crate::GlueError::File(
                FileError::UnknownTransfer(id.0),
            )));
            return;
        };
        let Ok(offer) = o.offer else { return };
        let opened = result
            .map_err(FileError::Download)
            .and_then(|bytes| file::open(&bytes, &offer));
        match opened {
            Ok(data) => car.emit(GlueEvent::File(Box::new(ReceivedFile {
                transfer: id,
                from: o.from,
                device: o.device,
                sent_to: o.sent_to,
                trust: o.trust,
                listed: o.listed,
                name: offer.name.clone(),
                media_type: offer.media_type.clone(),
                data,
            }))),
            Err(e) => Self::fail(car, id, &o.from, e),
        }
    }
}
