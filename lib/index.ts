// The public surface of napi-llama: the default engine's functions, the Engine class, the
// errors, and the types. Result types are the engine's own (binding.d.ts); option and input
// types are derived from them where the JavaScript side accepts more (a single stop string,
// a schema object, an AbortSignal).
export { initialize, generate, stream, health, metrics, tokenize, detokenize, countTokens, shutdown } from './default-engine'
export { Engine } from './engine'
export type { Embeddings, Health, Scores, StreamChunk, StreamFinalChunk, StreamReasoningChunk, StreamTextChunk, StreamToolCallChunk } from './engine'
export { ErrorCode, LlamaError } from './errors'
export type { ErrorCodeName } from './errors'
export { RemoteEngine } from './remote/remote-engine'
export type { RemoteHealth } from './remote/remote-engine'
export type { ServerKind } from './remote/server-kinds'
export { EnginePool } from './pool/pool-engine'
export type { BackendMetrics, PoolHealth, PoolMetrics } from './pool/pool-engine'
export type { BackendHealth, BreakerState, PoolMember } from './pool/backend'
export type { ChatMessage, ConnectOptions, EmbedOptions, GenerateOptions, PoolOptions, InitializeOptions, Input, LogLevel, OverflowPolicy, Pooling, ToolChoice, ToolDefinition } from './options'
export type { FinishReason, Generation, HealthStatus, Metrics, ModelInfo, ReasoningMode, TemplateSource, Timings, ToolCall, ToolCallDelta } from '../binding'
