#!/usr/bin/env node
// Development shim: runs the TypeScript sources through tsx inside this repository. The
// published package's `parley-bot` is the compiled dist/cli/bot-bin.js (see publishConfig).
import { register } from 'tsx/esm/api';

register();
await import(new URL('../src/cli/bot-bin.ts', import.meta.url).href);
