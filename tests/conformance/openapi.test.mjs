// The OpenAPI document (docs/openapi.json, served at GET /api/openapi.json) kept true: the server
// serves exactly the file, the file is a valid OpenAPI 3.1 document, and every path and method it
// lists is called on the real server, with answers that succeed and answers that fail, each
// checked against what the document says for that status and content type (ajv, JSON Schema
// 2020-12). An operation the test never called, an answer with a status the document does not
// list, or a body its schema refuses, fails the test. SSE answers are checked by their head.
// With auth on (the _auth run), every call carries the all-permitting token, and each operation
// is also called without one: 401 where the document asks for a token, 200 where it does not.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import Ajv2020 from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { Validator } from '@seriousme/openapi-schema-validator';
import { startServer, REPO_ROOT, uniqueStream, TEST_AUTH_SECRET, withTestAuth } from '../integration/lib/server.mjs';
import { hub, explain, waitFor } from './lib/hub.mjs';

const DOC_FILE = path.join(REPO_ROOT, 'docs', 'openapi.json');
const DOC_BYTES = readFileSync(DOC_FILE);
const doc = JSON.parse(DOC_BYTES.toString('utf8'));
const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];

let srv;
before(async () => {
  srv = await startServer({ name: 'openapi' });
});
after(async () => {
  await srv?.stop();
});

// ---- the document's pieces ----

/** The value at a local JSON pointer ("#/components/responses/NotFound"). */
function at(pointer) {
  assert.ok(pointer.startsWith('#/'), `a local $ref: ${pointer}`);
  return pointer
    .slice(2)
    .split('/')
    .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'))
    .reduce((o, k) => {
      assert.ok(o && k in o, `${pointer} resolves in the document`);
      return o[k];
    }, doc);
}
const esc = (s) => s.replace(/~/g, '~0').replace(/\//g, '~1');

/** A response object and the pointer it lives at (following a $ref). */
function response(pointer) {
  let r = at(pointer);
  while (r.$ref) {
    pointer = r.$ref;
    r = at(pointer);
  }
  return { r, pointer };
}

const ajv = new Ajv2020({ strict: false, allErrors: true });
addFormats(ajv);
ajv.addSchema(doc, 'openapi.json');
const compiled = new Map();
function validator(pointer) {
  if (!compiled.has(pointer)) compiled.set(pointer, ajv.getSchema(`openapi.json${pointer}`));
  const v = compiled.get(pointer);
  assert.ok(v, `the schema at ${pointer} compiles`);
  return v;
}

function operations() {
  const out = [];
  for (const [p, item] of Object.entries(doc.paths))
    for (const m of METHODS) if (item[m]) out.push({ key: `${m.toUpperCase()} ${p}`, path: p, method: m, op: item[m] });
  return out;
}
const needsToken = (op) => (op.security ?? doc.security ?? []).length > 0;

// ---- calling the server ----

/** One request; an SSE answer resolves at its head (then the connection is dropped). */
function send(method, p, { headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const h = { ...headers };
    if (body !== undefined) h['content-length'] = Buffer.byteLength(body);
    const req = http.request({ host: '127.0.0.1', port: srv.port, method, path: p, headers: h, agent: false }, (res) => {
      if (/^text\/event-stream/.test(res.headers['content-type'] ?? '')) {
        clearTimeout(timer);
        resolve({ status: res.statusCode, headers: res.headers, text: '' });
        req.destroy();
        return;
      }
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        clearTimeout(timer);
        resolve({ status: res.statusCode, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') });
      });
      res.on('error', reject);
    });
    const timer = setTimeout(() => req.destroy(new Error(`${method} ${p} timed out`)), 15000);
    req.on('error', reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

// what was called: operation key -> statuses (and content types); paths answered 405
const seen = new Map();
const seenTypes = new Map();
const refused = new Set();
const anonymous = new Map(); // auth run: operation key -> status without a token

function fill(template, params) {
  return template.replace(/\{([^}]+)\}/g, (_, n) => {
    assert.ok(n in params, `a value for {${n}} of ${template}`);
    return encodeURIComponent(String(params[n]));
  });
}

/**
 * Calls `METHOD template` with params filled in and checks the answer against the document:
 * its status must be listed for the operation (a method the path does not serve: 405 with Allow
 * naming exactly the documented methods), its content type one the status lists, its body valid
 * for that content type's schema, its documented headers present and valid. Returns the answer
 * with `json` parsed.
 */
async function call(method, template, { params = {}, query = '', headers = {}, json, body, token = true } = {}) {
  const item = doc.paths[template];
  assert.ok(item, `the document lists ${template}`);
  const url = fill(template, params) + (query ? `?${query}` : '');
  const h = token ? withTestAuth({ ...headers }) : { ...headers };
  if (json !== undefined) {
    body = JSON.stringify(json);
    h['content-type'] = 'application/json';
  }
  const res = await send(method, url, { headers: h, body });
  const what = `${method} ${url} (${template}) answered ${res.status} ${res.text.slice(0, 300)}`;
  const op = item[method.toLowerCase()];
  let pointer;
  if (!op) {
    assert.equal(res.status, 405, `${what}: the document has no ${method} here`);
    pointer = '#/components/responses/MethodNotAllowed';
    const documented = METHODS.filter((m) => item[m]).map((m) => m.toUpperCase());
    const allow = (res.headers.allow ?? '').split(',').map((s) => s.trim()).filter(Boolean);
    assert.deepEqual(allow.sort(), documented.sort(), `${what}: Allow names the documented methods`);
    refused.add(template);
  } else {
    const key = `${method} ${template}`;
    assert.ok(op.responses[res.status], `${what}: ${key} does not list ${res.status} (it lists ${Object.keys(op.responses).join(', ')})`);
    pointer = `#/paths/${esc(template)}/${method.toLowerCase()}/responses/${res.status}`;
    if (!seen.has(key)) seen.set(key, new Set());
    seen.get(key).add(res.status);
    if (!token) anonymous.set(key, res.status);
  }
  const { r, pointer: rp } = response(pointer);
  for (const [name, hd] of Object.entries(r.headers ?? {})) {
    const v = res.headers[name.toLowerCase()];
    if (v === undefined) {
      assert.ok(!hd.required, `${what}: the ${name} header`);
      continue;
    }
    if (hd.schema) {
      const s = hd.schema.type === 'integer' ? Number(v) : v;
      assert.ok(ajv.validate(hd.schema, s), `${what}: ${name}: ${v} is not ${JSON.stringify(hd.schema)}`);
    }
  }
  const ctype = (res.headers['content-type'] ?? '').split(';')[0].trim();
  if (!r.content) {
    assert.equal(res.text, '', `${what}: the document says this answer has no body`);
    return res;
  }
  assert.ok(r.content[ctype], `${what}: content type ${ctype || '(none)'} is not one of ${Object.keys(r.content).join(', ')}`);
  if (op) {
    const key = `${method} ${template} ${res.status}`;
    if (!seenTypes.has(key)) seenTypes.set(key, new Set());
    seenTypes.get(key).add(ctype);
  }
  if (ctype === 'text/event-stream') return res; // the head only
  let value = res.text;
  if (ctype === 'application/json') {
    try {
      value = JSON.parse(res.text);
    } catch (e) {
      assert.fail(`${what}: the body is not JSON (${e.message})`);
    }
    res.json = value;
  }
  const v = validator(`${rp}/content/${esc(ctype)}/schema`);
  assert.ok(v(value), `${what}: the body does not match the document: ${ajv.errorsText(v.errors)}`);
  return res;
}

// ---- the tests ----

test('GET /api/openapi.json serves docs/openapi.json, a valid OpenAPI 3.1 document, without a token', async () => {
  const res = await send('GET', '/api/openapi.json'); // no token, in the auth run too
  assert.equal(res.status, 200, res.text.slice(0, 300));
  assert.equal(res.headers['content-type'], 'application/json');
  assert.equal(res.headers['cache-control'], 'no-cache');
  assert.ok(res.text === DOC_BYTES.toString('utf8'), 'the served document is docs/openapi.json byte for byte (rebuild after editing it)');

  const v = new Validator();
  const result = await v.validate(structuredClone(doc));
  assert.equal(v.version, '3.1');
  assert.ok(result.valid, `docs/openapi.json is not valid OpenAPI 3.1: ${JSON.stringify(result.errors, null, 1)?.slice(0, 2000)}`);
  // every schema compiles (a typo in a $ref would only show when that answer comes)
  for (const name of Object.keys(doc.components.schemas)) validator(`#/components/schemas/${esc(name)}`);
  // the operation ids are what generated clients name their functions after
  const ids = operations().map((o) => o.op.operationId);
  assert.equal(new Set(ids).size, ids.length, 'operationIds are unique');
  assert.ok(ids.every(Boolean), 'every operation has an operationId');
});

test('the HTTP API: streams, events (JSON and SSE), health checks', async () => {
  const E = '/api/streams/{stream}/events';
  const s = uniqueStream('oa');
  const missing = uniqueStream('oa-missing');
  let r = await call('POST', E, { params: { stream: s }, json: { type: 'order.created', data: { id: 1, total: 9.5 } } });
  assert.equal(r.status, 201);
  r = await call('POST', E, { params: { stream: s }, headers: { 'expected-version': '1' }, json: [{ type: 'order.paid', data: { id: 1 }, id: `client-${randomUUID()}` }, { type: 'order.shipped', metadata: { by: 'test' } }] });
  assert.equal(r.status, 201);
  assert.equal(r.json.lastVersion, 3);
  r = await call('POST', E, { params: { stream: s }, headers: { 'expected-version': '1' }, json: { type: 'late' } });
  assert.equal(r.status, 409);
  assert.equal(r.json.actual, 3);
  assert.equal((await call('POST', E, { params: { stream: s }, body: '{"type":', headers: { 'content-type': 'application/json' } })).status, 400);
  assert.equal((await call('POST', E, { params: { stream: '$reserved' }, json: { type: 't' } })).status, 400);
  assert.equal((await call('PUT', E, { params: { stream: s }, json: {} })).status, 405);

  r = await call('GET', E, { params: { stream: s }, query: 'from=0&limit=2' });
  assert.equal(r.status, 200);
  assert.deepEqual(r.json.events.map((e) => e.version), [1, 2]);
  assert.equal(r.json.next, 2);
  r = await call('GET', E, { params: { stream: s }, query: 'direction=backward&limit=1' });
  assert.deepEqual(r.json.events.map((e) => e.version), [3]);
  r = await call('GET', E, { params: { stream: '$all' }, query: 'from=0&limit=1' });
  assert.equal(r.status, 200);
  assert.equal((await call('GET', E, { params: { stream: s }, query: 'limit=0' })).status, 400);
  assert.equal((await call('GET', E, { params: { stream: s }, query: 'direction=sideways' })).status, 400);
  assert.equal((await call('GET', E, { params: { stream: missing } })).status, 404);
  // the SSE variant: the head of a subscription, and a refused resume
  const sse = { accept: 'text/event-stream' };
  r = await call('GET', E, { params: { stream: s }, headers: { ...sse, 'last-event-id': '1' }, query: 'types=order.paid,order.shipped' });
  assert.equal(r.status, 200);
  assert.equal((await call('GET', E, { params: { stream: s }, headers: { ...sse, 'last-event-id': 'yesterday' } })).status, 400);

  const S = '/api/streams/{stream}';
  r = await call('GET', S, { params: { stream: s } });
  assert.equal(r.status, 200);
  assert.equal(r.json.version, 3);
  assert.equal((await call('GET', S, { params: { stream: missing } })).status, 404);
  assert.equal((await call('PUT', S, { params: { stream: s }, json: {} })).status, 405);

  r = await call('GET', '/api/streams', { query: `prefix=${encodeURIComponent(s)}&limit=5` });
  assert.deepEqual(r.json.streams.map((x) => x.name), [s]);
  assert.equal(r.json.next, null);
  assert.equal((await call('GET', '/api/streams', { query: 'limit=none' })).status, 400);
  assert.equal((await call('POST', '/api/streams', { json: {} })).status, 405);

  const C = '/api/streams/{stream}/close';
  r = await call('POST', C, { params: { stream: s } });
  assert.equal(r.status, 200);
  assert.equal(r.json.version, 3);
  assert.equal((await call('POST', E, { params: { stream: s }, json: { type: 'after.close' } })).status, 410);
  assert.equal((await call('POST', C, { params: { stream: missing } })).status, 404);
  assert.equal((await call('GET', C, { params: { stream: s } })).status, 405);

  assert.equal((await call('DELETE', S, { params: { stream: s } })).status, 204);
  assert.equal((await call('DELETE', S, { params: { stream: s } })).status, 404);

  for (const p of ['/healthz', '/readyz', '/metrics', '/api/openapi.json', '/', '/dashboard', '/dashboard/app.js', '/dashboard/app.css', '/dashboard/session']) {
    assert.equal((await call('GET', p)).status, 200);
    assert.equal((await call('POST', p, { body: '' })).status, 405);
  }
});

test('the SignalR negotiate routes', async () => {
  for (const p of ['/hub/negotiate', '/eventstreamhub/negotiate']) {
    let r = await call('POST', p, { query: 'negotiateVersion=1' });
    assert.equal(r.status, 200);
    assert.equal(r.json.negotiateVersion, 1);
    assert.ok(r.json.connectionToken);
    r = await call('POST', p, { query: 'negotiateVersion=one' });
    assert.equal(r.status, 200);
    assert.match(r.json.error, /negotiateVersion/);
    assert.equal((await call('GET', p)).status, 405);
  }
});

test('the /api/EventStream/ admin routes, with a subscriber on /eventstreamhub', async () => {
  const A = '/api/EventStream';
  const name = uniqueStream('oa-es');
  const target = uniqueStream('oa-es-target');
  let r = await call('POST', '/api/streams/{stream}/events', { params: { stream: name }, json: [{ type: 'Order.Created', data: { id: 1 } }, { type: 'order.paid', data: { id: 1 } }] });
  assert.equal(r.status, 201);
  const first = (await call('GET', '/api/streams/{stream}/events', { params: { stream: name } })).json.events[0];

  r = await call('POST', `${A}/streams/search`, { json: { name } });
  assert.equal(r.status, 200);
  const model = r.json.find((m) => m.name === name);
  assert.ok(model, `the search finds ${name}`);
  assert.equal((await call('POST', `${A}/streams/search`, { json: { streamId: 'nope' } })).status, 400);
  assert.equal((await call('POST', `${A}/streams/search`, { body: '[1]', headers: { 'content-type': 'application/json' } })).status, 400);
  assert.equal((await call('GET', `${A}/streams/search`)).status, 405);

  const SG = `${A}/streams/{stream}`;
  r = await call('GET', SG, { params: { stream: model.streamId } });
  assert.deepEqual(r.json, model);
  assert.equal((await call('GET', SG, { params: { stream: randomUUID() } })).status, 404);
  assert.equal((await call('GET', SG, { params: { stream: 'not-a-guid' } })).status, 400);
  assert.equal((await call('PUT', SG, { params: { stream: model.streamId }, json: {} })).status, 405);

  const BN = `${A}/streams/stream/{text}`;
  r = await call('GET', BN, { params: { text: name.toUpperCase() }, query: 'limit=1' });
  assert.deepEqual(r.json.map((m) => m.name), [name]);
  assert.equal((await call('GET', BN, { params: { text: name }, query: 'limit=0' })).status, 400);
  assert.equal((await call('POST', BN, { params: { text: name }, json: {} })).status, 405);

  const EV = `${A}/events/{streamId}/{eventId}`;
  r = await call('GET', EV, { params: { streamId: model.id, eventId: first.id } });
  assert.equal(r.json.eventId, first.id);
  assert.equal((await call('GET', EV, { params: { streamId: model.id, eventId: randomUUID() } })).status, 404);
  assert.equal((await call('GET', EV, { params: { streamId: 'x', eventId: first.id } })).status, 400);
  assert.equal((await call('POST', EV, { params: { streamId: model.id, eventId: first.id }, json: {} })).status, 405);

  r = await call('POST', `${A}/events/search`, { json: { streamId: model.id, type: 'order', maxReturnRecords: 1 } });
  assert.deepEqual(r.json.map((e) => e.type), ['Order.Created']);
  assert.equal((await call('POST', `${A}/events/search`, { json: { type: 'order' } })).status, 400);
  assert.equal((await call('GET', `${A}/events/search`)).status, 405);

  r = await call('POST', `${A}/streams/associate`, { json: { name: target, associatedStreams: [{ name }] } });
  assert.equal(r.status, 200);
  r = await call('POST', `${A}/streams/associate`, { json: { name, existing: true, associatedStreams: [{ name: target }] } });
  assert.equal(r.status, 409, 'a link back would make a circle');
  r = await call('POST', `${A}/streams/associate`, { json: { name: target, associatedStreams: [{ name: uniqueStream('oa-none') }] } });
  assert.equal(r.status, 404);
  assert.equal((await call('POST', `${A}/streams/associate`, { json: { name: target, associatedStreams: [] } })).status, 400);
  assert.equal((await call('GET', `${A}/streams/associate`)).status, 405);

  // a persistent subscriber, made by the stock SignalR client
  const SUB = `${A}/subscribers/{subscriberId}`;
  const c = hub(srv.url, { url: `${srv.url}/eventstreamhub` });
  const got = [];
  c.on(name, (json) => got.push(...JSON.parse(json)));
  await c.start();
  const subscriberId = randomUUID();
  await explain(c, async () => {
    await c.invoke('Subscribe', { StreamName: name, SubscriberId: subscriberId, SubscriberKey: randomUUID() });
    r = await call('GET', SUB, { params: { subscriberId } });
    assert.equal(r.json.subscriberId, subscriberId);
    assert.equal(r.json.stream.name, name);
    assert.equal((await call('GET', SUB, { params: { subscriberId: randomUUID() } })).status, 404);
    assert.equal((await call('GET', SUB, { params: { subscriberId: 'nope' } })).status, 400);
    r = await call('PUT', SUB, { params: { subscriberId }, json: { lastAccessedFromEventId: first.position } });
    assert.equal(r.json.events, 2);
    await waitFor(() => got.length === 2, 5000, 'the replayed events');
    assert.equal((await call('PUT', SUB, { params: { subscriberId }, json: { lastAccessedFromEventId: -2 } })).status, 400);
    assert.equal((await call('PUT', SUB, { params: { subscriberId: randomUUID() }, json: {} })).status, 404);
    assert.equal((await call('DELETE', SUB, { params: { subscriberId } })).status, 405);

    const P = `${A}/subscriptionprocessor`;
    r = await call('POST', P, { json: { stop: true } });
    assert.equal(r.json.started, false);
    r = await call('POST', P, { json: { start: true } });
    assert.equal(r.json.started, true);
    assert.equal((await call('POST', P, { body: 'stop', headers: { 'content-type': 'application/json' } })).status, 400);
    assert.equal((await call('GET', P)).status, 405);
  });
  await c.stop();

  const targetModel = (await call('POST', `${A}/streams/search`, { json: { name: target } })).json.find((m) => m.name === target);
  assert.equal((await call('DELETE', SG, { params: { stream: targetModel.id } })).status, 200);
  assert.equal((await call('DELETE', SG, { params: { stream: targetModel.id } })).status, 404);
  assert.equal((await call('DELETE', SG, { params: { stream: 'first' } })).status, 400);
});

test('auth run: without a token, 401 where the document asks for one, 200 where it does not', { skip: !TEST_AUTH_SECRET && 'only with auth on (HS_TEST_AUTH_SECRET)' }, async () => {
  const params = { stream: uniqueStream('oa-anon'), text: 'x', streamId: 1, eventId: randomUUID(), subscriberId: randomUUID() };
  for (const { path: p, method, op, key } of operations()) {
    const opts = { params, token: false };
    if (op.requestBody) opts.json = {};
    const r = await call(method.toUpperCase(), p, opts);
    assert.equal(r.status, needsToken(op) ? 401 : 200, `${key} without a token: ${r.status} ${r.text.slice(0, 200)}`);
  }
  // the SSE variant too
  const r = await call('GET', '/api/streams/{stream}/events', { params, token: false, headers: { accept: 'text/event-stream' } });
  assert.equal(r.status, 401);
});

test('every path and method of the document was called, succeeding and failing', () => {
  const problems = [];
  for (const { key, path: p, method, op } of operations()) {
    const st = [...(seen.get(key) ?? [])];
    if (!st.length) {
      problems.push(`${key}: never called`);
      continue;
    }
    if (!st.some((s) => s >= 200 && s < 300)) problems.push(`${key}: never succeeded (${st.join(', ')})`);
    const lists4xx = Object.keys(op.responses).some((s) => s === '400' || s === '404');
    if (lists4xx && !st.some((s) => s >= 400 && s < 500 && s !== 401)) problems.push(`${key}: no failing call (400, 404, ...)`);
    // a success with several content types (JSON and SSE): each one seen
    for (const s of Object.keys(op.responses).filter((x) => /^2/.test(x))) {
      const types = Object.keys(response(`#/paths/${esc(p)}/${method}/responses/${s}`).r.content ?? {});
      const got = seenTypes.get(`${key} ${s}`) ?? new Set();
      for (const t of types) if (st.includes(Number(s)) && !got.has(t)) problems.push(`${key}: ${s} ${t} never seen`);
    }
    if (TEST_AUTH_SECRET && !anonymous.has(key)) problems.push(`${key}: never called without a token`);
  }
  for (const p of Object.keys(doc.paths)) if (!refused.has(p)) problems.push(`${p}: no call with a method it does not serve (405)`);
  assert.deepEqual(problems, [], `the document and the calls disagree:\n  ${problems.join('\n  ')}`);
});
