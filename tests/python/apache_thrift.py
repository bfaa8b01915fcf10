"""Apache Thrift's Python structs for thrift/*.thrift, made at run time: no
generated code is committed.

Apache's compiler (`thrift --gen py:dynamic`) emits, per struct, a subclass of
`thrift.protocol.TBase.TBase` holding a `thrift_spec` table; TBase's
`read`/`write` then hand that table to Apache's protocol code (the generic
`readStruct`/`writeStruct`, or the `fastbinary` C extension), which does all
the encoding. This module builds the same classes and tables from the IDL as
thriftpy2 parses it, so every byte is still written and read by the Apache
`thrift` package, independently of thriftpy2's encoder and of ours.

    ns = load()            # ns.data.DataRecord, ns.tensor.GeneralTensor, ...
    serialize(ns.prediction_service.BatchPredictionResponse(predictions=[...]),
              TBinaryProtocolFactory())
"""

from __future__ import annotations

import types
from pathlib import Path

import thriftpy2
from thrift.protocol.TBase import TBase
from thrift.TRecursive import fix_spec
from thrift.Thrift import TType

IDL = Path(__file__).resolve().parents[2] / "thrift"

# thriftpy2's pseudo type codes for strings: 11 (string, UTF-8), 18 (binary).
_TP2_STRING, _TP2_BINARY = 11, 18


def _make_class(name, fields):
    slots = tuple(fields)

    def __init__(self, **kwargs):
        for f in slots:
            setattr(self, f, kwargs.pop(f, None))
        if kwargs:
            raise TypeError(f"{name} has no field {sorted(kwargs)}")

    return type(name, (TBase,), {"__slots__": slots, "__init__": __init__, "thrift_spec": None,
                                 "__hash__": None})


def _convert(tp2_type, args, classes):
    """(Apache ttype, Apache type args) of a thriftpy2 type code and args."""
    if tp2_type == _TP2_STRING:
        return TType.STRING, "UTF8"
    if tp2_type == _TP2_BINARY:
        return TType.STRING, "BINARY"
    if tp2_type == TType.STRUCT:
        return TType.STRUCT, [classes[args], None]
    if tp2_type in (TType.LIST, TType.SET):
        et, ea = _convert(*_split(args), classes)
        return tp2_type, (et, ea, False)
    if tp2_type == TType.MAP:
        kt, ka = _convert(*_split(args[0]), classes)
        vt, va = _convert(*_split(args[1]), classes)
        return TType.MAP, (kt, ka, vt, va, False)
    return tp2_type, None  # numbers, bool, enums (i32)


def _split(spec):
    """A thriftpy2 element spec: a type code, or (type code, args)."""
    return (spec, None) if isinstance(spec, int) else (spec[0], spec[1])


def load(idl_dir: Path = IDL, main: str = "prediction_service.thrift") -> types.SimpleNamespace:
    """A namespace per IDL file (data, tensor, prediction_service), each with
    Apache TBase struct classes and enum classes of the same names."""
    module = thriftpy2.load(str(idl_dir / main), module_name="apache_" + main.replace(".", "_"),
                            include_dirs=[str(idl_dir)])
    modules = {}

    def collect(m):
        modules[m.__name__.replace("_thrift", "").replace("apache_", "")] = m
        for inc in m.__thrift_meta__["includes"]:
            collect(inc)

    collect(module)
    classes = {}
    out = types.SimpleNamespace()
    for short, m in modules.items():
        ns = types.SimpleNamespace()
        for struct in m.__thrift_meta__["structs"] + m.__thrift_meta__.get("unions", []):
            names = [spec[1] for _, spec in sorted(struct.thrift_spec.items())]
            classes[struct] = _make_class(struct.__name__, names)
            setattr(ns, struct.__name__, classes[struct])
        for enum in m.__thrift_meta__["enums"]:
            setattr(ns, enum.__name__, enum)  # names -> ints, as Apache's enum classes
        setattr(out, short.split(".")[-1], ns)
    for struct, cls in classes.items():
        spec = [None] * (max(struct.thrift_spec) + 1)
        for fid, entry in struct.thrift_spec.items():
            tp2_type, name = entry[0], entry[1]
            args = entry[2] if len(entry) == 4 else None
            ttype, targs = _convert(tp2_type, args, classes)
            spec[fid] = (fid, ttype, name, targs, None)
        cls.thrift_spec = tuple(spec)
    # As generated code ends: Apache's own wiring of struct references.
    fix_spec(list(classes.values()))
    return out
