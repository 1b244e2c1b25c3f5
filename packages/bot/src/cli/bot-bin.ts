#!/usr/bin/env node
// The `parley-bot` command (compiled to dist/cli/bot-bin.js, run by plain node).
import { main } from './bot.js';

process.exitCode = await main(process.argv);
