#!/usr/bin/env node
// Development shim: runs the TypeScript sources through tsx inside this repository. The
// published package's `parley-issuer` is the compiled dist/bin.js (see publishConfig).
import { register } from 'tsx/esm/api';

register();
await import(new URL('../src/bin.ts', import.meta.url).href);
