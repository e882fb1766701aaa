/*
 * col_otlp_grpc.h - OTLP over gRPC (port 4317, what most OpenTelemetry SDKs, the OpenTelemetry
 * Collector and Istio's OpenTelemetry tracer send by default): the TraceService and
 * MetricsService Export methods on col_grpc, answered by the same code as OTLP/HTTP's protobuf
 * (col_otlp_traces_serve, col_otlp_metrics_serve). LogsService is not served (UNIMPLEMENTED).
 *
 * Status codes: OK with the Export*ServiceResponse (partial_success for metrics when some data
 * points were refused); INVALID_ARGUMENT for a request OTLP/HTTP answers 400 (malformed, spans
 * the store refuses); RESOURCE_EXHAUSTED for one it answers 413 (too large), as grpc-go answers a
 * message above its limit; UNAVAILABLE where it answers 503 or 429 (the store is closed, busy or
 * over its memory budget: OTLP clients retry it); INTERNAL otherwise.
 */
#ifndef COL_OTLP_GRPC_H
#define COL_OTLP_GRPC_H

#include "col_grpc.h"
#include "col_writer.h"

#define COL_OTLP_GRPC_TRACES "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
#define COL_OTLP_GRPC_METRICS "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"

/* Route both Export methods of g to the write queue wr. 0 or WF_E_LIMIT. */
int col_otlp_grpc_register(col_grpc_t *g, col_writer_t *wr);

#endif
