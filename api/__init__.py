"""The worker's HTTP API: the routes are listed in api.routes, which adds them to the
Faust app. Above retention and sinks (it reads through them), below the entry points."""
