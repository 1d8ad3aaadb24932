//! The mailbox list: entries of the `mailboxes` database (`formats/db.md`, "The mailbox
//! list"), and their encoding.

use crate::db::{Db, Env, Txn};
use crate::error::{Error, Result};
use crate::layout::MailboxName;

/// One registered mailbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MailboxEntry {
    /// Domain.
    pub domain: String,
    /// Name.
    pub name: MailboxName,
    /// Partition it lives on.
    pub partition: String,
    /// Unique id (as in its header file).
    pub unique_id: [u8; 16],
    /// UID validity.
    pub uid_validity: u32,
    /// Creation time.
    pub created: i64,
    /// Access control list (`user rights` pairs separated by tabs).
    pub acl: String,
    /// No modseq above this had been given when reconstruct last wrote the mailbox (a
    /// floor for new modseqs should its header, index and log all be lost; 0: none).
    pub highest_modseq: u64,
}

/// Version of the entry value written (2 adds `highest_modseq`; 1 is still read).
const VALUE_VERSION: u8 = 2;

/// Key of a mailbox in the list.
pub fn key(domain: &str, name: &MailboxName) -> Vec<u8> {
    let mut k = Vec::with_capacity(domain.len() + 1 + name.as_str().len());
    k.extend_from_slice(domain.as_bytes());
    k.push(0);
    k.extend_from_slice(name.as_str().as_bytes());
    k
}

impl MailboxEntry {
    /// Encode the value.
    pub fn encode_value(&self) -> Vec<u8> {
        let mut v = vec![VALUE_VERSION];
        v.extend_from_slice(&self.unique_id);
        v.extend_from_slice(&self.uid_validity.to_le_bytes());
        v.extend_from_slice(&self.created.to_le_bytes());
        for s in [&self.partition, &self.acl] {
            let b = &s.as_bytes()[..s.len().min(u16::MAX as usize)];
            v.extend_from_slice(&(b.len() as u16).to_le_bytes());
            v.extend_from_slice(b);
        }
        v.extend_from_slice(&self.highest_modseq.to_le_bytes());
        v
    }

    /// Decode a key and value.
    pub fn decode(key: &[u8], value: &[u8]) -> Option<MailboxEntry> {
        let sep = key.iter().position(|&b| b == 0)?;
        let domain = std::str::from_utf8(&key[..sep]).ok()?.to_string();
        let name = MailboxName::parse(std::str::from_utf8(&key[sep + 1..]).ok()?).ok()?;
        let (&ver, rest) = value.split_first()?;
        if ver != 1 && ver != VALUE_VERSION {
            return None;
        }
        let unique_id: [u8; 16] = rest.get(..16)?.try_into().ok()?;
        let uid_validity = u32::from_le_bytes(rest.get(16..20)?.try_into().ok()?);
        let created = i64::from_le_bytes(rest.get(20..28)?.try_into().ok()?);
        let mut pos = 28;
        let mut strs = Vec::new();
        for _ in 0..2 {
            let len = u16::from_le_bytes(rest.get(pos..pos + 2)?.try_into().ok()?) as usize;
            strs.push(std::str::from_utf8(rest.get(pos + 2..pos + 2 + len)?).ok()?.to_string());
            pos += 2 + len;
        }
        let highest_modseq = if ver >= 2 {
            let m = u64::from_le_bytes(rest.get(pos..pos + 8)?.try_into().ok()?);
            pos += 8;
            m
        } else {
            0
        };
        if pos != rest.len() {
            return None;
        }
        let acl = strs.pop()?;
        let partition = strs.pop()?;
        Some(MailboxEntry { domain, name, partition, unique_id, uid_validity, created, acl, highest_modseq })
    }
}

/// The mailbox list, read and written through the database environment. The only type
/// that knows how mailboxes are registered.
#[derive(Debug)]
pub struct MailboxList<'e> {
    env: &'e Env,
}

impl<'e> MailboxList<'e> {
    /// The list in `env`.
    pub fn new(env: &'e Env) -> Self {
        MailboxList { env }
    }

    /// The entry of a mailbox.
    pub fn get(&self, domain: &str, name: &MailboxName) -> Result<Option<MailboxEntry>> {
        let k = key(domain, name);
        match self.env.get(Db::Mailboxes, &k)? {
            None => Ok(None),
            Some(v) => MailboxEntry::decode(&k, &v).map(Some).ok_or_else(|| bad_entry(self.env, &k)),
        }
    }

    /// Every mailbox of `domain` (all domains when `None`), sorted by domain then name.
    pub fn list(&self, domain: Option<&str>) -> Result<Vec<MailboxEntry>> {
        let prefix = domain.map(|d| {
            let mut p = d.as_bytes().to_vec();
            p.push(0);
            p
        });
        let mut out = Vec::new();
        for (k, v) in self.env.scan_prefix(Db::Mailboxes, prefix.as_deref().unwrap_or_default())? {
            out.push(MailboxEntry::decode(&k, &v).ok_or_else(|| bad_entry(self.env, &k))?);
        }
        Ok(out)
    }

    /// Add `put` entries and remove `delete` ones in one transaction.
    pub fn change(&self, put: &[MailboxEntry], delete: &[(String, MailboxName)]) -> Result<()> {
        let mut t = Txn::default();
        for (d, n) in delete {
            t.delete(Db::Mailboxes, key(d, n));
        }
        for e in put {
            t.put(Db::Mailboxes, key(&e.domain, &e.name), e.encode_value());
        }
        self.env.commit(t)
    }
}

fn bad_entry(env: &Env, key: &[u8]) -> Error {
    Error::corrupt(
        env.path(Db::Mailboxes),
        0,
        format!("undecodable mailbox list entry {:?}", String::from_utf8_lossy(key)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_round_trip() {
        let e = MailboxEntry {
            domain: "example.com".into(),
            name: MailboxName::parse("user/joe/a b").expect("name"),
            partition: "d2".into(),
            unique_id: [1; 16],
            uid_validity: 5,
            created: 7,
            acl: "joe\tlrswipkxtecda".into(),
            highest_modseq: 4242,
        };
        let k = key(&e.domain, &e.name);
        assert_eq!(MailboxEntry::decode(&k, &e.encode_value()), Some(e.clone()));
        let mut v = e.encode_value();
        v.pop();
        assert_eq!(MailboxEntry::decode(&k, &v), None);
        // Version 1 values (no modseq) still decode.
        let mut v1 = e.encode_value();
        v1.truncate(v1.len() - 8);
        v1[0] = 1;
        assert_eq!(MailboxEntry::decode(&k, &v1), Some(MailboxEntry { highest_modseq: 0, ..e.clone() }));
    }
}
