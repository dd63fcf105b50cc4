//! The "raw" baseline for `npm run bench`: a plain single-sequence decode loop over
//! llama-cpp-2, built with the same flags as the addon. Prints one JSON line.
//!   cargo run --release --example raw_decode -- MODEL TOKENS REPS THREADS PROMPT

use std::num::NonZeroU32;
use std::time::Instant;

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::sampling::LlamaSampler;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let model_path = args
        .get(1)
        .ok_or("usage: raw_decode MODEL TOKENS REPS THREADS PROMPT")?;
    let n_tokens: usize = args.get(2).map_or(Ok(128), |s| s.parse())?;
    let reps: usize = args.get(3).map_or(Ok(5), |s| s.parse())?;
    let threads: i32 = args.get(4).map_or(Ok(2), |s| s.parse())?;
    let prompt = args
        .get(5)
        .cloned()
        .unwrap_or_else(|| "Once upon a time".into());

    let mut backend = LlamaBackend::init()?;
    backend.void_logs();
    let model = LlamaModel::load_from_file(&backend, model_path, &LlamaModelParams::default())?;
    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(1024))
        .with_n_batch(512)
        .with_n_threads(threads)
        .with_n_threads_batch(threads);
    let mut ctx = model.new_context(&backend, params)?;
    let prompt_tokens = model.vocab().tokenize(prompt.as_bytes(), true, true);
    let mut text = Vec::new();
    let mut batch = LlamaBatch::new(512, 1);
    let (mut tps, mut ttft, mut generated) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..reps + 1 {
        ctx.clear_kv_cache();
        let mut sampler = LlamaSampler::greedy();
        let start = Instant::now();
        batch.clear();
        for (i, t) in prompt_tokens.iter().enumerate() {
            batch.add(*t, i as i32, &[0], i + 1 == prompt_tokens.len())?;
        }
        ctx.decode(&mut batch)?;
        let mut token = sampler.sample(&ctx, batch.n_tokens() - 1);
        let first = Instant::now();
        let mut pos = prompt_tokens.len() as i32;
        let mut count = 1;
        while count < n_tokens && !model.vocab().is_eog(token) {
            let piece = model.vocab().token_to_piece(token, false, None);
            text.extend(piece);
            batch.clear();
            batch.add(token, pos, &[0], true)?;
            ctx.decode(&mut batch)?;
            token = sampler.sample(&ctx, 0);
            pos += 1;
            count += 1;
        }
        let end = Instant::now();
        ttft.push((first - start).as_secs_f64() * 1000.0);
        tps.push((count - 1) as f64 / (end - first).as_secs_f64());
        generated.push(count);
    }
    if std::env::var("PRINT").is_ok() {
        eprintln!("{}", String::from_utf8_lossy(&text));
    }
    // The first repetition warms caches up and is not reported.
    println!(
        "{{\"decodeTps\":{:?},\"ttftMs\":{:?},\"tokens\":{:?}}}",
        &tps[1..],
        &ttft[1..],
        &generated[1..]
    );
    Ok(())
}
