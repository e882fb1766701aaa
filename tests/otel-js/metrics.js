// Metrics through weft's OTLP/gRPC listener with the real OpenTelemetry JS SDK.
//
// Usage: node metrics.js MODE BASE_URL INGEST_URL, MODE otlp-grpc or otlp-grpc-gzip, INGEST_URL
// the http://host:port of the gRPC listener.
//
// Records a counter, an up-down counter, a gauge and a histogram (with attributes and a unit),
// exports them once with the SDK's OTLP gRPC metric exporter (cumulative temporality, as
// Prometheus needs), then reads every series back through weft's Prometheus API at BASE_URL
// and compares the values with what was recorded, named as the OpenTelemetry-to-Prometheus
// translation names them. Prints one line per failed check; exits 1 when any failed.
'use strict';
const { MeterProvider, PeriodicExportingMetricReader, AggregationTemporality } =
  require('@opentelemetry/sdk-metrics');
const { OTLPMetricExporter } = require('@opentelemetry/exporter-metrics-otlp-grpc');
const { resourceFromAttributes } = require('@opentelemetry/resources');

const [mode, base, ingestUrl] = process.argv.slice(2);
if (!mode || !base || !ingestUrl) {
  console.error('usage: node metrics.js MODE BASE_URL INGEST_URL');
  process.exit(2);
}
const job = `otel-js-metrics-${mode}`;
let failed = 0;
let checks = 0;
function check(what, ok, detail) {
  checks++;
  if (!ok) {
    failed++;
    console.log(`FAIL [${mode}] ${what}: ${detail}`);
  }
}

async function main() {
  const exporter = new OTLPMetricExporter({
    url: ingestUrl,
    compression: mode.endsWith('-gzip') ? 'gzip' : 'none',
    temporalityPreference: AggregationTemporality.CUMULATIVE,
  });
  let exportError = null;
  const reader = new PeriodicExportingMetricReader({
    exporter: {
      export(metrics, cb) {
        exporter.export(metrics, (r) => {
          if (r.code !== 0) exportError = r.error || r.code;
          cb(r);
        });
      },
      forceFlush: () => exporter.forceFlush(),
      shutdown: () => exporter.shutdown(),
      selectAggregationTemporality: (k) => exporter.selectAggregationTemporality(k),
    },
    exportIntervalMillis: 600000,
  });
  const provider = new MeterProvider({
    resource: resourceFromAttributes({
      'service.name': job, 'service.instance.id': 'js-1', 'host.name': 'metrics-host',
    }),
    readers: [reader],
  });
  const meter = provider.getMeter('weft-metrics', '1.0.0');
  const requests = meter.createCounter('shop.requests', { description: 'requests served' });
  requests.add(3, { route: '/a', ok: true });
  requests.add(4, { route: '/b', ok: false });
  const inflight = meter.createUpDownCounter('shop.inflight');
  inflight.add(5);
  inflight.add(-2);
  const temp = meter.createGauge('shop.temperature', { unit: 'Cel' });
  temp.record(21.5, { room: 'x' });
  const latency = meter.createHistogram('shop.latency', {
    unit: 'ms',
    advice: { explicitBucketBoundaries: [10, 100] },
  });
  for (const v of [5, 50, 500]) latency.record(v, { route: '/a' });
  await provider.forceFlush();
  await provider.shutdown();
  check('export', exportError === null, String(exportError));

  async function value(q) {
    const r = await fetch(`${base}/api/v1/query?query=${encodeURIComponent(q)}`);
    const j = await r.json();
    if (j.status !== 'success' || j.data.result.length !== 1) {
      return `no single series (${JSON.stringify(j).slice(0, 200)})`;
    }
    return j.data.result[0].value[1];
  }
  const want = [
    [`shop_requests_total{job="${job}",instance="js-1",route="/a",ok="true"}`, '3'],
    [`shop_requests_total{job="${job}",route="/b",ok="false"}`, '4'],
    [`shop_inflight{job="${job}"}`, '3'],
    [`shop_temperature_celsius{job="${job}",room="x"}`, '21.5'],
    [`shop_latency_milliseconds_bucket{job="${job}",route="/a",le="10"}`, '1'],
    [`shop_latency_milliseconds_bucket{job="${job}",route="/a",le="100"}`, '2'],
    [`shop_latency_milliseconds_bucket{job="${job}",route="/a",le="+Inf"}`, '3'],
    [`shop_latency_milliseconds_sum{job="${job}",route="/a"}`, '555'],
    [`shop_latency_milliseconds_count{job="${job}",route="/a"}`, '3'],
    [`target_info{job="${job}",instance="js-1",host_name="metrics-host"}`, '1'],
  ];
  for (const [q, v] of want) {
    const got = await value(q);
    check(q, got === v, `got ${got}, want ${v}`);
  }
  console.log(`${mode} metrics: ${checks} checks, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

main().catch((e) => {
  console.log(`FAIL [${mode}] ${e.stack || e}`);
  process.exit(1);
});
