#!/usr/bin/env node
// The `parley-compliance` command (compiled to dist/compliance/bin.js, run by plain node).
import { main } from './cli.js';

process.exitCode = await main(process.argv);
