// The OpenAI-compatible API: POST /v1/chat/completions (JSON or SSE) and GET /v1/models, shaped
// so the official `openai` client works unchanged. Unlike /api/chat, a prompt that does not fit
// the context is a 400 `context_length_exceeded`, as OpenAI does.
import { Router } from 'express'
import type { Generation, StreamFinalChunk, ToolCall, ToolCallDelta } from 'napi-llama'
import type { Config } from '../config'
import { ApiError, clientError } from '../errors'
import type { LlmService } from '../llm'
import type { ServiceMetrics } from '../metrics'
import { EventStream, abortOnDisconnect, forEachChunk, openStream, textFrames } from '../sse'
import { requestParsers } from '../schemas'

/** The server's start time, used as every model's `created`. */
const STARTED_AT = Math.floor(Date.now() / 1000)

/** OpenAI has no 'eos': the model ending its turn is 'stop' there. */
const finishReason = (reason: Generation['finishReason']) =>
  reason === 'length' ? 'length' : reason === 'toolCalls' ? 'tool_calls' : 'stop'

/** A reply's calls as OpenAI shapes them in a message. */
const toolCallObjects = (calls: ToolCall[]) =>
  calls.map((c) => ({ id: c.id, type: 'function', function: { name: c.name, arguments: c.arguments } }))

/**
 * A call's pieces as OpenAI shapes them in stream deltas: `id`, `type` and `function.name` once,
 * on the call's first delta, then `function.arguments` fragments (clients join every string).
 */
function toolCallDeltas() {
  const started = new Set<number>()
  return (piece: ToolCallDelta) => {
    const first = !started.has(piece.index)
    started.add(piece.index)
    return {
      tool_calls: [
        {
          index: piece.index,
          ...(first ? { id: piece.id, type: 'function' } : {}),
          function: first ? { name: piece.name, arguments: piece.arguments } : { arguments: piece.arguments },
        },
      ],
    }
  }
}

function usage(g: Omit<Generation, 'text'>) {
  return {
    prompt_tokens: g.promptTokens,
    completion_tokens: g.completionTokens,
    total_tokens: g.promptTokens + g.completionTokens,
    prompt_tokens_details: { cached_tokens: g.cachedTokens },
  }
}

export function openaiRouter(config: Config, llm: LlmService, metrics: ServiceMetrics): Router {
  const router = Router()
  const parse = requestParsers(config)

  // With several models, each carries its state (configured, loading, loaded, unloaded, failed).
  const modelObjects = () =>
    (llm.registry?.statuses() ?? [{ name: llm.modelId }]).map((m) => ({
      id: m.name,
      object: 'model',
      created: STARTED_AT,
      owned_by: 'napi-llama',
      ...('state' in m ? { state: m.state, default: m.isDefault } : {}),
    }))

  router.get('/models', (_req, res) => {
    res.json({ object: 'list', data: modelObjects() })
  })

  router.get('/models/:id', (req, res) => {
    const model = modelObjects().find((m) => m.id === req.params.id)
    if (!model) throw new ApiError(404, 'not_found_error', 'model_not_found', `The model '${req.params.id}' does not exist`, 'model')
    res.json(model)
  })

  router.post('/chat/completions', async (req, res) => {
    const request = parse.completion(req.body)
    const controller = abortOnDisconnect(res, () => metrics.clientDisconnects.inc({ route: '/v1/chat/completions' }))
    const requestId = res.locals.requestId as string
    const model = llm.resolveModel(request.model)
    const options = { ...request.options, model, client: metrics.clientLabel(res), contextOverflow: 'error' as const, requestId, signal: controller.signal }
    const id = `chatcmpl-${requestId}`
    const created = Math.floor(Date.now() / 1000)

    if (!request.stream) {
      const g = await llm.generate(request.messages, options)
      res.json({
        id,
        object: 'chat.completion',
        created,
        model,
        choices: [
          {
            index: 0,
            message: {
              role: 'assistant',
              // OpenAI's content is null on a reply that is only tool calls.
              content: g.toolCalls?.length && g.text === '' ? null : g.text,
              refusal: null,
              ...(g.reasoningText !== undefined ? { reasoning_content: g.reasoningText } : {}),
              ...(g.toolCalls?.length ? { tool_calls: toolCallObjects(g.toolCalls) } : {}),
            },
            logprobs: null,
            finish_reason: finishReason(g.finishReason),
          },
        ],
        usage: usage(g),
        system_fingerprint: null,
      })
      return
    }

    const events = new EventStream(res, {
      keepAliveMs: config.sseKeepAliveMs,
      slowReaderMs: config.slowReaderTimeoutMs,
      onSlowReader: () => metrics.slowReadersDropped.inc({ route: '/v1/chat/completions' }),
    })
    const head = { id, object: 'chat.completion.chunk', created, model, system_fingerprint: null }
    const noUsage = request.includeUsage ? { usage: null } : {}
    const chunk = (delta: object, finish: string | null) =>
      JSON.stringify({ ...head, choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }], ...noUsage })
    try {
      const opened = await openStream(llm.stream(request.messages, options), events)
      events.start()
      const contentFrame = textFrames((text) => chunk({ content: text }, null))
      const toolCallDelta = toolCallDeltas()
      await events.send(chunk({ role: 'assistant', content: '' }, null))
      await forEachChunk(opened, (piece) => {
        if (piece.type === 'reasoning') return events.send(chunk({ reasoning_content: piece.reasoning }, null))
        if (piece.type === 'toolCall') return events.send(chunk(toolCallDelta(piece.toolCall), null))
        if (!piece.done) return piece.text ? events.frame(contentFrame(piece.text)) : undefined
        const final = piece as StreamFinalChunk
        events.send(chunk({}, finishReason(final.finishReason)))
        // OpenAI's usage chunk: no choices, usage filled in.
        if (request.includeUsage) events.send(JSON.stringify({ ...head, choices: [], usage: usage(final) }))
        return events.send('[DONE]')
      })
    } catch (err) {
      if (!events.started) throw err // nothing sent yet: the error handler gives it a real status
      // The openai client raises an APIError for a `data: { error }` event mid-stream.
      if (!controller.signal.aborted) await events.send(JSON.stringify(clientError(err, res.locals.requestId as string).toBody()))
    } finally {
      events.end()
    }
  })

  return router
}
