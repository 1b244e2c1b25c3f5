import { after } from 'node:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryStore, SqliteStore } from '../src/index.js';
import { storeContract } from './store-contract.js';

const dir = mkdtempSync(join(tmpdir(), 'parley-store-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

storeContract('memory', () => new MemoryStore());
storeContract('sqlite', () => new SqliteStore(join(dir, `s${n++}.db`)));
