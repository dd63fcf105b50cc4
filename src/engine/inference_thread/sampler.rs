//! Builds one request's llama.cpp sampler chain from validated parameters.

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::data::LlamaTokenData;
use llama_cpp_2::token::data_array::LlamaTokenDataArray;
use llama_cpp_2::token::LlamaToken;

use crate::engine::chat_format::PlanGrammar;
use crate::engine::error::{EngineError, EngineResult};
use crate::engine::grammar::gbnf;
use crate::engine::options::SamplingParams;

/// A request's tool-call grammar. Kept out of the chain because a lazy one pauses while the
/// model thinks (as llama.cpp's `common_sampler` does): text inside a thinking block must not
/// trigger a call.
pub struct ToolGrammar {
    sampler: LlamaSampler,
    lazy: bool,
}

impl ToolGrammar {
    /// A lazy grammar pauses inside a thinking block; a strict one describes the block itself.
    fn applies(&self, thinking: bool) -> bool {
        !(self.lazy && thinking)
    }
}

/// One request's token chooser.
pub enum Sampler {
    /// Plain greedy decoding (temperature 0, no penalties, no grammar): the first token with
    /// the highest logit, read straight from the logits. This is exactly what llama.cpp's
    /// greedy sampler picks, without building and scanning a candidate array of the whole
    /// vocabulary per token (49,152 entries for SmolLM2), which is work on the inference
    /// thread between decode steps, times every greedy slot in the batch.
    Argmax,
    /// The chain, and the candidate array it works on, kept between tokens.
    Chain {
        chain: LlamaSampler,
        /// Reused between steps: one entry per vocabulary token.
        candidates: Vec<LlamaTokenData>,
        has_grammar: bool,
        /// The grammar llama.cpp built for the request's tool calls, applied before the chain.
        tool_grammar: Option<ToolGrammar>,
    },
}

impl Sampler {
    /// Chooses the next token and lets the chain accept it.
    ///
    /// This is `llama_sampler_sample` (fill candidates from the logits, apply the chain,
    /// accept the choice) done from Rust, because llama.cpp's grammar can take the process
    /// down from `accept`: it throws a C++ exception when it cannot accept a token (an
    /// exception that reaches Rust aborts), and it calls `GGML_ABORT` when asked to accept an
    /// end-of-generation token before the grammar is complete, which happens when a grammar
    /// names one (`root ::= "hi" <|im_end|>`): its own masking forbids that token, every
    /// candidate ends at -inf, and the chain "selects" one anyway. So: a choice the grammar
    /// forbade is an error, an end-of-generation token is never passed to `accept` (the
    /// request ends there, and its sampler with it), and `try_accept` catches exceptions in
    /// C++.
    /// `thinking`: the reply is inside a thinking block, where a lazy tool grammar pauses.
    pub fn sample(
        &mut self,
        ctx: &LlamaContext,
        model: &LlamaModel,
        idx: i32,
        thinking: bool,
    ) -> EngineResult<LlamaToken> {
        let (chain, candidates, mut has_grammar, tool_grammar) = match self {
            Sampler::Argmax => return Ok(LlamaToken(first_max(ctx.get_logits_ith(idx)) as i32)),
            Sampler::Chain {
                chain,
                candidates,
                has_grammar,
                tool_grammar,
            } => (chain, candidates, *has_grammar, tool_grammar),
        };
        let mut tool_grammar = tool_grammar.as_mut().filter(|g| g.applies(thinking));
        has_grammar |= tool_grammar.as_ref().is_some_and(|g| !g.lazy);
        let mut data = std::mem::take(candidates);
        data.clear();
        data.extend(
            ctx.get_logits_ith(idx)
                .iter()
                .enumerate()
                .map(|(id, &logit)| LlamaTokenData::new(LlamaToken(id as i32), logit, 0.0)),
        );
        let mut array = LlamaTokenDataArray::new(data, false);
        if let Some(g) = tool_grammar.as_deref_mut() {
            array.apply_sampler(&mut g.sampler);
        }
        array.apply_sampler(chain);
        let chosen = array
            .selected
            .and_then(|i| array.data.get(i))
            .map(|d| (d.id(), d.logit()));
        *candidates = array.data;
        let token = match chosen {
            Some((token, logit)) if logit != f32::NEG_INFINITY => token,
            _ if has_grammar => {
                return Err(EngineError::invalid_argument(
                    "the grammar allows no token at this point: a class that matches nothing, or an end-of-generation token such as <|im_end|> named in the grammar (the grammar ends the reply by itself when it is complete)",
                ))
            }
            _ => {
                return Err(EngineError::internal(
                    "the model gave every token a logit of -inf, so there is nothing to sample: the model file's weights may be broken",
                ))
            }
        };
        if model.vocab().is_eog(token) {
            return Ok(token);
        }
        if let Some(g) = tool_grammar {
            g.sampler.try_accept(token).map_err(|e| {
                EngineError::internal(format!(
                    "llama.cpp's tool-call grammar failed on token {} ({e})",
                    token.0
                ))
            })?;
        }
        chain.try_accept(token).map_err(|e| {
            EngineError::invalid_argument(format!(
                "llama.cpp's grammar failed on token {} ({e}): check the grammar's token references",
                token.0
            ))
        })?;
        Ok(token)
    }
}

impl Sampler {
    /// Lets the chain see a token that was fed instead of sampled (a forced end tag), so that
    /// penalties and a grammar follow the reply as it is.
    pub fn accept_forced(&mut self, token: LlamaToken, thinking: bool) {
        if let Sampler::Chain {
            chain,
            tool_grammar,
            ..
        } = self
        {
            // A grammar that refuses the tag leaves its state as it was; the reply goes on.
            if let Some(g) = tool_grammar.as_mut().filter(|g| g.applies(thinking)) {
                let _ = g.sampler.try_accept(token);
            }
            let _ = chain.try_accept(token);
        }
    }

    /// The model closed its thinking block: a lazy tool grammar, paused while it thought, sees
    /// the end tag (which may hold its trigger), as llama.cpp's sampler replays it.
    pub fn thinking_closed(&mut self, end_tag: &[LlamaToken]) {
        if let Sampler::Chain {
            tool_grammar: Some(g),
            ..
        } = self
        {
            if g.lazy {
                for &token in end_tag {
                    let _ = g.sampler.try_accept(token);
                }
            }
        }
    }
}

/// Index of the first maximum (llama.cpp's greedy sampler keeps the earliest on ties).
fn first_max(logits: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in logits.iter().enumerate().skip(1) {
        if x > logits[best] {
            best = i;
        }
    }
    best
}

/// `tool_grammar`: the grammar llama.cpp built for a request's tool calls, if any.
pub fn build_sampler(
    model: &LlamaModel,
    p: &SamplingParams,
    tool_grammar: Option<&PlanGrammar>,
) -> EngineResult<Sampler> {
    let penalties_on =
        p.repeat_penalty != 1.0 || p.frequency_penalty != 0.0 || p.presence_penalty != 0.0;
    if p.temperature <= 0.0 && !penalties_on && p.grammar.is_none() && tool_grammar.is_none() {
        return Ok(Sampler::Argmax);
    }
    let tool_grammar = tool_grammar
        .map(|g| {
            tool_grammar_sampler(model, g).map(|sampler| ToolGrammar {
                sampler,
                lazy: g.lazy,
            })
        })
        .transpose()?;
    build_chain(model, p, penalties_on).map(|chain| Sampler::Chain {
        chain,
        candidates: Vec::new(),
        has_grammar: p.grammar.is_some(),
        tool_grammar,
    })
}

/// The tool-call grammar: checked first for what llama.cpp's grammar parser cannot survive
/// (it comes from the caller's parameter schemas), then lazy (free text until a trigger) or
/// strict.
fn tool_grammar_sampler(model: &LlamaModel, g: &PlanGrammar) -> EngineResult<LlamaSampler> {
    gbnf::check(&g.gbnf, "root").map_err(|e| {
        EngineError::invalid_argument(format!(
            "the tools' parameter schemas give a grammar llama.cpp cannot use: {e}"
        ))
    })?;
    let sampler = if g.lazy {
        let tokens: Vec<LlamaToken> = g.trigger_tokens.iter().map(|&t| LlamaToken(t)).collect();
        LlamaSampler::grammar_lazy_patterns(model, &g.gbnf, "root", &g.trigger_patterns, &tokens)
    } else {
        LlamaSampler::grammar(model, &g.gbnf, "root")
    };
    let mut sampler = sampler.map_err(|e| {
        EngineError::invalid_argument(format!(
            "llama.cpp rejected the tool-call grammar built from the tools' schemas ({e})"
        ))
    })?;
    for &token in &g.prefill_tokens {
        sampler.try_accept(LlamaToken(token)).map_err(|e| {
            EngineError::internal(format!(
                "the tool-call grammar does not start with the template's assistant opener ({e})"
            ))
        })?;
    }
    Ok(sampler)
}

fn build_chain(
    model: &LlamaModel,
    p: &SamplingParams,
    penalties_on: bool,
) -> EngineResult<LlamaSampler> {
    let mut chain = Vec::with_capacity(8);
    if let Some(gbnf) = &p.grammar {
        // Grammar first: it masks every token the grammar forbids before anything is chosen.
        let grammar = LlamaSampler::grammar(model, gbnf, "root").map_err(|e| {
            EngineError::invalid_argument(format!(
                "llama.cpp rejected the grammar ({e}). Its syntax checked out, so the likely causes are left recursion (a rule whose alternatives can start with the rule itself, such as `root ::= root \"a\" | \"b\"`: write `root ::= \"b\" \"a\"*`) or too many rules generated by nested repetitions; see llama.cpp's grammars/README.md"
            ))
        })?;
        chain.push(grammar);
    }
    if penalties_on {
        chain.push(LlamaSampler::penalties(
            model.n_vocab(),
            p.penalty_last_n,
            p.repeat_penalty,
            p.frequency_penalty,
            p.presence_penalty,
        ));
    }
    if p.temperature <= 0.0 {
        chain.push(LlamaSampler::greedy());
    } else {
        if p.top_k > 0 {
            chain.push(LlamaSampler::top_k(p.top_k));
        }
        if p.top_p < 1.0 {
            chain.push(LlamaSampler::top_p(p.top_p, 1));
        }
        if p.min_p > 0.0 {
            chain.push(LlamaSampler::min_p(p.min_p, 1));
        }
        chain.push(LlamaSampler::temp(p.temperature));
        chain.push(LlamaSampler::dist(p.seed));
    }
    Ok(LlamaSampler::chain_simple(chain))
}

#[cfg(test)]
mod tests {
    use super::first_max;

    #[test]
    fn first_max_keeps_the_earliest_of_equal_logits() {
        assert_eq!(first_max(&[1.0, 3.0, 2.0, 3.0]), 1);
        assert_eq!(first_max(&[5.0]), 0);
        assert_eq!(first_max(&[-1.0, -0.5, f32::NEG_INFINITY]), 1);
    }
}
