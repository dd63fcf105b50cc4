/** Jest runs the TypeScript suites in __test__/ against the real addon and real models. */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/__test__'],
  testMatch: ['**/*.test.ts'],
  // The suites load the package through dist/: compile lib/ first when it changed.
  globalSetup: '<rootDir>/scripts/build-ts.js',
  transform: { '^.+\\.ts$': ['ts-jest', { tsconfig: '<rootDir>/tsconfig.json' }] },
  testTimeout: 120000,
}
