//! Follows a thinking model's thinking block as the reply is generated: whether the reply is
//! inside it (a lazy tool grammar is paused there, as llama.cpp's own sampler does, so text the
//! model thinks cannot trigger a call), and `reasoningBudget`: once the tokens spent inside reach
//! the budget, the block must be closed now (the scheduler then feeds the template's end tag
//! instead of sampling), so the model moves on to its answer.

/// Where the reply is relative to the thinking block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    /// Not opened yet: the model may open it itself.
    Before,
    Inside,
    /// Closed (by the model, or forced): nothing more to count.
    After,
}

#[derive(Debug)]
pub struct ThinkingBlock {
    /// `None`: no budget, the block is only followed.
    budget: Option<u32>,
    used: u32,
    block: Block,
    start_tag: String,
    end_tags: Vec<String>,
    /// The latest text, long enough to see a tag split over several tokens.
    recent: String,
}

impl ThinkingBlock {
    pub fn new(
        budget: Option<u32>,
        starts_inside: bool,
        start_tag: String,
        end_tags: Vec<String>,
    ) -> Self {
        Self {
            budget,
            used: 0,
            block: if starts_inside {
                Block::Inside
            } else {
                Block::Before
            },
            start_tag,
            end_tags,
            recent: String::new(),
        }
    }

    /// The end tag to feed, when the budget is spent and the block is still open.
    pub fn must_close(&self) -> Option<&str> {
        (self.block == Block::Inside && self.budget.is_some_and(|b| self.used >= b))
            .then(|| self.end_tags.first().map(String::as_str))
            .flatten()
    }

    /// The block was closed by force: stop counting.
    pub fn closed(&mut self) {
        self.block = Block::After;
    }

    /// The reply is inside the thinking block.
    pub fn inside(&self) -> bool {
        self.block == Block::Inside
    }

    /// Follows one generated token's text. True when the model closed the block with it.
    pub fn observe(&mut self, piece: &[u8]) -> bool {
        if self.block == Block::After {
            return false;
        }
        self.recent.push_str(&String::from_utf8_lossy(piece));
        if self.block == Block::Before {
            if let Some(at) = self
                .recent
                .find(&self.start_tag)
                .filter(|_| !self.start_tag.is_empty())
            {
                self.block = Block::Inside;
                self.recent.drain(..at + self.start_tag.len());
            }
        } else {
            self.used += 1;
        }
        let closed_now = self.block == Block::Inside
            && self
                .end_tags
                .iter()
                .any(|t| self.recent.contains(t.as_str()));
        if closed_now {
            self.block = Block::After;
        }
        let keep = self
            .end_tags
            .iter()
            .map(String::len)
            .chain([self.start_tag.len()])
            .max()
            .unwrap_or(0);
        if self.recent.len() > keep {
            let mut cut = self.recent.len() - keep;
            while !self.recent.is_char_boundary(cut) {
                cut -= 1;
            }
            self.recent.drain(..cut);
        }
        closed_now
    }
}

#[cfg(test)]
mod tests {
    use super::ThinkingBlock;

    fn budget(n: u32, inside: bool) -> ThinkingBlock {
        ThinkingBlock::new(Some(n), inside, "<think>".into(), vec!["</think>".into()])
    }

    #[test]
    fn a_block_open_from_the_prompt_closes_after_the_budget() {
        let mut b = budget(2, true);
        assert_eq!(b.must_close(), None);
        b.observe(b"hmm");
        assert_eq!(b.must_close(), None);
        b.observe(b" rain");
        assert_eq!(b.must_close(), Some("</think>"));
        b.closed();
        assert_eq!(b.must_close(), None);
    }

    #[test]
    fn without_a_budget_the_block_is_only_followed() {
        let mut b = ThinkingBlock::new(None, true, "<think>".into(), vec!["</think>".into()]);
        assert!(b.inside());
        for _ in 0..1000 {
            assert!(!b.observe(b"x"));
        }
        assert_eq!(b.must_close(), None);
        assert!(b.observe(b"</think>"), "the model closed it");
        assert!(!b.inside());
    }

    #[test]
    fn a_zero_budget_closes_before_the_first_token() {
        assert_eq!(budget(0, true).must_close(), Some("</think>"));
        assert_eq!(budget(0, false).must_close(), None);
    }

    #[test]
    fn the_model_opening_and_closing_its_own_block_is_followed_across_tokens() {
        let mut b = budget(3, false);
        for piece in [
            "Sure", "<th", "ink>", "a", "</", "think>", "x", "y", "z", "w",
        ] {
            b.observe(piece.as_bytes());
            assert_eq!(b.must_close(), None, "after {piece:?}");
        }
        let mut b = budget(1, false);
        b.observe(b"<think>");
        assert_eq!(b.must_close(), None);
        b.observe(b"long");
        assert_eq!(b.must_close(), Some("</think>"));
    }
}
