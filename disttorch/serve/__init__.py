"""``disttorch serve``: a model server speaking the Open Inference Protocol (KServe v2).

The optional ``serve`` extra (``pip install 'disttorch[serve]'``: Starlette, Uvicorn, prometheus-client) is
imported only by :mod:`disttorch.serve.app`, :mod:`~disttorch.serve.metrics` and :mod:`~disttorch.serve.cli`;
:mod:`disttorch.serve.protocol` (the request codec) needs only NumPy. See docs/serving.md.

Modules: ``protocol`` (JSON and binary-tensor codec), ``model`` (build, load, describe, run), ``batching``
(replicas and dynamic batching), ``metrics`` (Prometheus), ``app`` (routes), ``cli`` (the command).
"""
