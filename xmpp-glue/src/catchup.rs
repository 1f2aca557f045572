//! Catch-up through our account's archive (XEP-0313, docs/xmpp-glue.md §5): where the
//! device is in the archive, the pages it asks for, and the ids it has already processed.

use std::collections::VecDeque;

use crate::carriage::Carriage;
use crate::requests::{Pending, Requests, Responder};
use crate::stanza::{self, MamFrom};
use crate::state::ArchivePos;

/// How many archive ids are remembered to drop duplicate deliveries.
pub const SEEN_IDS: usize = 1024;
/// MAM page size during catch-up.
pub const MAM_PAGE: usize = 50;

/// What a MAM page's end says to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PageEnd {
    /// Ask for the next page.
    More,
    /// Caught up (or the server has no MAM: offline storage is all we get).
    Done,
}

/// The archive position and the catch-up under way.
#[derive(Debug, Default)]
pub(crate) struct CatchUp {
    archive: ArchivePos,
    seen_ids: VecDeque<String>,
    /// The queryid of the page being read.
    catching_up: Option<String>,
}

impl CatchUp {
    /// From the persisted position and seen ids.
    pub fn new(archive: ArchivePos, seen_ids: VecDeque<String>) -> CatchUp {
        CatchUp {
            archive,
            seen_ids,
            catching_up: None,
        }
    }

    /// The persisted position.
    pub fn archive(&self) -> &ArchivePos {
        &self.archive
    }

    /// The persisted seen ids.
    pub fn seen_ids(&self) -> &VecDeque<String> {
        &self.seen_ids
    }

    /// Asks for the next page (the first connection only asks where the archive ends).
    pub fn next_page(&mut self, car: &mut Carriage, reqs: &mut Requests) {
        let queryid = car.id();
        self.catching_up = Some(queryid.clone());
        let pos = &self.archive;
        reqs.send(car, Responder::Own, Pending::Mam, |id| match pos {
            ArchivePos::Unknown => stanza::mam_query(id, &queryid, MamFrom::Last, 1),
            ArchivePos::Start => stanza::mam_query(id, &queryid, MamFrom::Start, MAM_PAGE),
            ArchivePos::After(a) => stanza::mam_query(id, &queryid, MamFrom::After(a), MAM_PAGE),
        });
    }

    /// Our archive answered a page (`ok`: a result; `fin`: its `<fin/>`).
    pub fn page_end(&mut self, ok: bool, fin: Option<(bool, Option<String>)>) -> PageEnd {
        let probe = self.archive == ArchivePos::Unknown;
        match fin {
            Some((complete, last)) if ok => {
                let more = !probe && !complete && last.is_some();
                if let Some(l) = last {
                    self.archive = ArchivePos::After(l);
                } else if probe {
                    self.archive = ArchivePos::Start;
                }
                if more { PageEnd::More } else { PageEnd::Done }
            }
            _ => PageEnd::Done,
        }
    }

    /// Catch-up is over (done, or the stream went down).
    pub fn stop(&mut self) {
        self.catching_up = None;
    }

    /// Whether a MAM result of `queryid` is read: it answers the page being read, and this
    /// is not the first connection's probe (which only learns where the archive ends).
    pub fn reads(&self, queryid: &str) -> bool {
        self.archive != ArchivePos::Unknown && self.catching_up.as_deref() == Some(queryid)
    }

    /// Whether `id` was processed already (else it is remembered now).
    pub fn seen(&mut self, id: &str) -> bool {
        if self.seen_ids.iter().any(|s| s == id) {
            return true;
        }
        self.seen_ids.push_back(id.to_owned());
        while self.seen_ids.len() > SEEN_IDS {
            self.seen_ids.pop_front();
        }
        false
    }

    /// A message with archive id `id` was processed: catch-up resumes after it (unless the
    /// device never connected and is not online: the probe sets the first position).
    pub fn processed(&mut self, id: &str, online: bool) {
        if self.archive != ArchivePos::Unknown || online {
            self.archive = ArchivePos::After(id.to_owned());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Output;
    use otr4::InstanceTag;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn page(c: &mut CatchUp) -> minidom::Element {
        let mut car = Carriage::new(&mut StdRng::seed_from_u64(1));
        let mut reqs = Requests::default();
        c.next_page(&mut car, &mut reqs);
        match car.finish(InstanceTag(0x100)).pop() {
            Some(Output::Stanza(s)) => s,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_first_connection_probes_then_resumes_after_the_last_id() {
        let mut c = CatchUp::default();
        let q = page(&mut c);
        assert!(
            String::from(&q).contains("<before"),
            "the probe asks for the last message"
        );
        assert!(
            !c.reads(c.catching_up.clone().unwrap().as_str()),
            "probe results are not read"
        );
        assert_eq!(
            c.page_end(true, Some((false, Some("A9".into())))),
            PageEnd::Done
        );
        assert_eq!(c.archive(), &ArchivePos::After("A9".into()));
        let q = page(&mut c);
        assert!(String::from(&q).contains("A9"));
        let qid = c.catching_up.clone().unwrap();
        assert!(c.reads(&qid) && !c.reads("other"));
        assert_eq!(
            c.page_end(true, Some((false, Some("B1".into())))),
            PageEnd::More
        );
        assert_eq!(
            c.page_end(true, Some((true, Some("B2".into())))),
            PageEnd::Done
        );
        assert_eq!(c.archive(), &ArchivePos::After("B2".into()));
        c.stop();
        assert!(!c.reads(&qid));
    }

    #[test]
    fn an_empty_archive_starts_from_its_beginning_and_no_mam_ends_catch_up() {
        let mut c = CatchUp::default();
        assert_eq!(c.page_end(true, Some((true, None))), PageEnd::Done);
        assert_eq!(c.archive(), &ArchivePos::Start);
        assert_eq!(c.page_end(false, None), PageEnd::Done);
        assert_eq!(c.page_end(true, None), PageEnd::Done);
        assert_eq!(c.archive(), &ArchivePos::Start);
        // An error answer ends catch-up where it was, whatever `<fin/>` it carries.
        assert_eq!(
            c.page_end(false, Some((false, Some("Z9".into())))),
            PageEnd::Done
        );
        assert_eq!(c.archive(), &ArchivePos::Start);
    }

    #[test]
    fn seen_ids_are_bounded_and_positions_wait_for_the_probe() {
        let mut c = CatchUp::default();
        c.processed("X", false);
        assert_eq!(c.archive(), &ArchivePos::Unknown);
        c.processed("X", true);
        assert_eq!(c.archive(), &ArchivePos::After("X".into()));
        assert!(!c.seen("a") && c.seen("a"));
        for i in 0..SEEN_IDS {
            c.seen(&i.to_string());
        }
        assert_eq!(c.seen_ids().len(), SEEN_IDS);
        assert!(!c.seen("a"), "the oldest id was forgotten");
    }
}
