"""ASGI entry point (uvicorn chatproject.asgi:application).

uvicorn does not run Django's system checks, so the ones that must stop a misconfigured server
(an unusable encryption key ring) run here, before the first request is accepted.
"""

import gc
import logging
import os

import django
from django.conf import settings
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.core.handlers.asgi import ASGIHandler
from django.urls import get_resolver

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatproject.settings")

django.setup(set_prefix=False)  # what get_asgi_application() does, before building our handler

from chatproject.body_limit import limit_request_body  # noqa: E402  (needs settings configured)
from chatproject.lifespan import with_lifespan  # noqa: E402
from chatproject.log_filters import DropTruncatedStreamTracebacks  # noqa: E402
from core.django_internals import ChatASGIHandler  # noqa: E402
from profiles.checks import raise_on_key_ring_errors, warn_on_development_key  # noqa: E402  (needs apps loaded)
from upstream.stream import closing_abandoned_streams  # noqa: E402

raise_on_key_ring_errors()
warn_on_development_key()  # once per worker process, at start-up rather than at the first key saved
# Load every view module (the OpenAI SDK among their imports) now, not on the first request.
_ = get_resolver().url_patterns
django_application: ASGIHandler = ChatASGIHandler()
logging.getLogger("uvicorn.error").addFilter(DropTruncatedStreamTracebacks())
# uvicorn serves no static files; a reverse proxy in front may serve /static/ instead (SERVE_STATIC=false).
if settings.SERVE_STATIC:
    django_application = ASGIStaticFilesHandler(django_application)
application = with_lifespan(limit_request_body(closing_abandoned_streams(django_application)))

# What is loaded by now lives as long as the process: Django, the apps, the OpenAI SDK (~145,000
# objects). Left to the garbage collector, every full collection walks all of them again, ~70 ms
# during which no stream moves; frozen, a full collection sees only what requests left behind.
gc.collect()
gc.freeze()
