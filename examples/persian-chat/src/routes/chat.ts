// POST /api/chat — the service's own API, used by the web page.
//   { message, history?, stream? } → { reply, finishReason, usage, … }
//   stream: true → SSE: `data: {"text"}` per piece, then `event: done` with the summary, or
//   `event: error` with `{ error }` if generation fails after the first piece.
// Long conversations keep working: the oldest turns are dropped when the context is full.
import { Router } from 'express'
import type { Generation, StreamFinalChunk } from 'napi-llama'
import type { Config } from '../config'
import { clientError } from '../errors'
import type { LlmService } from '../llm'
import type { ServiceMetrics } from '../metrics'
import { EventStream, abortOnDisconnect, forEachChunk, openStream, textFrames } from '../sse'
import { requestParsers } from '../schemas'

function summary(g: Omit<Generation, 'text'>, model: string) {
  return {
    finishReason: g.finishReason,
    model,
    requestId: g.requestId,
    droppedMessages: g.droppedMessages,
    usage: {
      promptTokens: g.promptTokens,
      completionTokens: g.completionTokens,
      totalTokens: g.promptTokens + g.completionTokens,
      cachedTokens: g.cachedTokens,
    },
    timings: g.timings,
  }
}

export function chatRouter(config: Config, llm: LlmService, metrics: ServiceMetrics): Router {
  const router = Router()
  const parse = requestParsers(config)

  router.post('/chat', async (req, res) => {
    const { messages, stream, model: requested } = parse.chat(req.body)
    const model = llm.resolveModel(requested)
    const controller = abortOnDisconnect(res, () => metrics.clientDisconnects.inc({ route: '/api/chat' }))
    const options = {
      model,
      client: metrics.clientLabel(res),
      contextOverflow: 'drop-oldest' as const,
      requestId: res.locals.requestId as string,
      signal: controller.signal,
    }

    if (!stream) {
      const g = await llm.generate(messages, options)
      res.json({ reply: g.text, ...summary(g, model) })
      return
    }

    const events = new EventStream(res, {
      keepAliveMs: config.sseKeepAliveMs,
      slowReaderMs: config.slowReaderTimeoutMs,
      onSlowReader: () => metrics.slowReadersDropped.inc({ route: '/api/chat' }),
    })
    try {
      const opened = await openStream(llm.stream(messages, options), events)
      events.start()
      const textFrame = textFrames((text) => JSON.stringify({ text }))
      await forEachChunk(opened, (chunk) => {
        if (!chunk.done) return chunk.text ? events.frame(textFrame(chunk.text)) : undefined
        const final = chunk as StreamFinalChunk
        return events.send(JSON.stringify({ reply: final.generation.text, ...summary(final, model) }), 'done')
      })
    } catch (err) {
      if (!events.started) throw err // nothing sent yet: the error handler gives it a real status
      if (!controller.signal.aborted) await events.send(JSON.stringify(clientError(err, res.locals.requestId as string).toBody()), 'error')
    } finally {
      events.end()
    }
  })

  return router
}
