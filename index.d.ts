// The public types are declared by the TypeScript layer (lib/), compiled to dist/.
export * from './dist/index'
