//! Streamed text on its way from the inference thread to the JavaScript thread. A request's
//! chunks go into one mailbox; a delivery is queued on the threadsafe function only when none is
//! queued already, and the JavaScript thread takes everything the mailbox holds when that
//! delivery runs. So a JavaScript thread that keeps up gets one call per chunk, and one that
//! falls behind (a busy event loop, many streams, a CPU shared with the decode threads) catches
//! up with one call for all the text that arrived meanwhile, instead of one call per token.
//! A paced stream (`streamIntervalMs`) also holds text here without queuing a delivery, until
//! its interval has passed or something must follow the text.

use std::sync::{Arc, Mutex, MutexGuard};

#[derive(Default)]
struct Pending {
    text: String,
    tokens: u32,
    /// A delivery that will take this text is queued.
    queued: bool,
}

#[derive(Clone, Default)]
pub struct TextMailbox(Arc<Mutex<Pending>>);

impl TextMailbox {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        // Neither side panics while holding the lock; a poisoned lock still holds valid text.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a chunk. True when the caller must queue a delivery: none is queued yet.
    pub fn put(&self, text: &str, tokens: u32) -> bool {
        let mut p = self.lock();
        p.text.push_str(text);
        p.tokens += tokens;
        !std::mem::replace(&mut p.queued, true)
    }

    /// Adds a chunk without queuing a delivery: it joins one already queued, or waits for the
    /// next `put` or `claim`.
    pub fn hold(&self, text: &str, tokens: u32) {
        let mut p = self.lock();
        p.text.push_str(text);
        p.tokens += tokens;
    }

    /// True when text waits and no delivery that will take it is queued: the caller must
    /// queue one.
    pub fn claim(&self) -> bool {
        let mut p = self.lock();
        !p.text.is_empty() && !std::mem::replace(&mut p.queued, true)
    }

    /// Everything added since the last take (on the JavaScript thread, as a delivery runs).
    pub fn take(&self) -> (String, u32) {
        let mut p = self.lock();
        p.queued = false;
        (std::mem::take(&mut p.text), std::mem::take(&mut p.tokens))
    }
}

#[cfg(test)]
mod tests {
    use super::TextMailbox;

    #[test]
    fn chunks_that_arrive_while_a_delivery_is_queued_join_it() {
        let mailbox = TextMailbox::default();
        assert!(mailbox.put("Once", 1), "the first chunk queues a delivery");
        assert!(!mailbox.put(" upon", 1), "the next joins the queued one");
        assert!(!mailbox.put(" a", 2));
        assert_eq!(mailbox.take(), ("Once upon a".to_string(), 4));
        assert!(
            mailbox.put(" time", 1),
            "after a take, a new delivery is needed"
        );
        assert_eq!(mailbox.take(), (" time".to_string(), 1));
        assert_eq!(mailbox.take(), (String::new(), 0));
    }

    #[test]
    fn held_text_waits_for_a_claim_or_joins_the_next_delivery() {
        let mailbox = TextMailbox::default();
        assert!(!mailbox.claim(), "nothing to deliver");
        mailbox.hold("Once", 1);
        mailbox.hold(" upon", 1);
        assert!(mailbox.claim(), "held text needs a delivery");
        assert!(!mailbox.claim(), "one is queued now");
        assert_eq!(mailbox.take(), ("Once upon".to_string(), 2));
        mailbox.hold(" a", 1);
        assert!(
            mailbox.put(" time", 1),
            "a delivered chunk takes the held text along"
        );
        assert_eq!(mailbox.take(), (" a time".to_string(), 2));
    }

    #[test]
    fn text_is_never_lost_or_reordered_between_threads() {
        let mailbox = TextMailbox::default();
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let producer = {
            let mailbox = mailbox.clone();
            std::thread::spawn(move || {
                for i in 0..10_000u32 {
                    if mailbox.put(&format!("{i},"), 1) {
                        tx.send(()).unwrap();
                    }
                }
            })
        };
        let mut text = String::new();
        let mut tokens = 0;
        let mut deliveries = 0;
        while let Ok(()) = rx.recv() {
            deliveries += 1;
            let (t, n) = mailbox.take();
            text.push_str(&t);
            tokens += n;
        }
        producer.join().unwrap();
        let (t, n) = mailbox.take();
        text.push_str(&t);
        tokens += n;
        let expected: String = (0..10_000).map(|i| format!("{i},")).collect();
        assert_eq!(text, expected);
        assert_eq!(tokens, 10_000);
        assert!(deliveries <= 10_000);
    }
}
