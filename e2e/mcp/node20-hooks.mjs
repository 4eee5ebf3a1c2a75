// Module resolution hook for node20.mjs: the conformance suite's `fs` gets
// every export of node:fs plus a globSync stub.
const shim = 'data:text/javascript,' + encodeURIComponent(`
export * from 'node:fs';
import fs from 'node:fs';
export default fs;
export function globSync() { throw new Error('fs.globSync needs Node.js 22 or later'); }
`);

export async function resolve(specifier, context, next) {
  if ((specifier === 'fs' || specifier === 'node:fs') && context.parentURL?.includes('/@modelcontextprotocol/conformance/')) {
    return { url: shim, shortCircuit: true };
  }
  return next(specifier, context);
}
