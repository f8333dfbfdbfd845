"""Model kinds: one module each (rfc, cnn, ...).  `make(name, n_classes, **options)` builds one."""
from __future__ import annotations

import importlib

KINDS = {"rfc": "edge_ser_train.kinds.rfc:RFC", "cnn": "edge_ser_train.kinds.cnn:CNN",
         "timnet": "edge_ser_train.kinds.timnet:TimNet", "fusion": "edge_ser_train.kinds.fusion:Fusion",
         "aae": "edge_ser_train.kinds.aae:AAE", "ensemble": "edge_ser_train.kinds.ensemble:Ensemble",
         "linear": "edge_ser_train.kinds.linear:Linear"}


def kind_class(name: str):
    if name not in KINDS:
        raise ValueError(f"unknown model kind {name!r} (known: {', '.join(KINDS)})")
    module, cls = KINDS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def make(name: str, n_classes: int, **options):
    return kind_class(name)(n_classes=n_classes, **options)
