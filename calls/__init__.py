"""One outbound HTTP call, and nothing else: no models, no database.

- `calls.masking`     what may be shown of headers (secrets masked);
- `calls.templating`  the `{{ … }}` variables of a URL, header or body;
- `calls.signing`     signatures a receiver can verify;
- `calls.spec`        CallSpec (what to send) and Outcome (what happened);
- `calls.guard`       the SSRF guard: resolve once, refuse non-public addresses;
- `calls.client`      send: the guarded aiohttp client with a total deadline and a cap;
- `calls.timing`      the phases of a call (lookup, connect, TLS, first byte);
- `calls.judge`       the verdict on a response (status ranges, must-contain).

`runs` imports this package; it never imports `runs` or `endpoints`.
"""
