"""The layer registry: layer id -> lazy import string ``module:Class``.

Adding a layer is one module, one line here and one doc page (docs/layers/<id>.md).
The order here is the default order of the system policy scripts.
"""

from __future__ import annotations

import importlib
import logging
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway_milter.layers.base import Layer

REGISTRY: dict[str, str] = {
    # connection and envelope
    "direction": "gateway_milter.layers.direction:DirectionLayer",
    "relay": "gateway_milter.layers.relay:RelayControlLayer",
    "lists": "gateway_milter.layers.lists:ListsLayer",
    "size": "gateway_milter.layers.size:MessageSizeLayer",
    "dnsbl": "gateway_milter.layers.dnsbl:DnsblLayer",
    "rdns": "gateway_milter.layers.rdns:ReverseDnsLayer",
    "spf": "gateway_milter.layers.spf:SpfLayer",
    "senderid": "gateway_milter.layers.spf:SenderIdLayer",
    "callback": "gateway_milter.layers.callback:CallbackLayer",
    "backscatter": "gateway_milter.layers.backscatter:BackscatterLayer",
    "greylist": "gateway_milter.layers.greylist:GreylistLayer",
    # content
    "mime": "gateway_milter.layers.mimecheck:MimeCheckLayer",
    "antivirus": "gateway_milter.layers.antivirus:AntivirusLayer",
    "attachments": "gateway_milter.layers.attachments:AttachmentLayer",
    "dkim": "gateway_milter.layers.dkim:DkimLayer",
    "arc": "gateway_milter.layers.arc:ArcLayer",
    "dmarc": "gateway_milter.layers.dmarc:DmarcLayer",
    "fromscreen": "gateway_milter.layers.fromscreen:FromScreenLayer",
    "vbr": "gateway_milter.layers.vbr:VbrLayer",
    "uribl": "gateway_milter.layers.uribl:UriblLayer",
    "rules": "gateway_milter.layers.rules:HeuristicRulesLayer",
    "bayes": "gateway_milter.layers.bayes:BayesLayer",
    "spamtrap": "gateway_milter.layers.spamtrap:SpamTrapLayer",
    "scoring": "gateway_milter.layers.scoring:ScoringLayer",
}

_lock = threading.Lock()
_instances: dict[str, Layer] = {}  # type: ignore[type-arg]


class UnknownLayer(KeyError):
    pass


_available: list[str] | None = None


def available() -> list[str]:
    """Layer ids whose module imports (a layer still being built is skipped); computed once
    per process, since layers ask it on the hot path."""
    global _available
    if _available is None:
        out = []
        for layer_id in REGISTRY:
            try:
                get(layer_id)
            except (ImportError, AttributeError) as e:
                # Loud: a layer missing from a build (e.g. libmagic absent) must not go unnoticed.
                logging.getLogger("bulwark.layers").error("layer %s is not available: %s", layer_id, e)
                continue
            out.append(layer_id)
        _available = out
    return list(_available)


def get(layer_id: str) -> Layer:  # type: ignore[type-arg]
    inst = _instances.get(layer_id)
    if inst is not None:
        return inst
    try:
        target = REGISTRY[layer_id]
    except KeyError:
        raise UnknownLayer(layer_id) from None
    module_name, _, cls_name = target.partition(":")
    cls = getattr(importlib.import_module(module_name), cls_name)
    with _lock:
        inst = _instances.setdefault(layer_id, cls())
    return inst
