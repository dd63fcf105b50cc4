// The OpenAI client suite on replies generated in this process (LLM_BACKENDS=local, the default).
import { openaiClientSuite, startSuiteService } from './openai-suite'

openaiClientSuite(() => startSuiteService())
