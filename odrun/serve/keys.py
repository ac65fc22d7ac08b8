"""The app's keys (strings: aiohttp 3.8, the last line for Python 3.6, has no web.AppKey)."""
OPTIONS = "odrun.serve.options"   # app.Options: the flags, the export's metadata and class names
STATE = "odrun.serve.state"       # app.State: ready/error, the loaded runtime's name, the batcher
METRICS = "odrun.serve.metrics"   # metrics.Metrics
