//! The inference thread's loop for an embedding engine. Requests (`embed`, `rank`) queue in
//! arrival order; each step packs whole texts from the front of the queue into one batch,
//! each text its own sequence, as many as fit `batchSize` tokens and `parallel` sequences, so
//! many short texts cost one decode. llama.cpp pools each sequence's vector in that decode;
//! the cache is cleared after it, since no text is ever continued.

use std::collections::VecDeque;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::Instant;

use crate::engine::load::thread_pool::EngineContext;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::token::LlamaToken;
use tracing::warn;

use super::Command;
use crate::engine::error::{EngineError, ErrorCode};
use crate::engine::faults::Faults;
use crate::engine::load::Loaded;
use crate::engine::options::Pooling;
use crate::engine::request::{EmbedInput, EmbedRequest, Embeddings, Event, EventSink};
use crate::engine::status::{add, set, Shared};

pub struct EmbedderConfig {
    /// Tokens one decode evaluates at most (also one ubatch: a text is pooled whole).
    pub n_batch: usize,
    /// Tokens one text may have (`contextSize`).
    pub max_text_tokens: usize,
    /// Texts one decode evaluates at most (`parallel`).
    pub max_sequences: usize,
    pub pooling: Pooling,
}

/// A request whose texts are tokenized and partly evaluated.
struct Work {
    req: Box<EmbedRequest>,
    texts: Vec<Vec<LlamaToken>>,
    /// The first text not yet in a batch.
    next: usize,
    vectors: Vec<Vec<f32>>,
    prompt_tokens: u64,
}

impl Work {
    fn is_complete(&self) -> bool {
        self.vectors.len() == self.texts.len()
    }
}

pub struct Embedder<'a> {
    loaded: &'a Loaded,
    ctx: EngineContext<'a>,
    cfg: EmbedderConfig,
    shared: &'a Shared,
    batch: LlamaBatch<'static>,
    queue: VecDeque<Work>,
    faults: Faults,
    decoded_once: bool,
}

impl<'a> Embedder<'a> {
    pub fn new(
        loaded: &'a Loaded,
        ctx: EngineContext<'a>,
        cfg: EmbedderConfig,
        shared: &'a Shared,
        faults: Faults,
    ) -> Self {
        let batch = LlamaBatch::new(cfg.n_batch, 1);
        Self {
            loaded,
            ctx,
            cfg,
            shared,
            batch,
            queue: VecDeque::new(),
            faults,
            decoded_once: false,
        }
    }

    /// Test-only (`batch:N`): the first decode waits until N requests are queued.
    fn holding_first_batch(&self) -> bool {
        !self.decoded_once && self.queue.len() < self.faults.first_batch_waits_for()
    }

    pub fn run(mut self, commands: Receiver<Command>) {
        'serve: loop {
            if self.queue.is_empty() || self.holding_first_batch() {
                // Nothing to evaluate: sleep until a request (or shutdown) arrives.
                self.ctx.rest_threads();
                let keep_serving = commands.recv().is_ok_and(|cmd| self.handle(cmd));
                if !keep_serving {
                    break 'serve;
                }
            }
            loop {
                match commands.try_recv() {
                    Ok(cmd) => {
                        if !self.handle(cmd) {
                            break 'serve;
                        }
                    }
                    Err(TryRecvError::Disconnected) => break 'serve,
                    Err(TryRecvError::Empty) => break,
                }
            }
            self.drop_ended(Instant::now());
            if self.holding_first_batch() {
                continue;
            }
            self.faults.maybe_panic();
            self.step();
            self.publish_occupancy();
        }
        let err = EngineError::aborted("the engine was shut down before this request finished");
        while let Some(work) = self.queue.pop_front() {
            self.fail(work.req, err.clone());
        }
        self.publish_occupancy();
    }

    /// Returns false on shutdown.
    fn handle(&mut self, cmd: Command) -> bool {
        match cmd {
            Command::Embed(req) => {
                sub_in_transit(self.shared);
                match self.tokenize(&req.input) {
                    Ok(texts) => self.queue.push_back(Work {
                        vectors: Vec::with_capacity(texts.len()),
                        req,
                        texts,
                        next: 0,
                        prompt_tokens: 0,
                    }),
                    Err(e) => self.fail(req, e),
                }
                self.publish_occupancy();
                true
            }
            Command::Submit(mut req) => {
                // The handle refuses generation on an embedding engine; this is a safety net.
                sub_in_transit(self.shared);
                self.shared.count_failure(ErrorCode::InvalidArgument);
                req.sink.send(Event::Error(EngineError::invalid_argument(
                    "this engine was loaded with embeddings: true and serves embed()/rank()",
                )));
                true
            }
            Command::Shutdown => false,
        }
    }

    /// Each text's tokens as the model is fed them, checked against the per-text limit.
    fn tokenize(&self, input: &EmbedInput) -> Result<Vec<Vec<LlamaToken>>, EngineError> {
        let (what, texts): (&str, Vec<Vec<LlamaToken>>) = match input {
            EmbedInput::Texts(texts) => (
                "text",
                texts
                    .iter()
                    .map(|t| self.loaded.tokenize(t, true, false))
                    .collect(),
            ),
            EmbedInput::Rank { query, documents } => (
                "query and document",
                documents
                    .iter()
                    .map(|d| rank_pair_tokens(self.loaded, query, d))
                    .collect(),
            ),
        };
        for (i, tokens) in texts.iter().enumerate() {
            if tokens.is_empty() {
                return Err(EngineError::invalid_argument(format!(
                    "{what} {i} is empty: give it some text"
                )));
            }
            if tokens.len() > self.cfg.max_text_tokens {
                return Err(EngineError::new(
                    ErrorCode::ContextOverflow,
                    format!(
                        "{what} {i} is {} tokens; this engine takes at most {} per {what} (contextSize): shorten or split it",
                        tokens.len(),
                        self.cfg.max_text_tokens
                    ),
                ));
            }
        }
        Ok(texts)
    }

    /// Ends requests whose caller cancelled them or whose deadline passed.
    fn drop_ended(&mut self, now: Instant) {
        let mut i = 0;
        while i < self.queue.len() {
            let ended = {
                let r = &self.queue[i].req;
                r.cancel.ended_by(r.deadline, r.timeout, now)
            };
            match ended {
                Some(err) => {
                    if let Some(work) = self.queue.remove(i) {
                        self.fail(work.req, err);
                    }
                }
                None => i += 1,
            }
        }
    }

    /// One decode over as many queued texts as fit, in arrival order.
    fn step(&mut self) {
        // (queue index, text index) of each sequence in the batch.
        let mut members: Vec<(usize, usize)> = Vec::new();
        let mut tokens = 0;
        self.batch.clear();
        'fill: for (qi, work) in self.queue.iter().enumerate() {
            for ti in work.next..work.texts.len() {
                let text = &work.texts[ti];
                if members.len() == self.cfg.max_sequences || tokens + text.len() > self.cfg.n_batch
                {
                    break 'fill;
                }
                let seq = members.len() as i32;
                for (pos, token) in text.iter().enumerate() {
                    // Every token is an output: pooling reads them all.
                    if self.batch.add(*token, pos as i32, &[seq], true).is_err() {
                        break 'fill;
                    }
                }
                tokens += text.len();
                members.push((qi, ti));
            }
        }
        if members.is_empty() {
            return;
        }
        let started = Instant::now();
        self.faults.delay_step();
        self.decoded_once = true;
        let decoded = if self.faults.decode_fails() {
            Err("injected fault".to_string())
        } else {
            self.ctx.decode(&mut self.batch).map_err(|e| e.to_string())
        };
        add(&self.shared.counters.decode_calls, 1);
        self.shared.record_step(tokens, 0, started.elapsed());
        let outcome = decoded.and_then(|()| {
            (0..members.len())
                .map(|seq| {
                    self.ctx
                        .embeddings_seq_ith(seq as i32)
                        .map(<[f32]>::to_vec)
                        .map_err(|e| format!("no pooled vector for sequence {seq}: {e}"))
                })
                .collect::<Result<Vec<_>, _>>()
        });
        self.ctx.clear_kv_cache();
        let vectors = match outcome {
            Ok(v) => v,
            Err(e) => {
                let err = EngineError::internal(format!("llama.cpp embedding decode failed: {e}"));
                warn!(error = %err, "embedding decode failed");
                self.shared
                    .update(|c| c.last_error = Some(err.message.clone()));
                let mut failed: Vec<usize> = members.iter().map(|(qi, _)| *qi).collect();
                failed.dedup();
                for qi in failed.into_iter().rev() {
                    if let Some(work) = self.queue.remove(qi) {
                        self.fail(work.req, err.clone());
                    }
                }
                return;
            }
        };
        let normalize_all = self.cfg.pooling != Pooling::Rank;
        for ((qi, ti), mut vector) in members.into_iter().zip(vectors) {
            let work = &mut self.queue[qi];
            if normalize_all && work.req.normalize {
                normalize(&mut vector);
            }
            work.prompt_tokens += work.texts[ti].len() as u64;
            work.vectors.push(vector);
            work.next = ti + 1;
        }
        while self.queue.front().is_some_and(Work::is_complete) {
            if let Some(work) = self.queue.pop_front() {
                self.finish(work);
            }
        }
    }

    fn finish(&mut self, work: Work) {
        let c = &self.shared.counters;
        add(&c.prompt_tokens_total, work.prompt_tokens);
        add(&c.requests_completed, 1);
        let mut sink = work.req.sink;
        sink.send(Event::Embedded(Embeddings {
            vectors: work.vectors,
            prompt_tokens: work.prompt_tokens.min(u64::from(u32::MAX)) as u32,
        }));
    }

    fn fail(&self, req: Box<EmbedRequest>, err: EngineError) {
        self.shared.count_failure(err.code);
        let mut sink = req.sink;
        sink.send(Event::Error(err));
    }

    fn publish_occupancy(&self) {
        let c = &self.shared.counters;
        let started = self.queue.iter().filter(|w| w.next > 0).count();
        set(&c.requests_active, started as u64);
        set(&c.requests_queued, (self.queue.len() - started) as u64);
    }
}

fn sub_in_transit(shared: &Shared) {
    crate::engine::status::sub(&shared.counters.requests_in_transit, 1);
}

/// Scales a vector to length 1 (a zero vector stays zero).
fn normalize(vector: &mut [f32]) {
    let norm = vector
        .iter()
        .map(|v| f64::from(*v) * f64::from(*v))
        .sum::<f64>()
        .sqrt();
    if norm > 0.0 {
        for v in vector.iter_mut() {
            *v = (f64::from(*v) / norm) as f32;
        }
    }
}

/// A query and a document as a reranker reads them, as llama-server lays them out: the
/// model's own `rerank` template when its GGUF has one (`{query}` and `{document}` filled in,
/// the caller's text never parsed as control tokens), else
/// `[BOS] query [EOS] [SEP] document [EOS]` with each marker the vocabulary asks for.
fn rank_pair_tokens(loaded: &Loaded, query: &str, document: &str) -> Vec<LlamaToken> {
    let model = &loaded.model;
    if let Some(template) = model
        .chat_template(Some("rerank"))
        .ok()
        .and_then(|t| t.to_string().ok())
    {
        return fill_rerank_template(
            &template,
            |piece, is_caller_text| loaded.tokenize(piece, false, !is_caller_text),
            query,
            document,
        );
    }
    let vocab = model.vocab();
    let eos = match vocab.eos() {
        t if t.0 < 0 => vocab.sep(),
        t => t,
    };
    let mut out = Vec::new();
    if vocab.should_add_bos() {
        out.push(vocab.bos());
    }
    out.extend(loaded.tokenize(query, false, false));
    if vocab.should_add_eos() {
        out.push(eos);
    }
    if vocab.should_add_sep() {
        out.push(vocab.sep());
    }
    out.extend(loaded.tokenize(document, false, false));
    if vocab.should_add_eos() {
        out.push(eos);
    }
    out
}

/// Tokenizes a rerank template piece by piece: the template's own text with control tokens
/// parsed, `{query}` and `{document}` as the caller's text.
fn fill_rerank_template<T>(
    template: &str,
    mut tokenize: impl FnMut(&str, bool) -> Vec<T>,
    query: &str,
    document: &str,
) -> Vec<T> {
    let mut out = Vec::new();
    let mut rest = template;
    loop {
        let next = [("{query}", query), ("{document}", document)]
            .into_iter()
            .filter_map(|(marker, text)| rest.find(marker).map(|at| (at, marker, text)))
            .min_by_key(|(at, _, _)| *at);
        match next {
            Some((at, marker, text)) => {
                if at > 0 {
                    out.extend(tokenize(&rest[..at], false));
                }
                out.extend(tokenize(text, true));
                rest = &rest[at + marker.len()..];
            }
            None => {
                if !rest.is_empty() {
                    out.extend(tokenize(rest, false));
                }
                return out;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_gives_unit_length_and_keeps_zero() {
        let mut v = vec![3.0, 4.0];
        normalize(&mut v);
        assert!((v[0] - 0.6).abs() < 1e-6 && (v[1] - 0.8).abs() < 1e-6);
        let mut zero = vec![0.0, 0.0];
        normalize(&mut zero);
        assert_eq!(zero, vec![0.0, 0.0]);
    }

    #[test]
    fn rerank_template_keeps_caller_text_apart() {
        let pieces = fill_rerank_template(
            "<s>Q: {query}\nD: {document}</s>",
            |piece, caller| vec![(piece.to_string(), caller)],
            "who {document}?",
            "a doc",
        );
        assert_eq!(
            pieces,
            vec![
                ("<s>Q: ".to_string(), false),
                ("who {document}?".to_string(), true),
                ("\nD: ".to_string(), false),
                ("a doc".to_string(), true),
                ("</s>".to_string(), false),
            ]
        );
    }
}
