//! The header fields of an IMAP `ENVELOPE` (RFC 3501 section 7.4.2), taken
//! from a header block in one pass.
//!
//! Values are the unfolded raw text of the *first* occurrence of each field;
//! address lists and encoded words are left for the caller to interpret.

use std::borrow::Cow;

use super::header::{fields, unfold};

/// One of the eleven envelope fields, in RFC 3501 order.
///
/// The discriminants are stable on-disk tags: never renumber them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum EnvelopeField {
    /// `Date:`
    Date = 0,
    /// `Subject:`
    Subject = 1,
    /// `From:`
    From = 2,
    /// `Sender:`
    Sender = 3,
    /// `Reply-To:`
    ReplyTo = 4,
    /// `To:`
    To = 5,
    /// `Cc:`
    Cc = 6,
    /// `Bcc:`
    Bcc = 7,
    /// `In-Reply-To:`
    InReplyTo = 8,
    /// `Message-ID:`
    MessageId = 9,
    /// `References:` (not part of the IMAP envelope, but needed for threading).
    References = 10,
}

impl EnvelopeField {
    /// All fields, in tag order.
    pub const ALL: [EnvelopeField; 11] = [
        EnvelopeField::Date,
        EnvelopeField::Subject,
        EnvelopeField::From,
        EnvelopeField::Sender,
        EnvelopeField::ReplyTo,
        EnvelopeField::To,
        EnvelopeField::Cc,
        EnvelopeField::Bcc,
        EnvelopeField::InReplyTo,
        EnvelopeField::MessageId,
        EnvelopeField::References,
    ];

    /// The header field name in its usual spelling (`"Reply-To"`).
    pub fn name(&self) -> &'static str {
        match self {
            EnvelopeField::Date => "Date",
            EnvelopeField::Subject => "Subject",
            EnvelopeField::From => "From",
            EnvelopeField::Sender => "Sender",
            EnvelopeField::ReplyTo => "Reply-To",
            EnvelopeField::To => "To",
            EnvelopeField::Cc => "Cc",
            EnvelopeField::Bcc => "Bcc",
            EnvelopeField::InReplyTo => "In-Reply-To",
            EnvelopeField::MessageId => "Message-ID",
            EnvelopeField::References => "References",
        }
    }

    /// The on-disk tag.
    #[inline]
    pub fn tag(self) -> u8 {
        self as u8
    }

    /// The field for an on-disk tag; `None` for an unknown tag.
    pub fn from_tag(tag: u8) -> Option<EnvelopeField> {
        Self::ALL.get(usize::from(tag)).copied()
    }

    /// The field a header field name denotes (ASCII case-insensitive).
    pub fn from_name(name: &[u8]) -> Option<EnvelopeField> {
        let is = |s: &str| name.eq_ignore_ascii_case(s.as_bytes());
        // Dispatch on length first: most header names match nothing.
        let f = match name.len() {
            2 if is("To") => EnvelopeField::To,
            2 if is("Cc") => EnvelopeField::Cc,
            3 if is("Bcc") => EnvelopeField::Bcc,
            4 if is("Date") => EnvelopeField::Date,
            4 if is("From") => EnvelopeField::From,
            6 if is("Sender") => EnvelopeField::Sender,
            7 if is("Subject") => EnvelopeField::Subject,
            8 if is("Reply-To") => EnvelopeField::ReplyTo,
            10 if is("Message-ID") => EnvelopeField::MessageId,
            10 if is("References") => EnvelopeField::References,
            11 if is("In-Reply-To") => EnvelopeField::InReplyTo,
            _ => return None,
        };
        Some(f)
    }
}

/// The envelope fields of one header block: unfolded values of the first
/// occurrence of each field, `None` when absent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Envelope<'a> {
    /// `Date:`
    pub date: Option<Cow<'a, [u8]>>,
    /// `Subject:`
    pub subject: Option<Cow<'a, [u8]>>,
    /// `From:`
    pub from: Option<Cow<'a, [u8]>>,
    /// `Sender:`
    pub sender: Option<Cow<'a, [u8]>>,
    /// `Reply-To:`
    pub reply_to: Option<Cow<'a, [u8]>>,
    /// `To:`
    pub to: Option<Cow<'a, [u8]>>,
    /// `Cc:`
    pub cc: Option<Cow<'a, [u8]>>,
    /// `Bcc:`
    pub bcc: Option<Cow<'a, [u8]>>,
    /// `In-Reply-To:`
    pub in_reply_to: Option<Cow<'a, [u8]>>,
    /// `Message-ID:`
    pub message_id: Option<Cow<'a, [u8]>>,
    /// `References:`
    pub references: Option<Cow<'a, [u8]>>,
}

impl<'a> Envelope<'a> {
    /// Collect the envelope fields of a header block in a single pass over
    /// its fields (stopping early once all eleven are found).
    pub fn from_header(header: &'a [u8]) -> Self {
        let mut env = Envelope::default();
        let mut missing = EnvelopeField::ALL.len();
        for f in fields(header) {
            if env.take(&f) {
                missing -= 1;
                if missing == 0 {
                    break;
                }
            }
        }
        env
    }

    /// Take `f` if it is an envelope field not seen yet; whether it was taken. Lets a
    /// caller that walks a header's fields anyway (the MIME parser) collect the envelope
    /// in the same pass.
    pub(crate) fn take(&mut self, f: &crate::message::Field<'a>) -> bool {
        let Some(which) = EnvelopeField::from_name(f.name) else {
            return false;
        };
        let slot = self.slot_mut(which);
        if slot.is_some() {
            return false;
        }
        *slot = Some(unfold(f.raw_value));
        true
    }

    /// The value of one field.
    pub fn get(&self, which: EnvelopeField) -> Option<&[u8]> {
        let v = match which {
            EnvelopeField::Date => &self.date,
            EnvelopeField::Subject => &self.subject,
            EnvelopeField::From => &self.from,
            EnvelopeField::Sender => &self.sender,
            EnvelopeField::ReplyTo => &self.reply_to,
            EnvelopeField::To => &self.to,
            EnvelopeField::Cc => &self.cc,
            EnvelopeField::Bcc => &self.bcc,
            EnvelopeField::InReplyTo => &self.in_reply_to,
            EnvelopeField::MessageId => &self.message_id,
            EnvelopeField::References => &self.references,
        };
        v.as_deref()
    }

    /// All eleven fields with their values, in tag order.
    pub fn fields(&self) -> [(EnvelopeField, Option<&[u8]>); 11] {
        EnvelopeField::ALL.map(|f| (f, self.get(f)))
    }

    fn slot_mut(&mut self, which: EnvelopeField) -> &mut Option<Cow<'a, [u8]>> {
        match which {
            EnvelopeField::Date => &mut self.date,
            EnvelopeField::Subject => &mut self.subject,
            EnvelopeField::From => &mut self.from,
            EnvelopeField::Sender => &mut self.sender,
            EnvelopeField::ReplyTo => &mut self.reply_to,
            EnvelopeField::To => &mut self.to,
            EnvelopeField::Cc => &mut self.cc,
            EnvelopeField::Bcc => &mut self.bcc,
            EnvelopeField::InReplyTo => &mut self.in_reply_to,
            EnvelopeField::MessageId => &mut self.message_id,
            EnvelopeField::References => &mut self.references,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_stable() {
        for (i, f) in EnvelopeField::ALL.iter().enumerate() {
            assert_eq!(usize::from(f.tag()), i);
            assert_eq!(EnvelopeField::from_tag(f.tag()), Some(*f));
            assert_eq!(EnvelopeField::from_name(f.name().as_bytes()), Some(*f));
            let upper = f.name().to_ascii_uppercase();
            assert_eq!(EnvelopeField::from_name(upper.as_bytes()), Some(*f));
        }
        assert_eq!(EnvelopeField::Date as u8, 0);
        assert_eq!(EnvelopeField::ReplyTo as u8, 4);
        assert_eq!(EnvelopeField::References as u8, 10);
        assert_eq!(EnvelopeField::from_tag(11), None);
        assert_eq!(EnvelopeField::ReplyTo.name(), "Reply-To");
        assert_eq!(EnvelopeField::MessageId.name(), "Message-ID");
        assert_eq!(EnvelopeField::from_name(b"X-To"), None);
        assert_eq!(EnvelopeField::from_name(b""), None);
    }

    #[test]
    fn first_occurrence_unfolded() {
        let h = b"Received: x\r\n\
                  date: Fri, 1 Mar 2024 12:00:00 +0100\r\n\
                  Subject: hello\r\n  world\r\n\
                  From: a@example.com\r\n\
                  Subject: second\r\n\
                  message-id: <1@x>\r\n\
                  In-Reply-To: <0@x>\r\n\
                  REFERENCES: <0@x>\r\n";
        let e = Envelope::from_header(h);
        assert_eq!(e.date.as_deref(), Some(&b"Fri, 1 Mar 2024 12:00:00 +0100"[..]));
        assert_eq!(e.subject.as_deref(), Some(&b"hello  world"[..]));
        assert_eq!(e.from.as_deref(), Some(&b"a@example.com"[..]));
        assert_eq!(e.message_id.as_deref(), Some(&b"<1@x>"[..]));
        assert_eq!(e.in_reply_to.as_deref(), Some(&b"<0@x>"[..]));
        assert_eq!(e.references.as_deref(), Some(&b"<0@x>"[..]));
        assert_eq!(e.sender, None);
        assert_eq!(e.to, None);
        let all = e.fields();
        assert_eq!(all[1], (EnvelopeField::Subject, Some(&b"hello  world"[..])));
        assert_eq!(all[3], (EnvelopeField::Sender, None));
        assert!(matches!(e.from, Some(Cow::Borrowed(_))));
        assert!(matches!(e.subject, Some(Cow::Owned(_))));
    }

    #[test]
    fn empty_header() {
        let e = Envelope::from_header(b"");
        assert_eq!(e, Envelope::default());
        assert!(e.fields().iter().all(|(_, v)| v.is_none()));
    }
}
