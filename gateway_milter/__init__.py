"""Bulwark gateway milter: the inline part of the mail security gateway.

Only ``gateway_milter.front`` imports pymilter and only ``gateway_milter.adapters`` imports
Django; everything else (layers, pipeline, Sieve engine, MIME view) is plain Python.
"""

__version__ = "0.1.0"

from gateway_milter import compiled as _compiled

_compiled.install()  # the content path's modules compiled by mypyc, when built from these sources
