// Validates docs/contract/ with the official AsyncAPI parser and Ajv (JSON Schema 2020-12).
// Usage: node asyncapi_check.cjs DIR...   (NODE_PATH: where @asyncapi/parser and ajv are)
// For each contract directory: one line per problem, then `result DIR ok|failed`; failed on any
// error-severity diagnostic of the parser, a schema file Ajv cannot compile, or a message
// example (payload or headers) its schema refuses. Exit 1 when any directory failed.
'use strict';
const fs = require('fs');
const path = require('path');
const { Parser } = require('@asyncapi/parser');
const Ajv2020 = require('ajv/dist/2020').default;
const Ajv = require('ajv').default;

const parser = new Parser();

// The parsed document marks schemas with x-parser-* keys: not JSON Schema.
function plain(node) {
  if (Array.isArray(node)) return node.map(plain);
  if (node === null || typeof node !== 'object') return node;
  const out = {};
  for (const [key, value] of Object.entries(node)) {
    if (!key.startsWith('x-parser-')) out[key] = plain(value);
  }
  return out;
}

async function main(dir) {
  const file = path.join(dir, 'asyncapi.yaml');
  const { document, diagnostics } = await parser.parse(fs.readFileSync(file, 'utf8'), {
    source: file,
  });
  let failed = 0;
  for (const d of diagnostics) {
    const where = (d.path || []).join('.');
    console.log(`parser severity=${d.severity} ${d.code} at ${where}: ${d.message}`);
    if (d.severity === 0) failed += 1;
  }
  if (!document) {
    console.log('parser: no document');
    return 1;
  }
  const ajv = new Ajv2020({ strict: true, strictRequired: false, allErrors: true });
  const headersAjv = new Ajv({ strict: true, strictRequired: false, allErrors: true });
  const messages = document.json().components.messages;
  let examples = 0;
  for (const name of Object.keys(messages).sort()) {
    const message = messages[name];
    const schemaFile = path.join(dir, 'schemas', `${name}.json`);
    const payload = fs.existsSync(schemaFile)
      ? ajv.compile(JSON.parse(fs.readFileSync(schemaFile, 'utf8')))
      : null;
    const headers = message.headers ? headersAjv.compile(plain(message.headers)) : null;
    for (const example of message.examples || []) {
      examples += 1;
      if (payload && !payload(example.payload)) {
        console.log(`example of ${name}: ${ajv.errorsText(payload.errors)}`);
        failed += 1;
      }
      if (headers && !headers(example.headers || {})) {
        console.log(`example headers of ${name}: ${headersAjv.errorsText(headers.errors)}`);
        failed += 1;
      }
    }
  }
  console.log(`checked ${Object.keys(messages).length} messages, ${examples} examples`);
  return failed ? 1 : 0;
}

async function all(dirs) {
  let failed = 0;
  for (const dir of dirs) {
    let code;
    try {
      code = await main(dir);
    } catch (error) {
      console.log(`error: ${error && error.stack ? error.stack : error}`);
      code = 1;
    }
    console.log(`result ${dir} ${code ? 'failed' : 'ok'}`);
    failed += code;
  }
  return failed ? 1 : 0;
}

all(process.argv.slice(2)).then((code) => process.exit(code));
