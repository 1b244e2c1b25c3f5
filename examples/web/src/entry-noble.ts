/**
 * The demo page for a Content-Security-Policy without `'wasm-unsafe-eval'` (csp-noble.html):
 * the pure-JS backend, and a bundle built without libsodium (see src/no-sodium.ts).
 */
import { start } from './main.js';

void start('noble');
