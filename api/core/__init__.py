"""The app's shared floor: typed app keys, the database and its migrations, the error family, input
validation, middleware, security headers, logs, HTTP metrics, rate limits and caps, OpenAPI, health, and
the one time formatter. Nothing here imports a feature package (tests/test_layers.py checks it)."""
