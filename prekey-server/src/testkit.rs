//! Publisher and retriever drivers over any transport, built on the protocol's client side
//! ([`otr4::hazmat::prekey::client::PrekeyClient`]); used by the tests, benches and demos.
//!
//! A transport is a closure `exchange(text) -> replies`: it sends one encoded text to the
//! server and returns the texts the server answered with (fragments are reassembled here).

use otr4::Fingerprint;
use otr4::InstanceTag;
use otr4::PrekeyServerMessage;
use otr4::PrekeyStore;
use otr4::hazmat::crypto::ed448::KeyPair;
use otr4::hazmat::crypto::keys::generate_forging_point;
use otr4::hazmat::prekey::client::{ClientEvent, PrekeyClient, Retrieved, ServerReply};
use otr4::hazmat::prekey::framing;
use otr4::hazmat::profile::client::ClientProfile;
use otr4::hazmat::wire::fragment::{FragmentKind, Reassembler};

/// Why a driven exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum DriveError {
    /// The protocol client rejected something.
    #[error("protocol: {0}")]
    Protocol(#[from] otr4::PrekeyError),
    /// The server answered nothing (or only fragments of nothing).
    #[error("no reply from the server")]
    NoReply,
    /// The server's reply did not decode.
    #[error("bad reply: {0}")]
    BadReply(String),
    /// The server answered with something unexpected at this point.
    #[error("unexpected reply: {0}")]
    Unexpected(String),
}

/// Decodes the server's replies (reassembling `?OTRP|` fragments) into messages.
pub fn decode_replies(replies: &[String]) -> Result<Vec<PrekeyServerMessage>, DriveError> {
    let mut r = Reassembler::new(FragmentKind::Prekey);
    let mut out = Vec::new();
    for text in replies {
        let received = framing::receive(text, |f| r.push_fragment(f, InstanceTag::UNKNOWN, 0))
            .map_err(|e| DriveError::BadReply(e.to_string()))?;
        if let Some(m) = received {
            out.push(m);
        }
    }
    Ok(out)
}

fn one_reply(replies: &[String]) -> Result<PrekeyServerMessage, DriveError> {
    decode_replies(replies)?
        .into_iter()
        .next()
        .ok_or(DriveError::NoReply)
}

/// One publishing device: a JID, long-term key, Client Profile, the protocol client and the
/// device's secret prekey store.
pub struct Device {
    /// The device's bare JID.
    pub jid: String,
    /// The long-term key pair.
    pub long_term: KeyPair,
    /// The protocol client.
    pub client: PrekeyClient,
    /// The secrets of generated Prekey messages and shared prekeys.
    pub store: PrekeyStore,
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Device")
            .field("jid", &self.jid)
            .field("instance_tag", &self.client.instance_tag())
            .finish_non_exhaustive()
    }
}

/// Profiles made by [`Device::new`] expire this long after `now`.
pub const PROFILE_LIFETIME_SECS: i64 = 14 * 24 * 3600;

impl Device {
    /// A new device of `jid` with a random instance tag, long-term and forging keys, and a
    /// Client Profile (versions "4") valid from `now`, talking to the server `server_jid`
    /// with `fingerprint`.
    pub fn new(
        jid: &str,
        server_jid: &str,
        fingerprint: Fingerprint,
        now: i64,
    ) -> Result<Device, DriveError> {
        let rng = &mut rand::rng();
        let tag = InstanceTag::random(rng);
        let long_term = KeyPair::generate(rng);
        let forging = generate_forging_point(rng);
        let cp = ClientProfile::build_and_sign(
            tag,
            &long_term,
            &forging,
            b"4",
            now + PROFILE_LIFETIME_SECS,
        );
        let client = PrekeyClient::new(
            jid.as_bytes().to_vec(),
            long_term.clone(),
            cp,
            server_jid.as_bytes().to_vec(),
            fingerprint,
        )?;
        Ok(Device {
            jid: jid.to_owned(),
            long_term,
            client,
            store: PrekeyStore::new(tag),
        })
    }

    /// The device's instance tag.
    pub fn instance_tag(&self) -> InstanceTag {
        self.client.instance_tag()
    }

    /// Publishes `n` fresh Prekey messages (0..=255), with the Client Profile and a new
    /// Prekey Profile if `with_profiles`. Returns the ids sent and the server's verified
    /// reply.
    pub fn publish(
        &mut self,
        n: usize,
        with_profiles: bool,
        now: i64,
        exchange: &mut dyn FnMut(&str) -> Vec<String>,
    ) -> Result<(Vec<u32>, ServerReply), DriveError> {
        let rng = &mut rand::rng();
        let ids: Vec<u32> = if n == 0 {
            Vec::new()
        } else {
            self.store
                .generate_prekey_messages(rng, n, now)?
                .iter()
                .map(|m| m.id)
                .collect()
        };
        if with_profiles {
            self.store
                .new_prekey_profile(rng, &self.long_term, now + PROFILE_LIFETIME_SECS);
        }
        let mut items = self.store.publish_items(&ids, with_profiles)?;
        if with_profiles {
            items = items.with_client_profile(self.client.client_profile().clone());
        }
        let dake1 = self.client.publish(rng, items)?;
        let reply = self.run_dake(&framing::encode(&dake1), now, exchange)?;
        Ok((ids, reply))
    }

    /// Asks the server how many of our Prekey messages it stores.
    pub fn storage_status(
        &mut self,
        now: i64,
        exchange: &mut dyn FnMut(&str) -> Vec<String>,
    ) -> Result<ServerReply, DriveError> {
        let dake1 = self.client.request_storage_status(&mut rand::rng())?;
        self.run_dake(&framing::encode(&dake1), now, exchange)
    }

    fn run_dake(
        &mut self,
        dake1: &str,
        now: i64,
        exchange: &mut dyn FnMut(&str) -> Vec<String>,
    ) -> Result<ServerReply, DriveError> {
        let rng = &mut rand::rng();
        let dake2 = one_reply(&exchange(dake1))?;
        let dake3 = match self.client.receive(rng, &dake2, now)? {
            ClientEvent::Send(d) => d,
            other => return Err(DriveError::Unexpected(format!("{other:?}"))),
        };
        let reply = one_reply(&exchange(&framing::encode(&*dake3)))?;
        match self.client.receive(rng, &reply, now)? {
            ClientEvent::Reply(r) => Ok(r),
            other => Err(DriveError::Unexpected(format!("{other:?}"))),
        }
    }
}

/// Retrieves Prekey Ensembles for `identity` with `retriever`'s client (any device).
pub fn retrieve(
    retriever: &mut PrekeyClient,
    identity: &str,
    now: i64,
    exchange: &mut dyn FnMut(&str) -> Vec<String>,
) -> Result<Retrieved, DriveError> {
    let q = retriever.ensemble_query(identity.as_bytes(), b"4");
    let reply = one_reply(&exchange(&framing::encode(&q)))?;
    match retriever.receive(&mut rand::rng(), &reply, now)? {
        ClientEvent::Retrieved(r) => Ok(r),
        other => Err(DriveError::Unexpected(format!("{other:?}"))),
    }
}

/// The Prekey message ids in a retrieval result (empty for No Prekey Ensembles).
pub fn retrieved_ids(r: &Retrieved) -> Vec<u32> {
    match r {
        Retrieved::Ensembles { ensembles, .. } => ensembles
            .chosen
            .iter()
            .map(|e| e.prekey_message().id)
            .collect(),
        Retrieved::NoEnsembles { .. } => Vec::new(),
    }
}
