/** Baseline page with libsodium's WebAssembly backend (see baseline.ts). */
import { runBaseline } from './baseline.js';

void runBaseline('sodium');
