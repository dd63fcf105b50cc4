//! Runs on the prompt thread: a grammar's `<token>` references checked against the model's
//! vocabulary.

use llama_cpp_2::token::LlamaToken;

use super::gbnf::{TokenRef, TokenUse};
use crate::engine::error::{EngineError, EngineResult};
use crate::engine::load::Loaded;

/// What llama.cpp's grammar parser would reject (printing to stderr) or could never satisfy:
/// a `<text>` that is not exactly one token, an id beyond the vocabulary, and an
/// end-of-generation token, which llama.cpp's grammar masks out everywhere. Runs on the
/// prompt thread: each distinct `<text>` costs a tokenization.
pub fn check_token_refs(loaded: &Loaded, uses: &[TokenUse]) -> EngineResult<()> {
    let vocab = loaded.model.vocab();
    let n_vocab = vocab.n_tokens().max(0) as u32;
    let mut seen = std::collections::HashSet::new();
    for u in uses.iter().filter(|u| seen.insert(&u.token)) {
        let (token, shown) = match &u.token {
            TokenRef::Id(id) if *id >= n_vocab => {
                return Err(EngineError::invalid_argument(format!(
                    "grammar token <[{id}]> at {} is outside the vocabulary ({n_vocab} tokens)",
                    u.place
                )))
            }
            TokenRef::Id(id) => (LlamaToken(*id as i32), format!("<[{id}]>")),
            TokenRef::Text(text) => match loaded.tokenize(text, false, true).as_slice() {
                [one] => (*one, text.clone()),
                many => {
                    return Err(EngineError::invalid_argument(format!(
                        "grammar token {text} at {} is {} tokens of this model's vocabulary, not one: use a literal string instead",
                        u.place,
                        many.len()
                    )))
                }
            },
        };
        if vocab.is_eog(token) {
            return Err(EngineError::invalid_argument(format!(
                "grammar token {shown} at {} ends generation, and llama.cpp's grammar never allows such a token: leave it out, the reply ends by itself when the grammar is complete",
                u.place
            )));
        }
    }
    Ok(())
}
