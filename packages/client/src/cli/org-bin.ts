#!/usr/bin/env node
// The `parley-org` command (compiled to dist/cli/org-bin.js, run by plain node).
import { main } from './org.js';

process.exitCode = await main(process.argv);
