#!/usr/bin/env node
// Development shim: runs the TypeScript sources through tsx inside this repository. The
// published package's `parley-org` is the compiled dist/cli/org-bin.js (see publishConfig).
import { register } from 'tsx/esm/api';

register();
await import(new URL('../src/cli/org-bin.ts', import.meta.url).href);
