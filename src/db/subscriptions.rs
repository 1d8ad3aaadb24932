//! Per-user mailbox subscriptions (IMAP SUBSCRIBE/LSUB): the `subscriptions` database,
//! key `DOMAIN\0USER\0NAME`, empty value (`formats/db.md`, "Subscriptions").

use super::{Db, Env, Txn};
use crate::error::{Error, Result};
use crate::layout::{self, MailboxName};

/// The subscriptions of every user, read and written through the database environment.
#[derive(Debug)]
pub struct Subscriptions<'e> {
    env: &'e Env,
}

fn user_ok(user: &str) -> Result<()> {
    if user.is_empty() || user.contains(['/', '\0']) {
        return Err(Error::InvalidName {
            what: "user name",
            name: user.into(),
            reason: "must be non-empty and hold no '/' or NUL".into(),
        });
    }
    Ok(())
}

/// `DOMAIN\0USER\0` (the prefix of every key of a user).
fn prefix(domain: &str, user: &str) -> Result<Vec<u8>> {
    let domain = layout::domain(domain)?;
    user_ok(user)?;
    let mut k = Vec::with_capacity(domain.len() + user.len() + 2);
    k.extend_from_slice(domain.as_bytes());
    k.push(0);
    k.extend_from_slice(user.as_bytes());
    k.push(0);
    Ok(k)
}

/// Key of one subscription.
pub fn key(domain: &str, user: &str, name: &MailboxName) -> Result<Vec<u8>> {
    let mut k = prefix(domain, user)?;
    k.extend_from_slice(name.as_str().as_bytes());
    Ok(k)
}

impl<'e> Subscriptions<'e> {
    /// The subscriptions in `env`.
    pub fn new(env: &'e Env) -> Self {
        Subscriptions { env }
    }

    /// Subscribe `user@domain` to `name` (idempotent).
    pub fn subscribe(&self, domain: &str, user: &str, name: &MailboxName) -> Result<()> {
        let mut t = Txn::default();
        t.put(Db::Subscriptions, key(domain, user, name)?, Vec::new());
        self.env.commit(t)
    }

    /// Unsubscribe (idempotent).
    pub fn unsubscribe(&self, domain: &str, user: &str, name: &MailboxName) -> Result<()> {
        let mut t = Txn::default();
        t.delete(Db::Subscriptions, key(domain, user, name)?);
        self.env.commit(t)
    }

    /// Whether `user@domain` is subscribed to `name`.
    pub fn is_subscribed(&self, domain: &str, user: &str, name: &MailboxName) -> Result<bool> {
        Ok(self.env.get(Db::Subscriptions, &key(domain, user, name)?)?.is_some())
    }

    /// The mailboxes `user@domain` is subscribed to, sorted.
    pub fn list(&self, domain: &str, user: &str) -> Result<Vec<MailboxName>> {
        let p = prefix(domain, user)?;
        let mut out = Vec::new();
        for (k, _) in self.env.scan_prefix(Db::Subscriptions, &p)? {
            let name =
                std::str::from_utf8(&k[p.len()..]).ok().and_then(|s| MailboxName::parse(s).ok()).ok_or_else(|| {
                    Error::corrupt(
                        self.env.path(Db::Subscriptions),
                        0,
                        format!("undecodable subscription key {:?}", String::from_utf8_lossy(&k)),
                    )
                })?;
            out.push(name);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::Durability;

    #[test]
    fn subscribe_list_unsubscribe_across_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let env = Env::create(dir.path(), Durability::NoSync).expect("create");
        let s = Subscriptions::new(&env);
        let n = |x: &str| MailboxName::parse(x).expect("name");
        s.subscribe("example.com", "joe", &n("user/joe/pub")).expect("sub");
        s.subscribe("example.com", "joe", &n("admin")).expect("sub");
        s.subscribe("example.com", "joe", &n("admin")).expect("again");
        s.subscribe("example.com", "jo", &n("user/jo")).expect("sub");
        s.subscribe("foo.com", "joe", &n("admin")).expect("sub");
        assert_eq!(s.list("example.com", "joe").expect("list"), vec![n("admin"), n("user/joe/pub")]);
        assert_eq!(s.list("example.com", "jo").expect("list"), vec![n("user/jo")]);
        s.unsubscribe("example.com", "joe", &n("admin")).expect("unsub");
        drop(env);
        let env = Env::open(dir.path(), Durability::NoSync).expect("reopen");
        let s = Subscriptions::new(&env);
        assert_eq!(s.list("example.com", "joe").expect("list"), vec![n("user/joe/pub")]);
        assert!(s.is_subscribed("foo.com", "joe", &n("admin")).expect("is"));
        assert!(!s.is_subscribed("foo.com", "joe", &n("user/joe")).expect("is"));
        assert!(s.subscribe("example.com", "a/b", &n("x")).is_err());
        assert!(s.subscribe("", "joe", &n("x")).is_err());
    }
}
