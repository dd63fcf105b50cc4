// The texts of the embedding benchmark (--suites embed): short sentences, each different, as a
// retrieval index would hold (one chunk each). Shared by every runner so all embed the same.
'use strict'

const SUBJECTS = ['The library', 'A small bakery', 'The city council', 'Our weather station', 'The football club', 'A new startup', 'The museum', 'The hospital']
const VERBS = ['opened', 'announced', 'reported', 'closed', 'expanded', 'delayed', 'celebrated', 'reviewed']
const OBJECTS = ['a reading room for children', 'its winter schedule', 'record rainfall this week', 'the old train station', 'a second branch downtown', 'the river bridge repairs', 'fifty years of service', 'its budget for next year']

/** `count` distinct sentences of about a dozen tokens each. */
function embedTexts(count) {
  return Array.from({ length: count }, (_, i) => {
    const s = SUBJECTS[i % 8]
    const v = VERBS[Math.floor(i / 8) % 8]
    const o = OBJECTS[Math.floor(i / 64) % 8]
    return `${s} ${v} ${o} (note ${i}).`
  })
}

module.exports = { embedTexts }
