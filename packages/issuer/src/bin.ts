#!/usr/bin/env node
// The `parley-issuer` command (compiled to dist/bin.js, run by plain node).
import './cli.js';
