/** Baseline page with the pure-JS backend, built without libsodium (see baseline.ts). */
import { runBaseline } from './baseline.js';

void runBaseline('noble');
