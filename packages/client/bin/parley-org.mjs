#!/usr/bin/env node
// Runs src/cli/org.ts through tsx (the repo has no build step). tsx is a root devDependency of
// the workspace, resolved from here; a published package would ship compiled JS instead.
import { register } from 'tsx/esm/api';

register();
const { main } = await import(new URL('../src/cli/org.ts', import.meta.url).href);
process.exitCode = await main(process.argv);
