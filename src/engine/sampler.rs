//! Builds one request's llama.cpp sampler chain from validated parameters.

use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::sampling::LlamaSampler;

use super::error::{EngineError, EngineResult};
use super::options::SamplingParams;

pub fn build_sampler(model: &LlamaModel, p: &SamplingParams) -> EngineResult<LlamaSampler> {
    let mut chain = Vec::with_capacity(8);
    if let Some(gbnf) = &p.grammar {
        // Grammar first: it masks every token the grammar forbids before anything is chosen.
        let grammar = LlamaSampler::grammar(model, gbnf, "root").map_err(|e| {
            EngineError::invalid_argument(format!(
                "grammar is not valid GBNF with a `root` rule ({e}); see llama.cpp's grammars/README.md"
            ))
        })?;
        chain.push(grammar);
    }
    let penalties_on =
        p.repeat_penalty != 1.0 || p.frequency_penalty != 0.0 || p.presence_penalty != 0.0;
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
