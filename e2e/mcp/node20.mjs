// Loaded with `node --import ./node20.mjs` before the MCP conformance
// suite. The suite's build imports fs.globSync, which Node.js gained in
// version 22, only for a command these tests do not run; on Node.js 20 that
// import alone stops it from loading. Where globSync is missing, this
// resolves the suite's `fs` to a module that adds a stub, and does nothing
// on newer Node.js.
import fs from 'node:fs';
import { register } from 'node:module';

if (typeof fs.globSync !== 'function') {
  register('./node20-hooks.mjs', import.meta.url);
}
