#!/usr/bin/env node
// Development shim: runs the TypeScript sources through tsx inside this repository. The
// published package's `parley-compliance` is the compiled dist/compliance/bin.js (see publishConfig).
import { register } from 'tsx/esm/api';

register();
await import(new URL('../src/compliance/bin.ts', import.meta.url).href);
