#!/usr/bin/env node
// The `trellis` command: runs the compiled CLI (built by `npm ci` through the prepare script, or `npm run build`).
import '../dist/cli/trellis.js';
