// How many measured repetitions a concurrency level gets in the server suite (bench/run.js
// --suites server): at least `reps`, and enough that the level's TTFT p50 comes from
// MIN_TTFT_SAMPLES streams per round. One stream at two repetitions gives two samples, and a
// p50 of two decides nothing at a few milliseconds' difference.
'use strict'

const MIN_TTFT_SAMPLES = 8

function levelRepetitions(level, reps) {
  return Math.max(reps, Math.ceil(MIN_TTFT_SAMPLES / level))
}

module.exports = { levelRepetitions, MIN_TTFT_SAMPLES }
