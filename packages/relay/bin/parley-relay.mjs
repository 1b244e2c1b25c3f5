#!/usr/bin/env node
// Runs src/cli.ts through tsx (the repo has no build step). tsx is a root devDependency of the
// workspace, resolved from here; a published package would ship compiled JS instead.
import { register } from 'tsx/esm/api';

register();
await import(new URL('../src/cli.ts', import.meta.url).href);
