/** The demo page with libsodium's WebAssembly backend (index.html). */
import { start } from './main.js';

void start('sodium');
