"""Prometheus metrics of `odrun serve` (one registry per app, so tests can run several apps)."""

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics(object):
    def __init__(self):
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
        self.registry = CollectorRegistry()
        self.requests = Counter("odrun_requests", "HTTP requests", ["route", "code"], registry=self.registry)
        self.latency = Histogram("odrun_request_seconds", "request latency", ["route"], buckets=LATENCY_BUCKETS,
                                 registry=self.registry)
        self.batch = Histogram("odrun_batch_size", "images per model call", buckets=BATCH_BUCKETS,
                               registry=self.registry)
        self.inference = Histogram("odrun_inference_seconds", "model call time", buckets=LATENCY_BUCKETS,
                                   registry=self.registry)
        self.queue = Gauge("odrun_queue_depth", "requests waiting for the model", registry=self.registry)
        self.rejected = Counter("odrun_rejected", "requests refused with 503 (queue full)", registry=self.registry)
        self.ready = Gauge("odrun_ready", "1 when the model is loaded and warmed up", registry=self.registry)

    def text(self):
        from prometheus_client import generate_latest
        return generate_latest(self.registry)
