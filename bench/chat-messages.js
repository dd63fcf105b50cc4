// The messages of one server-suite request, the same for the persian-chat service, llama-server
// and the in-process engine. The system message matters: without one the service puts its own
// (Persian) system prompt first, so it would evaluate several times the prompt the others do and
// attend over a longer context at every token.
'use strict'

const SYSTEM_PROMPT = 'You are a helpful assistant.'

function chatMessages(prompt) {
  return [
    { role: 'system', content: SYSTEM_PROMPT },
    { role: 'user', content: prompt },
  ]
}

module.exports = { chatMessages }
