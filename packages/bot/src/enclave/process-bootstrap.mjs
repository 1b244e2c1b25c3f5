// Development only: the first module (`--import`) of the enclave *process* (process mode, README
// "Enclave modes: worker and process") when the bot runs from its TypeScript sources. tsx cannot
// be used there: it transforms through esbuild's child process, which the permission model
// refuses. This registers `ts-loader.mjs` (TypeScript's own transpiler, no child process) in
// this thread, and marks it so the handler worker's bootstrap does not register tsx on top. The
// published package runs dist/enclave/entry.js with plain node and never loads this file.
import { register } from 'node:module';

register(new URL('./ts-loader.mjs', import.meta.url));
globalThis[Symbol.for('parley.enclave.tsLoader')] = true;
