// Round trip through weft with a real OpenTelemetry JS SDK exporter.
//
// Usage: node roundtrip.js MODE BASE_URL INGEST_URL, MODE one of otlp-json, otlp-proto, otlp-grpc
// (INGEST_URL http://host:port of the gRPC listener), zipkin, and the OTLP ones with -gzip
//
// Creates one trace (nested SERVER -> INTERNAL -> CLIENT/PRODUCER/CONSUMER spans, every
// attribute type the JS API allows, events with attributes, a link to another trace, an error
// status), exports it with the chosen exporter to INGEST_URL, keeps an in-memory copy of what
// the SDK produced, then reads the trace back from weft at BASE_URL through every trace API
// (Jaeger v1, Jaeger api_v3, Zipkin v2) and compares each field with what the SDK holds, as
// each API models it. Prints one line per failed check and exits 1 when any check failed.
'use strict';
const { NodeTracerProvider } = require('@opentelemetry/sdk-trace-node');
const { SimpleSpanProcessor, InMemorySpanExporter } = require('@opentelemetry/sdk-trace-base');
const { resourceFromAttributes } = require('@opentelemetry/resources');
const api = require('@opentelemetry/api');

const [mode, base, ingestUrl] = process.argv.slice(2);
if (!mode || !base || !ingestUrl) {
  console.error('usage: node roundtrip.js MODE BASE_URL INGEST_URL');
  process.exit(2);
}
const gzip = mode.endsWith('-gzip');
const kind = gzip ? mode.slice(0, -5) : mode;
const viaZipkin = kind === 'zipkin';
const service = `otel-js-${mode}`;
const backend = `${service}-backend`; // a second service, called by the first one

function makeExporter() {
  const compression = gzip ? 'gzip' : 'none';
  if (kind === 'otlp-json') {
    const { OTLPTraceExporter } = require('@opentelemetry/exporter-trace-otlp-http');
    return new OTLPTraceExporter({ url: ingestUrl, compression });
  }
  if (kind === 'otlp-proto') {
    const { OTLPTraceExporter } = require('@opentelemetry/exporter-trace-otlp-proto');
    return new OTLPTraceExporter({ url: ingestUrl, compression });
  }
  if (kind === 'otlp-grpc') {
    const { OTLPTraceExporter } = require('@opentelemetry/exporter-trace-otlp-grpc');
    return new OTLPTraceExporter({ url: ingestUrl, compression });
  }
  if (kind === 'zipkin') {
    const { ZipkinExporter } = require('@opentelemetry/exporter-zipkin');
    return new ZipkinExporter({ url: ingestUrl });
  }
  throw new Error(`unknown mode ${mode}`);
}

// ---- produce the trace ---------------------------------------------------------------------

const resourceAttrs = {
  'service.name': service,
  'service.version': '2.4.1',
  'host.name': 'roundtrip-host',
  'deployment.environment': 'test',
};
const backendAttrs = { 'service.name': backend, 'host.name': 'backend-host' };
const resources = { [service]: resourceAttrs, [backend]: backendAttrs };
const memory = new InMemorySpanExporter();
let exportResult = null;
// The exporter under test, wrapped to remember a failed export.
function exporting() {
  const exporter = makeExporter();
  return {
    export(spans, cb) {
      exporter.export(spans, (r) => {
        if (r.code !== 0) exportResult = r;
        cb(r);
      });
    },
    shutdown: () => exporter.shutdown(),
    forceFlush: () => (exporter.forceFlush ? exporter.forceFlush() : Promise.resolve()),
  };
}
const provider = new NodeTracerProvider({
  resource: resourceFromAttributes(resourceAttrs),
  spanProcessors: [new SimpleSpanProcessor(memory), new SimpleSpanProcessor(exporting())],
});
provider.register();
const backendProvider = new NodeTracerProvider({
  resource: resourceFromAttributes(backendAttrs),
  spanProcessors: [new SimpleSpanProcessor(memory), new SimpleSpanProcessor(exporting())],
});
const tracer = api.trace.getTracer('weft-roundtrip', '3.2.1');
const backendTracer = backendProvider.getTracer('weft-roundtrip', '3.2.1');

// A span of another trace, for the link (only its context is used).
const other = tracer.startSpan('other-trace-root', { root: true });
other.end();
const linkCtx = other.spanContext();

tracer.startActiveSpan('GET /orders/{id}', {
  kind: api.SpanKind.SERVER,
  attributes: {
    'http.request.method': 'GET',
    'http.response.status_code': 503,
    'url.path': '/orders/42',
    'str.empty': '',
    'str.unicode': 'grüße ✓ 日本',
    'int.neg': -17,
    'int.max.safe': 9007199254740991,
    'double.pi': 3.14159,
    'double.neg': -0.5,
    'bool.true': true,
    'bool.false': false,
    'arr.str': ['a', 'b,c', ''],
    'arr.int': [1, 2, 3],
    'arr.double': [1.5, -2.25],
    'arr.bool': [true, false],
  },
}, (root) => {
  root.addEvent('request.received', { 'bytes': 512, 'peer': '10.0.0.7' });
  tracer.startActiveSpan('load order', { kind: api.SpanKind.INTERNAL, attributes: { 'order.id': 42 } }, (mid) => {
    mid.addEvent('cache-miss');
    mid.addEvent('retrying', { 'attempt': 2, 'backoff.ms': 12.5, 'final': false });
    const db = tracer.startSpan('SELECT orders', {
      kind: api.SpanKind.CLIENT,
      attributes: { 'db.system': 'sqlite', 'server.address': 'db.local', 'server.port': 5432 },
      links: [{ context: linkCtx, attributes: { 'link.reason': 'batch', 'link.n': 7 } }],
    });
    // the called service's side of that call, in the other service
    const srv = backendTracer.startSpan('query', { kind: api.SpanKind.SERVER, attributes: { 'rows': 0 } },
      api.trace.setSpan(api.context.active(), db));
    srv.end();
    db.setStatus({ code: api.SpanStatusCode.ERROR, message: 'deadline exceeded' });
    db.end();
    const prod = tracer.startSpan('orders publish', { kind: api.SpanKind.PRODUCER, attributes: { 'messaging.system': 'kafka' } });
    prod.end();
    const cons = tracer.startSpan('orders process', { kind: api.SpanKind.CONSUMER, attributes: { 'messaging.system': 'kafka' } });
    cons.setStatus({ code: api.SpanStatusCode.OK });
    cons.end();
    mid.end();
  });
  root.setStatus({ code: api.SpanStatusCode.ERROR, message: 'upstream failed' });
  root.end();
});

// ---- checks ----------------------------------------------------------------------------------

let failures = 0;
let checks = 0;
function fail(where, msg) {
  failures++;
  console.log(`FAIL [${mode}] ${where}: ${msg}`);
}
function eq(where, got, want) {
  checks++;
  const g = JSON.stringify(got);
  const w = JSON.stringify(want);
  if (g !== w) fail(where, `got ${g}, want ${w}`);
}
function ok(where, cond, msg) {
  checks++;
  if (!cond) fail(where, msg);
}

function hrNs(t) { return BigInt(t[0]) * 1000000000n + BigInt(t[1]); }
// Jaeger's OTLP translator truncates ns to µs; the Zipkin exporter rounds its µs values.
function usTrunc(t) { return Number(hrNs(t) / 1000n); }
function usRound(t) { return Math.round(t[0] * 1e6 + t[1] / 1e3); }
function durRound(s) { return Math.round(s.duration[0] * 1e6 + s.duration[1] / 1e3); }

const KIND = ['INTERNAL', 'SERVER', 'CLIENT', 'PRODUCER', 'CONSUMER'];
const STATUS = ['UNSET', 'OK', 'ERROR'];

// What each span looks like once it went through the exporter under test, as plain data:
// { id, parent, name, kind, startUs, durUs, startNs, endNs, attrs: [[k, typed value]], events,
//   links, status: {code, message} } with values typed as OTLP carries them, or, through
// Zipkin, as the strings the Zipkin exporter made of them.
function zipkinString(v) {
  return Array.isArray(v) ? v.join(',') : String(v);
}
function expected(s) {
  const e = {
    traceId: s.spanContext().traceId,
    id: s.spanContext().spanId,
    parent: s.parentSpanContext ? s.parentSpanContext.spanId : undefined,
    name: s.name,
    service: s.resource.attributes['service.name'],
    kind: KIND[s.kind],
    attrs: Object.entries(s.attributes),
    events: s.events.map((ev) => ({ name: ev.name, time: ev.time, attrs: Object.entries(ev.attributes || {}) })),
    links: s.links.map((l) => ({ traceId: l.context.traceId, spanId: l.context.spanId, attrs: Object.entries(l.attributes || {}) })),
    status: { code: STATUS[s.status.code], message: s.status.message || '' },
    startNs: hrNs(s.startTime),
    endNs: hrNs(s.endTime),
  };
  if (viaZipkin) {
    e.startUs = usRound(s.startTime);
    e.durUs = durRound(s);
  } else {
    e.startUs = usTrunc(s.startTime);
    e.durUs = Number(e.endNs / 1000n) - e.startUs;
  }
  return e;
}

// Every operation of the first service: its spans and the root of the linked trace.
function opNames(spans) {
  return [...new Set(spans.filter((s) => s.service === service).map((s) => s.name).concat(['other-trace-root']))].sort();
}

async function getJson(path, want = 200) {
  const r = await fetch(base + path);
  const text = await r.text();
  if (r.status !== want) throw new Error(`GET ${path}: status ${r.status}: ${text.slice(0, 300)}`);
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new Error(`GET ${path}: not JSON: ${text.slice(0, 300)}`);
  }
}

// The Jaeger model of an attribute value (OTLP translator): typed tag, arrays as JSON text.
function jaegerTag(key, v) {
  if (viaZipkin) return { key, type: 'string', value: zipkinString(v) };
  if (typeof v === 'string') return { key, type: 'string', value: v };
  if (typeof v === 'boolean') return { key, type: 'bool', value: v };
  if (typeof v === 'number') return Number.isInteger(v) ? { key, type: 'int64', value: v } : { key, type: 'float64', value: v };
  if (Array.isArray(v)) return { key, type: 'string', value: JSON.stringify(v) };
  throw new Error(`attribute ${key}: unexpected ${typeof v}`);
}

function findTag(tags, key) {
  return (tags || []).find((t) => t.key === key);
}

function checkJaegerSpan(where, got, e, processes) {
  eq(`${where} traceID`, got.traceID, e.traceId);
  eq(`${where} operationName`, got.operationName, e.name);
  eq(`${where} startTime`, got.startTime, e.startUs);
  eq(`${where} duration`, got.duration, e.durUs);
  ok(`${where} flags`, typeof got.flags === 'number', 'flags is a number');
  // references: the parent as CHILD_OF first; OTLP links as FOLLOWS_FROM
  const refs = got.references || [];
  const want = [];
  if (e.parent) want.push({ refType: 'CHILD_OF', traceID: e.traceId, spanID: e.parent });
  if (!viaZipkin) for (const l of e.links) want.push({ refType: 'FOLLOWS_FROM', traceID: l.traceId, spanID: l.spanId });
  eq(`${where} references`, refs.map((r) => ({ refType: r.refType, traceID: r.traceID, spanID: r.spanID })), want);
  for (const [k, v] of e.attrs) eq(`${where} tag ${k}`, findTag(got.tags, k), jaegerTag(k, v));
  // derived tags
  if (e.kind !== 'INTERNAL' || !viaZipkin) {
    const sk = findTag(got.tags, 'span.kind');
    if (e.kind === 'INTERNAL') {
      ok(`${where} span.kind`, sk === undefined || sk.value === 'internal', `unexpected span.kind ${JSON.stringify(sk)}`);
    } else {
      eq(`${where} span.kind`, sk && sk.value, e.kind.toLowerCase());
    }
  }
  if (e.status.code === 'ERROR') {
    const er = findTag(got.tags, 'error');
    ok(`${where} error tag`, er !== undefined && (er.value === true || er.value === 'true'), `error tag ${JSON.stringify(er)}`);
    eq(`${where} otel.status_code`, findTag(got.tags, 'otel.status_code') && findTag(got.tags, 'otel.status_code').value, 'ERROR');
    if (!viaZipkin) eq(`${where} otel.status_description`, findTag(got.tags, 'otel.status_description') && findTag(got.tags, 'otel.status_description').value, e.status.message);
  } else {
    ok(`${where} no error tag`, findTag(got.tags, 'error') === undefined, `error tag on a ${e.status.code} span`);
  }
  if (!viaZipkin) {
    eq(`${where} otel.scope.name`, findTag(got.tags, 'otel.scope.name') && findTag(got.tags, 'otel.scope.name').value, 'weft-roundtrip');
    eq(`${where} otel.scope.version`, findTag(got.tags, 'otel.scope.version') && findTag(got.tags, 'otel.scope.version').value, '3.2.1');
  }
  // events as logs: timestamp µs, an "event" field with the name, then the attributes
  const logs = got.logs || [];
  eq(`${where} logs count`, logs.length, e.events.length);
  e.events.forEach((ev, i) => {
    const lg = logs[i] || { fields: [] };
    eq(`${where} log[${i}] timestamp`, lg.timestamp, viaZipkin ? usRound(ev.time) : usTrunc(ev.time));
    eq(`${where} log[${i}] event`, findTag(lg.fields, 'event') && findTag(lg.fields, 'event').value, ev.name);
    if (!viaZipkin) for (const [k, v] of ev.attrs) eq(`${where} log[${i}] field ${k}`, findTag(lg.fields, k), jaegerTag(k, v));
  });
  // process: service name and the resource attributes as tags
  const p = processes[got.processID];
  ok(`${where} process`, p !== undefined, `processID ${got.processID} not in processes`);
  if (p) {
    eq(`${where} process serviceName`, p.serviceName, e.service);
    for (const [k, v] of Object.entries(resources[e.service])) {
      if (k === 'service.name') continue;
      if (viaZipkin) {
        // The Zipkin exporter puts the resource into every span's tags; nothing is lost.
        const t = findTag(p.tags, k) || findTag(got.tags, k);
        eq(`${where} resource ${k}`, t && t.value, v);
      } else {
        eq(`${where} process tag ${k}`, findTag(p.tags, k), jaegerTag(k, v));
      }
    }
  }
}

async function checkJaeger(spans, traceId) {
  const t = await getJson(`/api/traces/${traceId}`);
  eq('jaeger envelope keys', Object.keys(t).sort(), ['data', 'errors', 'limit', 'offset', 'total']);
  eq('jaeger data length', t.data.length, 1);
  const tr = t.data[0];
  eq('jaeger traceID', tr.traceID, traceId);
  eq('jaeger span count', tr.spans.length, spans.length);
  const pids = Object.keys(tr.processes);
  ok('jaeger processes', pids.every((p) => /^p[0-9]+$/.test(p)), `process ids ${pids}`);
  eq('jaeger process services', Object.values(tr.processes).map((p) => p.serviceName).sort(), [service, backend].sort());
  for (const e of spans) {
    const got = tr.spans.find((s) => s.spanID === e.id);
    if (!got) {
      fail(`jaeger span ${e.name}`, 'missing');
      continue;
    }
    checkJaegerSpan(`jaeger span ${e.name}`, got, e, tr.processes);
  }

  const svcs = await getJson('/api/services');
  ok('jaeger services', svcs.data.includes(service), `${service} not in ${JSON.stringify(svcs.data)}`);
  const ops = await getJson(`/api/services/${encodeURIComponent(service)}/operations`);
  eq('jaeger operations', [...ops.data].sort(), opNames(spans));
  const sops = await getJson(`/api/operations?service=${encodeURIComponent(service)}&spanKind=server`);
  eq('jaeger operations spanKind=server', sops.data.map((o) => [o.name, o.spanKind]), [['GET /orders/{id}', 'server']]);

  // searches: by service, by operation, by tags (a span attribute, a derived tag, a resource
  // attribute), by duration, each must find the trace; a tag nobody has must not.
  const q = (params) => getJson(`/api/traces?service=${encodeURIComponent(service)}&lookback=1h&limit=20&${params}`);
  const found = (r) => r.data.some((x) => x.traceID === traceId);
  const tagQ = (o) => `tags=${encodeURIComponent(JSON.stringify(o))}`;
  ok('jaeger search service', found(await q('')), 'trace not found by service');
  ok('jaeger search operation', found(await q(`operation=${encodeURIComponent('SELECT orders')}`)), 'not found by operation');
  ok('jaeger search tag db.system', found(await q(tagQ({ 'db.system': 'sqlite' }))), 'not found by db.system=sqlite');
  ok('jaeger search tag error=true', found(await q(tagQ({ error: 'true' }))), 'not found by error=true');
  ok('jaeger search resource tag', found(await q(tagQ({ 'host.name': 'roundtrip-host' }))), 'not found by host.name');
  ok('jaeger search minDuration', found(await q('minDuration=1us')), 'not found by minDuration=1us');
  ok('jaeger search miss', !found(await q(tagQ({ 'db.system': 'postgres' }))), 'found by db.system=postgres');
  // dependencies: the CLIENT span of the first service has a SERVER child in the backend
  const deps = await getJson(`/api/dependencies?endTs=${Date.now() + 60000}&lookback=3600000`);
  eq('jaeger dependencies', deps.data.filter((d) => d.parent === service || d.child === backend)
    .map((d) => [d.parent, d.child, d.callCount]), [[service, backend, 1]]);
  const missing = await getJson('/api/traces/0000000000000000000000000000abcd', 404);
  ok('jaeger unknown trace', Array.isArray(missing.errors) && missing.errors.length === 1 && missing.errors[0].code === 404,
    `404 body ${JSON.stringify(missing)}`);
}

// OTLP JSON AnyValue as api_v3 prints it (ints as strings).
function anyValue(v) {
  if (viaZipkin) return { stringValue: zipkinString(v) };
  if (typeof v === 'string') return { stringValue: v };
  if (typeof v === 'boolean') return { boolValue: v };
  if (typeof v === 'number') return Number.isInteger(v) ? { intValue: String(v) } : { doubleValue: v };
  if (Array.isArray(v)) return { arrayValue: { values: v.map(anyValue) } };
  throw new Error('unexpected value');
}
function kvMap(list) {
  const m = {};
  for (const kv of list || []) m[kv.key] = kv.value;
  return m;
}
function numStr(v) { return typeof v === 'number' ? String(v) : v; }

async function checkV3(spans, traceId) {
  const t = await getJson(`/api/v3/traces/${traceId}`);
  const rs = t.result && t.result.resourceSpans;
  ok('v3 resourceSpans', Array.isArray(rs) && rs.length >= 1, `body ${JSON.stringify(t).slice(0, 200)}`);
  if (!Array.isArray(rs)) return;
  const all = [];
  eq('v3 resource services', rs.map((r) => JSON.stringify(kvMap(r.resource && r.resource.attributes)['service.name'])).sort(),
    [backend, service].sort().map((n) => JSON.stringify({ stringValue: n })));
  for (const r of rs) {
    const ra = kvMap(r.resource && r.resource.attributes);
    const svc = ra['service.name'] && ra['service.name'].stringValue;
    if (!viaZipkin && resources[svc]) {
      for (const [k, v] of Object.entries(resources[svc])) eq(`v3 resource ${k}`, ra[k], anyValue(v));
    }
    for (const ss of r.scopeSpans || []) {
      if (!viaZipkin) eq('v3 scope', [ss.scope && ss.scope.name, ss.scope && ss.scope.version], ['weft-roundtrip', '3.2.1']);
      for (const s of ss.spans || []) all.push(s);
    }
  }
  eq('v3 span count', all.length, spans.length);
  const KINDNUM = { INTERNAL: 1, SERVER: 2, CLIENT: 3, PRODUCER: 4, CONSUMER: 5 };
  for (const e of spans) {
    const w = `v3 span ${e.name}`;
    const s = all.find((x) => x.spanId === e.id);
    if (!s) {
      fail(w, 'missing');
      continue;
    }
    eq(`${w} traceId`, s.traceId, traceId);
    eq(`${w} parentSpanId`, s.parentSpanId || undefined, e.parent);
    eq(`${w} name`, s.name, e.name);
    if (!viaZipkin || e.kind !== 'INTERNAL') eq(`${w} kind`, s.kind, KINDNUM[e.kind]);
    if (viaZipkin) {
      eq(`${w} startTimeUnixNano`, numStr(s.startTimeUnixNano), String(e.startUs * 1000));
      eq(`${w} endTimeUnixNano`, numStr(s.endTimeUnixNano), String((e.startUs + e.durUs) * 1000));
    } else {
      eq(`${w} startTimeUnixNano`, numStr(s.startTimeUnixNano), e.startNs.toString());
      eq(`${w} endTimeUnixNano`, numStr(s.endTimeUnixNano), e.endNs.toString());
    }
    const a = kvMap(s.attributes);
    for (const [k, v] of e.attrs) eq(`${w} attribute ${k}`, a[k], anyValue(v));
    if (!viaZipkin) {
      eq(`${w} events`, (s.events || []).map((ev) => [ev.name, numStr(ev.timeUnixNano), kvMap(ev.attributes)]),
        e.events.map((ev) => [ev.name, hrNs(ev.time).toString(), Object.fromEntries(ev.attrs.map(([k, v]) => [k, anyValue(v)]))]));
      eq(`${w} links`, (s.links || []).map((l) => [l.traceId, l.spanId, kvMap(l.attributes)]),
        e.links.map((l) => [l.traceId, l.spanId, Object.fromEntries(l.attrs.map(([k, v]) => [k, anyValue(v)]))]));
      const st = s.status || {};
      const code = { UNSET: undefined, OK: 1, ERROR: 2 }[e.status.code];
      // proto3 JSON may print or omit the default (0, UNSET)
      eq(`${w} status.code`, st.code === 0 ? undefined : st.code, code);
      eq(`${w} status.message`, st.message || '', e.status.message);
    } else {
      eq(`${w} events`, (s.events || []).map((ev) => [ev.name, numStr(ev.timeUnixNano)]),
        e.events.map((ev) => [ev.name, String(usRound(ev.time) * 1000)]));
    }
  }
  const svcs = await getJson('/api/v3/services');
  ok('v3 services', (svcs.services || []).includes(service), `${service} not in ${JSON.stringify(svcs)}`);
  const ops = await getJson(`/api/v3/operations?service=${encodeURIComponent(service)}`);
  eq('v3 operations', (ops.operations || []).map((o) => o.name).sort(), opNames(spans));
  const found = await getJson(`/api/v3/traces?query.service_name=${encodeURIComponent(service)}` +
    `&query.start_time_min=${new Date(Date.now() - 3600e3).toISOString()}` +
    `&query.start_time_max=${new Date(Date.now() + 60e3).toISOString()}`);
  const ids = new Set();
  for (const r of (found.result && found.result.resourceSpans) || []) {
    for (const ss of r.scopeSpans || []) for (const s of ss.spans || []) ids.add(s.traceId);
  }
  ok('v3 search', ids.has(traceId), `trace not found by api_v3 search: ${[...ids]}`);
}

// The Zipkin v2 model: kind (none for INTERNAL), µs times, string tags, events as annotations,
// the status as otel.status_code + error tags (the Zipkin exporter's and Jaeger's mapping).
async function checkZipkin(spans, traceId) {
  const t = await getJson(`/api/v2/trace/${traceId}`);
  eq('zipkin span count', t.length, spans.length);
  for (const e of spans) {
    const w = `zipkin span ${e.name}`;
    const s = t.find((x) => x.id === e.id);
    if (!s) {
      fail(w, 'missing');
      continue;
    }
    eq(`${w} traceId`, s.traceId, traceId);
    eq(`${w} parentId`, s.parentId, e.parent);
    eq(`${w} name`, s.name, e.name.toLowerCase());
    eq(`${w} kind`, s.kind, e.kind === 'INTERNAL' ? undefined : e.kind);
    eq(`${w} timestamp`, s.timestamp, e.startUs);
    eq(`${w} duration`, s.duration, e.durUs);
    eq(`${w} localEndpoint.serviceName`, s.localEndpoint && s.localEndpoint.serviceName, e.service);
    const tags = s.tags || {};
    for (const [k, v] of e.attrs) {
      eq(`${w} tag ${k}`, tags[k], viaZipkin ? zipkinString(v) : (Array.isArray(v) ? JSON.stringify(v) : String(v)));
    }
    if (e.status.code === 'ERROR') {
      eq(`${w} tag otel.status_code`, tags['otel.status_code'], 'ERROR');
      eq(`${w} tag error`, tags.error, e.status.message);
    } else {
      ok(`${w} no error tag`, tags.error === undefined, `error tag ${tags.error}`);
    }
    eq(`${w} annotations`, (s.annotations || []).map((a) => [a.timestamp, a.value]),
      e.events.map((ev) => [viaZipkin ? usRound(ev.time) : usTrunc(ev.time), ev.name]));
  }
  const svcs = await getJson('/api/v2/services');
  ok('zipkin services', svcs.includes(service), `${service} not in ${JSON.stringify(svcs)}`);
  const names = await getJson(`/api/v2/spans?serviceName=${encodeURIComponent(service)}`);
  eq('zipkin span names', [...names].sort(), opNames(spans).map((n) => n.toLowerCase()).sort());
  const now = Date.now();
  const found = await getJson(`/api/v2/traces?serviceName=${encodeURIComponent(service)}&endTs=${now + 60000}&lookback=3600000&limit=10` +
    `&annotationQuery=${encodeURIComponent('db.system=sqlite')}`);
  ok('zipkin search annotationQuery', found.some((tr) => tr.length > 0 && tr[0].traceId === traceId), 'trace not found by db.system=sqlite');
  const deps = await getJson(`/api/v2/dependencies?endTs=${now + 60000}&lookback=3600000`);
  eq('zipkin dependencies', deps.filter((d) => d.parent === service || d.child === backend)
    .map((d) => [d.parent, d.child, d.callCount, d.errorCount || 0]), [[service, backend, 1, 1]]);
  // Zipkin answers an unknown trace 404 with a text body
  const r = await fetch(`${base}/api/v2/trace/0000000000000000000000000000abcd`);
  eq('zipkin unknown trace status', r.status, 404);
  ok('zipkin unknown trace body', (await r.text()).includes('not found'), 'no "not found" in the 404 body');
}

async function main() {
  await provider.forceFlush();
  await backendProvider.forceFlush();
  // the in-memory exporter forgets its spans at shutdown: take them first
  const produced = memory.getFinishedSpans().slice();
  await provider.shutdown();
  await backendProvider.shutdown();
  if (exportResult) {
    console.log(`FAIL [${mode}] export: ${exportResult.error || exportResult.code}`);
    process.exit(1);
  }
  const mine = produced.filter((s) => s.name !== 'other-trace-root');
  const traceId = mine[0].spanContext().traceId;
  const spans = mine.map(expected);
  ok('sdk trace', spans.length === 6 && spans.every((s) => s.traceId === traceId), 'SDK produced an unexpected trace');
  await checkJaeger(spans, traceId);
  await checkV3(spans, traceId);
  await checkZipkin(spans, traceId);
  console.log(`${mode}: ${checks} checks, ${failures} failed (trace ${traceId})`);
  process.exit(failures ? 1 : 0);
}
main().catch((err) => {
  console.log(`FAIL [${mode}] ${err.stack || err}`);
  process.exit(1);
});
