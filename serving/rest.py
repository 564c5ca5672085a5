"""The HTTP server's app: TF Serving REST (``rest_tfs.py``), KServe v2 / Open Inference Protocol
(``rest_v2.py``) and ``/metrics``, behind the shared middleware (``rest_common.py``).

The protocol modules only translate: parse and validate the wire format into texts, call the data
plane, and render its result or error.
"""

from __future__ import annotations

from aiohttp import web

from .metrics import CONTENT_TYPE_LATEST
from .rest_common import HttpEndpoints
from .rest_tfs import TfsEndpoints
from .rest_v2 import V2Endpoints


class RestAdapter(HttpEndpoints):
    def app(self) -> web.Application:
        # aiohttp enforces client_max_size while reading; the middleware turns that into our 413.
        app = web.Application(client_max_size=self.limits.max_body_bytes, middlewares=[self._middleware])
        m = r"{name:[^/:]+}"
        v = r"{version:[^/:]+}"
        lbl = r"{label:[^/:]+}"
        r = app.router
        TfsEndpoints(self.dp).add_routes(r, m, v, lbl)
        V2Endpoints(self.dp).add_routes(r, m, v)
        r.add_get("/metrics", self.metrics)
        return app

    async def metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=self.dp.metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})
