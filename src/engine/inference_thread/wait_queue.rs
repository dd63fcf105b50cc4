//! Where requests wait, in submission order, for a free slot. Admission (`QUEUE_FULL`) was
//! decided on the caller's thread: every request that reaches this queue has its place.

use std::collections::VecDeque;
use std::time::Instant;

use crate::engine::error::EngineError;
use crate::engine::request::PreparedRequest;

#[derive(Default)]
pub struct WaitQueue {
    waiting: VecDeque<Box<PreparedRequest>>,
}

impl WaitQueue {
    pub fn push(&mut self, req: Box<PreparedRequest>) {
        self.waiting.push_back(req);
    }

    pub fn front(&self) -> Option<&PreparedRequest> {
        self.waiting.front().map(|r| &**r)
    }

    pub fn pop(&mut self) -> Option<Box<PreparedRequest>> {
        self.waiting.pop_front()
    }

    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// Takes out the requests that must end now (cancelled, or past their deadline), each
    /// with its error; the others keep their order.
    pub fn take_ended(&mut self, now: Instant) -> Vec<(Box<PreparedRequest>, EngineError)> {
        let mut ended = Vec::new();
        let mut kept = VecDeque::with_capacity(self.waiting.len());
        for req in self.waiting.drain(..) {
            match req.ended_by(now) {
                Some(err) => ended.push((req, err)),
                None => kept.push_back(req),
            }
        }
        self.waiting = kept;
        ended
    }
}
