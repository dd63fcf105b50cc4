//! The "raw batched" baseline for `npm run bench`: N sequences decoded by a plain loop over
//! llama-cpp-2, one batch per step holding every live sequence's token, with no scheduler,
//! no channels and no text handling. Same build flags as the addon. Prints one JSON line.
//!   cargo run --release --example raw_batched -- MODEL TOKENS REPS THREADS SLOTS PROMPT...
//! Runs N = number of PROMPTs sequences; the context has SLOTS sequences of 1024 tokens.

use std::num::NonZeroU32;
use std::time::Instant;

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;

const USAGE: &str = "usage: raw_batched MODEL TOKENS REPS THREADS SLOTS PROMPT...";

struct Sequence {
    pos: i32,
    token: LlamaToken,
    generated: usize,
    logits_at: i32,
    done: bool,
    first_ms: f64,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let model_path = args.get(1).ok_or(USAGE)?;
    let n_tokens: usize = args.get(2).ok_or(USAGE)?.parse()?;
    let reps: usize = args.get(3).ok_or(USAGE)?.parse()?;
    let threads: i32 = args.get(4).ok_or(USAGE)?.parse()?;
    let slots: u32 = args.get(5).ok_or(USAGE)?.parse()?;
    let prompts = &args[6..];
    if prompts.is_empty() || prompts.len() > slots as usize {
        return Err(USAGE.into());
    }

    let mut backend = LlamaBackend::init()?;
    backend.void_logs();
    let model = LlamaModel::load_from_file(&backend, model_path, &LlamaModelParams::default())?;
    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(1024 * slots))
        .with_n_batch(512)
        .with_n_ubatch(512)
        .with_n_seq_max(slots)
        .with_kv_unified(false)
        .with_n_threads(threads)
        .with_n_threads_batch(threads);
    let mut ctx = model.new_context(&backend, params)?;
    let vocab = model.vocab();
    let tokenized: Vec<Vec<LlamaToken>> = prompts
        .iter()
        .map(|p| vocab.tokenize(p.as_bytes(), vocab.should_add_bos(), false))
        .collect();
    let mut batch = LlamaBatch::new(512, 1);
    let (mut aggregate, mut ttft) = (Vec::new(), Vec::new());
    for rep in 0..reps + 1 {
        ctx.clear_kv_cache();
        let mut samplers: Vec<LlamaSampler> =
            tokenized.iter().map(|_| LlamaSampler::greedy()).collect();
        let start = Instant::now();
        // All prompts in one batch (they are short), then one token per live sequence per step.
        batch.clear();
        let mut seqs = Vec::new();
        for (s, toks) in tokenized.iter().enumerate() {
            for (i, t) in toks.iter().enumerate() {
                batch.add(*t, i as i32, &[s as i32], i + 1 == toks.len())?;
            }
            seqs.push(Sequence {
                pos: toks.len() as i32,
                token: LlamaToken(0),
                generated: 0,
                logits_at: batch.n_tokens() - 1,
                done: false,
                first_ms: 0.0,
            });
        }
        loop {
            ctx.decode(&mut batch)?;
            for (s, seq) in seqs.iter_mut().enumerate() {
                if seq.done {
                    continue;
                }
                seq.token = samplers[s].sample(&ctx, seq.logits_at);
                if seq.generated == 0 {
                    seq.first_ms = start.elapsed().as_secs_f64() * 1000.0;
                }
                if vocab.is_eog(seq.token) {
                    seq.done = true;
                    continue;
                }
                seq.generated += 1;
                let _piece = vocab.token_to_piece(seq.token, false, None);
                if seq.generated >= n_tokens {
                    seq.done = true;
                }
            }
            batch.clear();
            for (s, seq) in seqs.iter_mut().enumerate() {
                if seq.done {
                    continue;
                }
                seq.logits_at = batch.n_tokens();
                batch.add(seq.token, seq.pos, &[s as i32], true)?;
                seq.pos += 1;
            }
            if batch.n_tokens() == 0 {
                break;
            }
        }
        let wall = start.elapsed().as_secs_f64();
        if rep == 0 {
            continue; // warm-up
        }
        let total: usize = seqs.iter().map(|s| s.generated).sum();
        aggregate.push(total as f64 / wall);
        ttft.extend(seqs.iter().map(|s| s.first_ms));
    }
    println!("{{\"aggregateTps\":{aggregate:?},\"ttftMs\":{ttft:?}}}");
    Ok(())
}
