//! Engine tests against the real test models, SmolLM2 and Gemma 3 (fetched by
//! `npm run fetch-model`; `npm test` fetches them first). Without them each test says it was
//! skipped and passes, so a plain `cargo test` on a fresh clone still runs everything else.

use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::Duration;

use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::LlamaModel;

use super::load::{backend, memory};
use super::prompt_thread::tokenizer;
use super::*;

const SMOLLM2: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
const GEMMA3: &str = "gemma-3-270m-q4_k_m.gguf";

fn models_dir() -> PathBuf {
    std::env::var("NAPI_LLAMA_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models"))
}

fn model_path(file: &str) -> String {
    models_dir().join(file).display().to_string()
}

/// Ends the calling test early, as a pass with a message, when the test models are absent.
macro_rules! skip_without_models {
    () => {
        let missing: Vec<_> = [SMOLLM2, GEMMA3]
            .into_iter()
            .filter(|f| !models_dir().join(f).exists())
            .collect();
        if !missing.is_empty() {
            eprintln!(
                "skipped: {} missing in {} (run `npm run fetch-model`)",
                missing.join(", "),
                models_dir().display()
            );
            return;
        }
    };
}

fn smollm2() -> String {
    model_path(SMOLLM2)
}

/// One engine shared by the tests in this binary (loading is cheap, but threads are few).
fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        Engine::load_blocking(LoadOptions {
            model_path: smollm2(),
            threads: Some(1.0),
            context_size: Some(512.0),
            ..Default::default()
        })
        .expect("SmolLM2 loads")
    })
}

fn run(
    engine: &Engine,
    input: Input,
    options: GenerateOptions,
    stream: bool,
) -> (Vec<String>, Result<Generation, EngineError>) {
    let (tx, rx) = mpsc::channel();
    engine
        .submit(input, &options, stream, Box::new(tx))
        .map_err(|e| e.to_string())
        .unwrap();
    let mut chunks = Vec::new();
    loop {
        match rx
            .recv_timeout(Duration::from_secs(120))
            .expect("an event arrives")
        {
            Event::Chunk { text, .. } => chunks.push(text),
            Event::Delta(d) => chunks.push(d.text),
            Event::Done(g) => return (chunks, Ok(g)),
            Event::Error(e) => return (chunks, Err(e)),
            Event::Embedded(_) => panic!("a generation request got an embedding result"),
        }
    }
}

/// An embedding request's result, through the same sink a generation uses.
fn embed(engine: &Engine, input: EmbedInput) -> Result<Embeddings, EngineError> {
    let (tx, rx) = mpsc::channel();
    engine.embed(input, &EmbedOptions::default(), Box::new(tx))?;
    match rx
        .recv_timeout(Duration::from_secs(120))
        .expect("an event arrives")
    {
        Event::Embedded(e) => Ok(e),
        Event::Error(e) => Err(e),
        other => panic!("unexpected event {other:?}"),
    }
}

#[test]
fn an_embedding_engine_packs_texts_and_names_the_one_over_the_context() {
    skip_without_models!();
    let engine = Engine::load_blocking(LoadOptions {
        model_path: smollm2(),
        threads: Some(1.0),
        context_size: Some(64.0),
        embeddings: Some(true),
        ..Default::default()
    })
    .expect("SmolLM2 loads as an embedding engine");
    let texts = |v: &[&str]| EmbedInput::Texts(v.iter().map(|s| s.to_string()).collect());
    let decodes = engine.metrics().decode_calls;
    let e = embed(&engine, texts(&["one cat", "two dogs", "سه پرنده"])).expect("embeds");
    assert_eq!(engine.metrics().decode_calls - decodes, 1.0);
    assert_eq!(e.vectors.len(), 3);
    for v in &e.vectors {
        assert_eq!(v.len(), 576);
        let norm: f64 = v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "norm {norm}");
    }
    assert!(e.prompt_tokens > 3);
    let long = "word ".repeat(200);
    let err = embed(&engine, texts(&["short", &long])).expect_err("too long");
    assert_eq!(err.code, ErrorCode::ContextOverflow);
    assert!(err.message.contains("text 1"), "{}", err.message);
    let (tx, _rx) = mpsc::channel();
    let refused = engine
        .submit(
            Input::Text("hi".into()),
            &GenerateOptions::default(),
            false,
            Box::new(tx),
        )
        .err()
        .expect("generation refused");
    assert_eq!(refused.code, ErrorCode::InvalidArgument);
    assert_eq!(
        embed(&engine, texts(&["again"]))
            .expect("still serves")
            .vectors
            .len(),
        1
    );
    engine.shutdown_blocking();
}

fn greedy(max_tokens: f64) -> GenerateOptions {
    GenerateOptions {
        temperature: Some(0.0),
        max_tokens: Some(max_tokens),
        ..Default::default()
    }
}

fn user(text: &str) -> Input {
    Input::Chat(vec![ChatMessage::text(Role::User, text)])
}

const LONG_PROMPT: &str = "Once upon a time, in a small village by the sea, there lived";

/// Starts a long streaming request and returns once its first chunk has arrived.
fn streaming(engine: &Engine) -> (SubmittedRequest, mpsc::Receiver<Event>) {
    let (tx, rx) = mpsc::channel();
    let req = engine
        .submit(
            Input::Text(LONG_PROMPT.into()),
            &greedy(400.0),
            true,
            Box::new(tx),
        )
        .unwrap();
    let first = rx.recv_timeout(Duration::from_secs(60)).unwrap();
    assert!(matches!(first, Event::Chunk { .. }), "{first:?}");
    (req, rx)
}

/// The event that ended a request (everything after its chunks).
fn final_event(rx: &mpsc::Receiver<Event>) -> Event {
    rx.iter()
        .find(|ev| !matches!(ev, Event::Chunk { .. }))
        .unwrap()
}

#[test]
fn chat_generation_answers() {
    skip_without_models!();
    let (_, g) = run(
        engine(),
        Input::Text("The capital of France is".into()),
        greedy(8.0),
        false,
    );
    assert!(g.unwrap().text.contains("Paris"));
    let (_, g) = run(
        engine(),
        user("What is the capital of France?"),
        greedy(24.0),
        false,
    );
    let g = g.unwrap();
    assert!(
        !g.text.trim().is_empty() && !g.text.contains("<|im_"),
        "{:?}",
        g.text
    );
    assert!(g.completion_tokens > 0 && g.prompt_tokens > 5);
    assert!(g.timings.ttft_ms > 0.0);
}

#[test]
fn streamed_text_equals_generated_text_and_is_whole_utf8() {
    skip_without_models!();
    let opts = GenerateOptions {
        seed: Some(7.0),
        max_tokens: Some(48.0),
        ..Default::default()
    };
    let input = || Input::Text("سلام، چطوری؟ امروز".into());
    let (chunks, streamed) = run(engine(), input(), opts.clone(), true);
    let (_, generated) = run(engine(), input(), opts, false);
    let (streamed, generated) = (streamed.unwrap(), generated.unwrap());
    assert_eq!(chunks.concat(), streamed.text);
    assert_eq!(
        streamed.text, generated.text,
        "same seed, same input, same output"
    );
    assert!(chunks.iter().all(|c| !c.contains('\u{FFFD}')));
}

#[test]
fn persian_tokenize_round_trip_is_lossless() {
    skip_without_models!();
    let text = "سلام، چطوری؟ من خوبم. 👋";
    let tokens = engine().tokenize(text).unwrap();
    assert!(tokens.len() > 5);
    assert_eq!(engine().detokenize(&tokens).unwrap(), text);
}

#[test]
fn stop_strings_end_generation_without_leaking() {
    skip_without_models!();
    let (_, free) = run(
        engine(),
        Input::Text("1, 2, 3, 4, 5,".into()),
        greedy(16.0),
        false,
    );
    let free = free.unwrap();
    // Stop on text the greedy continuation is known to contain.
    let stop = free.text.chars().skip(3).take(3).collect::<String>();
    let opts = GenerateOptions {
        stop: Some(vec![stop.clone()]),
        ..greedy(16.0)
    };
    let (chunks, g) = run(engine(), Input::Text("1, 2, 3, 4, 5,".into()), opts, true);
    let g = g.unwrap();
    assert_eq!(g.finish_reason, FinishReason::Stop);
    assert!(!g.text.contains(&stop));
    assert!(free.text.starts_with(&g.text));
    assert_eq!(chunks.concat(), g.text);
}

#[test]
fn errors_carry_codes_and_the_engine_keeps_serving() {
    skip_without_models!();
    let e = engine();
    let long = "word ".repeat(2000);
    // Prompts are fitted on the prompt thread: the overflow arrives as the request's event.
    let (_, overflow) = run(e, Input::Text(long), greedy(4.0), false);
    let err = overflow.unwrap_err();
    assert_eq!(err.code, ErrorCode::ContextOverflow);
    assert!(err.message.contains("512"), "{}", err.message);
    let bad = GenerateOptions {
        temperature: Some(f64::NAN),
        ..Default::default()
    };
    assert_eq!(
        e.submit(user("hi"), &bad, false, Box::new(mpsc::channel().0))
            .err()
            .unwrap()
            .code,
        ErrorCode::InvalidArgument
    );
    // A syntax error is found before the request is queued, with its place.
    let syntax = GenerateOptions {
        grammar: Some("root ::= (".into()),
        ..greedy(4.0)
    };
    let err = e
        .submit(user("hi"), &syntax, false, Box::new(mpsc::channel().0))
        .err()
        .unwrap();
    assert_eq!(err.code, ErrorCode::InvalidArgument);
    assert!(err.message.contains("line 1, column 11"), "{}", err.message);
    // Left recursion is valid syntax that llama.cpp refuses when it builds the sampler.
    let (_, g) = run(
        e,
        user("hi"),
        GenerateOptions {
            grammar: Some("root ::= root \"a\" | \"a\"".into()),
            ..greedy(4.0)
        },
        false,
    );
    assert_eq!(g.unwrap_err().code, ErrorCode::InvalidArgument);
    let (_, g) = run(e, user("hi"), greedy(4.0), false);
    assert!(g.is_ok());
}

#[test]
fn grammar_constrains_output() {
    skip_without_models!();
    let opts = GenerateOptions {
        grammar: Some(r#"root ::= ("yes" | "no")"#.into()),
        ..greedy(8.0)
    };
    let (_, g) = run(
        engine(),
        user("Is the sky blue? Answer yes or no."),
        opts,
        false,
    );
    let g = g.unwrap();
    assert!(g.text == "yes" || g.text == "no", "{:?}", g.text);
}

#[test]
fn cancel_and_timeout_stop_a_running_request() {
    skip_without_models!();
    let e = engine();
    let (req, rx) = streaming(e);
    req.cancel.cancel(CancelReason::Aborted);
    let last = final_event(&rx);
    assert!(
        matches!(last, Event::Error(ref err) if err.code == ErrorCode::Aborted),
        "{last:?}"
    );
    let opts = GenerateOptions {
        timeout_ms: Some(30.0),
        ..greedy(400.0)
    };
    let (_, g) = run(e, Input::Text(LONG_PROMPT.into()), opts, false);
    assert_eq!(g.unwrap_err().code, ErrorCode::Timeout);
    assert!(run(e, user("hi"), greedy(4.0), false).1.is_ok());
}

#[test]
fn bad_model_files_fail_with_load_failed() {
    skip_without_models!();
    let dir = std::env::temp_dir().join(format!("napi-llama-engine-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let truncated = dir.join("truncated.gguf");
    let bytes = std::fs::read(smollm2()).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 3]).unwrap();
    for path in [dir.join("missing.gguf"), truncated] {
        let err = Engine::load_blocking(LoadOptions {
            model_path: path.display().to_string(),
            ..Default::default()
        })
        .err()
        .unwrap();
        assert_eq!(err.code, ErrorCode::ModelLoadFailed, "{err}");
        assert!(err.message.contains(&path.display().to_string()));
    }
}

#[test]
fn kv_cache_estimate_matches_llama_cpp_on_a_model_without_a_window() {
    skip_without_models!();
    let model = LlamaModel::load_from_file(
        backend::get().unwrap(),
        smollm2(),
        &LlamaModelParams::default(),
    )
    .unwrap();
    // llama.cpp logs "KV buffer size = 22.50 MiB" for SmolLM2 at 1024 cells: 30 layers ×
    // 3 KV heads × 64 × (K + V) × F16.
    assert_eq!(
        memory::kv_cache_bytes(&model, 512, 2),
        Some(30 * 1024 * 3 * 64 * 2 * 2)
    );
}

#[test]
fn kv_cache_estimate_matches_llama_cpp_on_gemma3() {
    skip_without_models!();
    let model = LlamaModel::load_from_file(
        backend::get().unwrap(),
        model_path(GEMMA3),
        // Not vocab_only: such a model has no layers, and asking for its heads aborts.
        &LlamaModelParams::default(),
    )
    .unwrap();
    // llama.cpp logs 24 MiB (3 full layers) + 120 MiB (15 sliding-window layers, all cells
    // under swa_full) at 2 × 4096 cells: key and value heads of 256.
    assert_eq!(memory::kv_cache_bytes(&model, 4096, 2), Some(144 << 20));
}

#[cfg(feature = "fault-injection")]
#[test]
fn a_kv_cache_larger_than_memory_is_refused_before_allocation() {
    skip_without_models!();
    // The fault makes the engine see 16 MiB of memory, less than the 22.5 MiB SmolLM2's cache
    // needs at 1024 cells. For real, llama.cpp would allocate the cache, and clearing it would
    // bring in the OOM killer wherever overcommit lets the allocation through.
    let err = Engine::load_blocking(LoadOptions {
        model_path: smollm2(),
        context_size: Some(1024.0),
        parallel: Some(1.0),
        faults: Some("memory:16777216".into()),
        ..Default::default()
    })
    .err()
    .unwrap();
    assert_eq!(err.code, ErrorCode::ModelLoadFailed, "{err}");
    assert!(err.message.contains("KV cache"), "{err}");
    assert!(err.message.contains(&smollm2()), "{err}");
    assert!(run(engine(), user("hi"), greedy(2.0), false).1.is_ok());
}

#[test]
fn shutdown_aborts_work_in_flight() {
    skip_without_models!();
    let e = Engine::load_blocking(LoadOptions {
        model_path: smollm2(),
        threads: Some(1.0),
        context_size: Some(256.0),
        ..Default::default()
    })
    .unwrap();
    let (_req, rx) = streaming(&e);
    e.shutdown_blocking();
    let last = final_event(&rx);
    assert!(matches!(last, Event::Error(ref err) if err.code == ErrorCode::Aborted));
    assert_eq!(e.health().status, EngineStatus::Unloaded);
    assert_eq!(e.tokenize("x").unwrap_err().code, ErrorCode::ModelNotLoaded);
}

fn message(role: Role, content: &str) -> ChatMessage {
    ChatMessage::text(role, content)
}

/// An engine of its own, so that no other test evicts its slots' caches.
fn private_engine(parallel: f64) -> Engine {
    Engine::load_blocking(LoadOptions {
        model_path: smollm2(),
        threads: Some(1.0),
        context_size: Some(512.0),
        parallel: Some(parallel),
        ..Default::default()
    })
    .expect("SmolLM2 loads")
}

#[test]
fn a_second_chat_turn_reuses_the_first_turns_cache() {
    skip_without_models!();
    let e = private_engine(2.0);
    let mut chat = vec![
        message(Role::System, "You are a helpful assistant."),
        message(Role::User, "Name three colors."),
    ];
    let (_, first) = run(&e, Input::Chat(chat.clone()), greedy(16.0), false);
    let first = first.unwrap();
    assert_eq!(first.cached_tokens, 0);
    chat.push(message(Role::Assistant, &first.text));
    chat.push(message(Role::User, "Now name three animals."));
    let (_, second) = run(&e, Input::Chat(chat), greedy(16.0), false);
    let second = second.unwrap();
    assert!(
        second.cached_tokens >= first.prompt_tokens,
        "cached {} of {}, first prompt {}",
        second.cached_tokens,
        second.prompt_tokens,
        first.prompt_tokens
    );
    let m = e.metrics();
    assert_eq!(m.cache_hits, 1.0);
    assert_eq!(
        m.prompt_tokens_evaluated,
        f64::from(first.prompt_tokens + second.prompt_tokens - second.cached_tokens)
    );
    e.shutdown_blocking();
}

#[test]
fn a_cached_prompt_gives_the_same_text_as_a_fresh_one() {
    skip_without_models!();
    let e = private_engine(1.0);
    let prompt = || Input::Text("The capital of France is".into());
    let (_, fresh) = run(&e, prompt(), greedy(24.0), false);
    let (_, cached) = run(&e, prompt(), greedy(24.0), false);
    let no_cache = GenerateOptions {
        cache_prompt: Some(false),
        ..greedy(24.0)
    };
    let (_, uncached) = run(&e, prompt(), no_cache, false);
    let (fresh, cached, uncached) = (fresh.unwrap(), cached.unwrap(), uncached.unwrap());
    assert_eq!(fresh.cached_tokens, 0);
    assert_eq!(cached.cached_tokens, cached.prompt_tokens - 1);
    assert_eq!(uncached.cached_tokens, 0);
    assert_eq!(fresh.text, cached.text);
    assert_eq!(fresh.text, uncached.text);
    e.shutdown_blocking();
}

#[test]
fn drop_oldest_removes_old_turns_until_the_prompt_fits() {
    skip_without_models!();
    let e = engine();
    let filler = "This is a long message about the weather and the sea. ".repeat(8);
    let mut chat = vec![message(Role::System, "You are terse.")];
    for i in 0..12 {
        chat.push(message(Role::User, &format!("Question {i}: {filler}")));
        chat.push(message(Role::Assistant, &format!("Answer {i}: {filler}")));
    }
    chat.push(message(Role::User, "What is 2 + 2?"));
    let (_, overflow) = run(e, Input::Chat(chat.clone()), greedy(8.0), false);
    assert_eq!(overflow.unwrap_err().code, ErrorCode::ContextOverflow);
    let dropping = GenerateOptions {
        context_overflow: Some("drop-oldest".into()),
        ..greedy(8.0)
    };
    let (_, g) = run(e, Input::Chat(chat.clone()), dropping.clone(), false);
    let g = g.unwrap();
    assert!(g.dropped_messages >= 2, "{}", g.dropped_messages);
    assert_eq!(g.dropped_messages % 2, 0, "whole turns are dropped");
    assert!(g.prompt_tokens + 8 <= 512, "{}", g.prompt_tokens);
    // A last message that cannot fit on its own still overflows.
    let huge = vec![message(Role::User, &"word ".repeat(2000))];
    let (_, overflow) = run(e, Input::Chat(huge), dropping, false);
    assert_eq!(overflow.unwrap_err().code, ErrorCode::ContextOverflow);
}

#[test]
fn generation_that_fills_the_context_ends_with_length() {
    skip_without_models!();
    let e = engine();
    let prompt = "word ".repeat(400);
    let (_, g) = run(e, Input::Text(prompt), greedy(1000.0), false);
    let g = g.unwrap();
    assert_eq!(g.finish_reason, FinishReason::Length);
    // Prompt and completion together fill the context exactly.
    let total = g.prompt_tokens + g.completion_tokens;
    assert_eq!(total, 512, "{total}");
    let (_, next) = run(e, user("hi"), greedy(4.0), false);
    assert!(next.is_ok());
}

#[test]
fn concurrent_requests_match_the_same_requests_run_alone() {
    skip_without_models!();
    let e = private_engine(4.0);
    let prompts = [
        "The capital of France is",
        "Once upon a time",
        "My favourite food is",
        "The sun rises in the",
    ];
    let options = |i: usize| GenerateOptions {
        seed: Some(7.0 + i as f64),
        temperature: Some(if i.is_multiple_of(2) { 0.0 } else { 0.8 }),
        max_tokens: Some(24.0),
        cache_prompt: Some(false),
        ..Default::default()
    };
    let alone: Vec<String> = prompts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            run(&e, Input::Text((*p).into()), options(i), false)
                .1
                .unwrap()
                .text
        })
        .collect();
    let receivers: Vec<_> = prompts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let (tx, rx) = mpsc::channel();
            e.submit(Input::Text((*p).into()), &options(i), false, Box::new(tx))
                .unwrap();
            rx
        })
        .collect();
    let together: Vec<String> = receivers
        .iter()
        .map(|rx| match final_event(rx) {
            Event::Done(g) => g.text,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(alone, together);
    e.shutdown_blocking();
}

#[test]
fn greedy_fast_path_picks_what_llama_cpp_greedy_sampler_picks() {
    skip_without_models!();
    use llama_cpp_2::context::params::LlamaContextParams;
    use llama_cpp_2::llama_batch::LlamaBatch;
    use llama_cpp_2::sampling::LlamaSampler;

    let prompt = "Once upon a time, in a small village by the sea, there lived";
    let n = 48;
    // The engine: temperature 0 and nothing else takes the argmax path.
    let (_, g) = run(
        engine(),
        Input::Text(prompt.into()),
        greedy(n as f64),
        false,
    );
    let engine_text = g.unwrap().text;
    // A plain loop with llama.cpp's greedy sampler over the same model file.
    let backend = backend::get().unwrap();
    let model =
        LlamaModel::load_from_file(backend, smollm2(), &LlamaModelParams::default()).unwrap();
    let mut ctx = model
        .new_context(
            backend,
            LlamaContextParams::default()
                .with_n_ctx(NonZeroU32::new(512))
                .with_n_threads(1)
                .with_n_threads_batch(1),
        )
        .unwrap();
    let vocab = model.vocab();
    let tokens = vocab.tokenize(prompt.as_bytes(), vocab.should_add_bos(), false);
    let mut batch = LlamaBatch::new(512, 1);
    for (i, t) in tokens.iter().enumerate() {
        batch
            .add(*t, i as i32, &[0], i + 1 == tokens.len())
            .unwrap();
    }
    ctx.decode(&mut batch).unwrap();
    let mut sampler = LlamaSampler::greedy();
    let mut bytes = Vec::new();
    let mut idx = batch.n_tokens() - 1;
    for pos in (tokens.len() as i32..).take(n) {
        let t = sampler.sample(&ctx, idx);
        if model.vocab().is_eog(t) {
            break;
        }
        bytes.extend(model.vocab().token_to_piece(t, false, None));
        batch.clear();
        batch.add(t, pos, &[0], true).unwrap();
        ctx.decode(&mut batch).unwrap();
        idx = 0;
    }
    assert_eq!(engine_text, String::from_utf8_lossy(&bytes));
}

#[test]
fn admission_refuses_beyond_parallel_plus_max_queue_at_submit_and_gives_places_back() {
    skip_without_models!();
    let e = Engine::load_blocking(LoadOptions {
        model_path: smollm2(),
        threads: Some(1.0),
        context_size: Some(256.0),
        parallel: Some(1.0),
        max_queue: Some(1.0),
        ..Default::default()
    })
    .expect("SmolLM2 loads");
    // One running and one waiting: the third is refused synchronously, before any of them ends.
    let (running, rx_running) = streaming(&e);
    let (tx, rx_waiting) = mpsc::channel();
    e.submit(Input::Text("Hi".into()), &greedy(2.0), false, Box::new(tx))
        .expect("one may wait");
    let (tx, _rx) = mpsc::channel();
    let refused = e
        .submit(Input::Text("Hi".into()), &greedy(2.0), false, Box::new(tx))
        .err()
        .expect("a third is refused");
    assert_eq!(refused.code, ErrorCode::QueueFull);
    assert_eq!(e.metrics().requests_failed, 1.0);
    running.cancel.cancel(CancelReason::Aborted);
    assert!(
        matches!(final_event(&rx_running), Event::Error(ref err) if err.code == ErrorCode::Aborted)
    );
    assert!(matches!(final_event(&rx_waiting), Event::Done(_)));
    // Both places are free again.
    for _ in 0..2 {
        let (_, result) = run(&e, Input::Text("Hi".into()), greedy(2.0), false);
        assert!(result.is_ok());
    }
    e.shutdown_blocking();
}

/// Texts with many special-token texts, in every arrangement the cut rules care about.
fn special_heavy_texts() -> Vec<String> {
    let mut texts = Vec::new();
    let pieces = [
        "<|im_start|>",
        "<|im_end|>",
        "<start_of_turn>",
        "<end_of_turn>",
        "<bos>",
        "<eos>",
        "<|endoftext|>",
        "<b>",
        "<table>",
        " ",
        "\n",
        "  ",
        "hello",
        " world",
        "سلام",
        "<",
        "|",
        ">",
        "<|im_",
        "start|>",
    ];
    // A deterministic pseudo-random walk over the pieces (no rand dependency).
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    for len in [1usize, 7, 40, 300] {
        for _ in 0..8 {
            let mut text = String::new();
            for _ in 0..len {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                text.push_str(pieces[(state % pieces.len() as u64) as usize]);
            }
            texts.push(text);
        }
    }
    texts.push("<|im_start|>user\nhi<|im_end|>\n".repeat(50));
    texts.push("<start_of_turn>user\nسلام<end_of_turn>\n".repeat(50));
    texts
}

/// A test model's vocabulary, without its weights.
fn vocab_only(file: &str) -> LlamaModel {
    LlamaModel::load_from_file(
        backend::get().expect("backend"),
        model_path(file),
        &LlamaModelParams::default().with_vocab_only(true),
    )
    .expect("model loads")
}

#[test]
fn tokenizing_in_pieces_gives_exactly_llama_cpp_tokens() {
    skip_without_models!();
    for file in [SMOLLM2, GEMMA3] {
        let model = vocab_only(file);
        // Cut after every second special-token text, to exercise the cuts on short texts.
        let pieces = tokenizer::with_piece_size(&model, 2);
        let mut cut = [0usize; 2];
        for text in special_heavy_texts() {
            for add_special in [false, true] {
                for parse_special in [false, true] {
                    if pieces.pieces(text.as_bytes(), parse_special) > 1 {
                        cut[parse_special as usize] += 1;
                    }
                    assert_eq!(
                        pieces.tokenize(&model, text.as_bytes(), add_special, parse_special),
                        model.vocab().tokenize(text.as_bytes(), add_special, parse_special),
                        "{file}, add_special {add_special}, parse_special {parse_special}: {text:?}"
                    );
                }
            }
        }
        // A text without control-token text tokenizes the same with and without parse_special.
        for text in special_heavy_texts() {
            let parsed = model.vocab().tokenize(text.as_bytes(), false, true);
            let plain = model.vocab().tokenize(text.as_bytes(), false, false);
            if !pieces.has_control_text(&model, &text) {
                assert_eq!(parsed, plain, "{file}: {text:?}");
            }
        }
        // The comparison covered texts that were actually cut.
        assert!(cut[1] > 10, "{file}: {cut:?}");
        eprintln!("{file}: texts cut without/with parse_special: {cut:?}");
    }
}

/// A conversation as each chat format renders it, turn by turn: every prompt extends the one
/// before by a reply and a message, whose texts come from `special_heavy_texts` (so they hold
/// special-token texts, whole and broken, too). A long system prompt makes every prompt long
/// enough for its beginning to be kept.
fn growing_conversations(file: &str) -> Vec<Vec<String>> {
    let (turn, reply, generation) = if file.starts_with("gemma") {
        (
            "<start_of_turn>user\n{}<end_of_turn>\n",
            "{}<end_of_turn>\n",
            "<start_of_turn>model\n",
        )
    } else {
        (
            "<|im_start|>user\n{}<|im_end|>\n",
            "{}<|im_end|>\n",
            "<|im_start|>assistant\n",
        )
    };
    let texts = special_heavy_texts();
    (0..6)
        .map(|c| {
            let system = "You are a helpful assistant. ".repeat(40);
            let mut history = if file.starts_with("gemma") {
                format!("<bos><start_of_turn>user\n{system}<end_of_turn>\n")
            } else {
                format!("<|im_start|>system\n{system}<|im_end|>\n")
            };
            (0..5)
                .map(|t| {
                    let said = &texts[(c * 7 + t * 3) % texts.len()];
                    history.push_str(&turn.replace("{}", said));
                    let prompt = format!("{history}{generation}");
                    history.push_str(generation);
                    history.push_str(&reply.replace("{}", &texts[(c + t * 5) % texts.len()]));
                    prompt
                })
                .collect()
        })
        .collect()
}

#[test]
fn later_turns_reuse_earlier_tokens_and_get_exactly_llama_cpp_tokens() {
    skip_without_models!();
    for file in [SMOLLM2, GEMMA3] {
        let model = vocab_only(file);
        let kept = tokenizer::Tokenizer::new(&model);
        let conversations = growing_conversations(file);
        // A second pass meets the same prompts again (a retried turn, another client sending
        // the same history), some of them with their whole beginning kept.
        for pass in 0..2 {
            for prompts in &conversations {
                for prompt in prompts {
                    for add_special in [false, true] {
                        assert_eq!(
                            kept.tokenize(&model, prompt.as_bytes(), add_special, true),
                            model.vocab().tokenize(prompt.as_bytes(), add_special, true),
                            "{file}, pass {pass}, add_special {add_special}: {prompt:?}"
                        );
                    }
                }
            }
            if pass == 0 {
                // One entry per conversation: each turn's beginning replaced the one it grew from.
                let entries = kept.kept_prefixes();
                assert!(
                    (1..=conversations.len()).contains(&entries),
                    "{file}: {entries} entries"
                );
            }
        }
        // The next turn of every conversation begins with its last prompt's kept tokens.
        for prompts in &conversations {
            let last = prompts.last().expect("turns");
            assert!(
                kept.last_cut(last.as_bytes()).is_some(),
                "{file}: no cut in {last:?}"
            );
            let next = format!(
                "{last}a reply{}",
                if file.starts_with("gemma") {
                    "<end_of_turn>\n<start_of_turn>user\nmore"
                } else {
                    "<|im_end|>\n<|im_start|>user\nmore"
                }
            );
            assert_eq!(
                kept.kept_prefix_end(next.as_bytes()),
                kept.last_cut(last.as_bytes()),
                "{file}: {next:?}"
            );
        }
        // A short prompt keeps nothing: tokenizing it again costs less than keeping it.
        let before = kept.kept_prefixes();
        let short =
            "<|im_start|>user\nhi<|im_end|>\n<start_of_turn>user\nhi<end_of_turn>\n<|im_start|>";
        assert_eq!(
            kept.tokenize(&model, format!("{short}x").as_bytes(), true, true),
            model
                .vocab()
                .tokenize(format!("{short}x").as_bytes(), true, true)
        );
        assert_eq!(kept.kept_prefixes(), before);
    }
}

#[test]
fn a_chat_of_many_messages_tokenizes_in_linear_time() {
    skip_without_models!();
    let chat: Vec<ChatMessage> = (0..20_000)
        .map(|i| message(Role::User, &format!("turn {i}")))
        .collect();
    let n = engine().count_tokens(&Input::Chat(chat)).unwrap();
    assert!(n > 100_000);
    // llama.cpp alone is quadratic in special-token texts (about 25 s on this chat here). What
    // keeps the engine linear is that no llama.cpp call gets more than a bounded number of
    // them: checked by structure, not by a clock, so that no machine is too slow for it.
    let model = vocab_only(SMOLLM2);
    let text = "<|im_start|>user\nturn 1<|im_end|>\n".repeat(20_000);
    let specials = 40_000;
    let pieces = tokenizer::Tokenizer::new(&model).pieces(text.as_bytes(), true);
    assert!(
        pieces > specials / tokenizer::SPECIALS_PER_PIECE,
        "{pieces} pieces for {specials} special-token texts"
    );
}

mod properties;

#[cfg(not(feature = "fault-injection"))]
#[test]
fn a_build_without_fault_injection_refuses_faults() {
    let err = LoadOptions {
        model_path: "model.gguf".into(),
        faults: Some("decode:1".into()),
        ..Default::default()
    }
    .validate()
    .err()
    .unwrap();
    assert_eq!(err.code, ErrorCode::InvalidArgument);
    assert!(err.message.contains("fault-injection"), "{err}");
}
