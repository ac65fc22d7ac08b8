"""pipeline.config: the proto, templates, --set overrides, checks and parse errors."""
