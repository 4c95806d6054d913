"""External-data locations of an ONNX model, read with a minimal protobuf scanner (pure: bytes in).

The runtime image does not ship the ``onnx`` package (it is a dev dependency only), so the loader reads
the few fields it needs itself: every TensorProto reachable from the ModelProto (graph initializers,
sparse initializers, node attributes ``t``/``tensors``/``sparse_tensor(s)``, subgraphs ``g``/``graphs``,
functions' nodes, training-info graphs) and, in each, its ``external_data`` entries with key ``location``.
Field numbers are those of onnx.proto3; the tests check the scanner against models saved by ``onnx``.
"""

from __future__ import annotations

from collections.abc import Iterator

# message kinds
_MODEL, _GRAPH, _NODE, _ATTR, _TENSOR, _SPARSE, _FUNCTION, _TRAINING = range(8)

# (message kind, field number) -> message kind of the embedded message, for the fields that lead to tensors
_CHILDREN: dict[tuple[int, int], int] = {
    (_MODEL, 7): _GRAPH,  # graph
    (_MODEL, 20): _TRAINING,  # training_info
    (_MODEL, 25): _FUNCTION,  # functions
    (_TRAINING, 1): _GRAPH,  # initialization
    (_TRAINING, 2): _GRAPH,  # algorithm
    (_GRAPH, 1): _NODE,  # node
    (_GRAPH, 5): _TENSOR,  # initializer
    (_GRAPH, 15): _SPARSE,  # sparse_initializer
    (_FUNCTION, 7): _NODE,  # node
    (_NODE, 5): _ATTR,  # attribute
    (_ATTR, 5): _TENSOR,  # t
    (_ATTR, 6): _GRAPH,  # g
    (_ATTR, 10): _TENSOR,  # tensors
    (_ATTR, 11): _GRAPH,  # graphs
    (_ATTR, 22): _SPARSE,  # sparse_tensor
    (_ATTR, 23): _SPARSE,  # sparse_tensors
    (_SPARSE, 1): _TENSOR,  # values
    (_SPARSE, 2): _TENSOR,  # indices
}
_TENSOR_EXTERNAL_DATA = 13
_TENSOR_NAME = 8
_MAX_DEPTH = 64


class ProtobufError(ValueError):
    pass


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if pos >= len(buf):
            raise ProtobufError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ProtobufError("varint too long")


def _fields(buf: bytes, start: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """(field number, wire type, value start, value end) of each field; varints give their value as start."""
    pos = start
    while pos < end:
        key, pos = _varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
            yield field, wire, value, pos
        elif wire == 1:
            pos += 8
            yield field, wire, pos - 8, pos
        elif wire == 2:
            length, pos = _varint(buf, pos)
            if pos + length > end:
                raise ProtobufError("length-delimited field runs past its message")
            yield field, wire, pos, pos + length
            pos += length
        elif wire == 5:
            pos += 4
            yield field, wire, pos - 4, pos
        else:
            raise ProtobufError(f"unsupported wire type {wire}")
    if pos != end:
        raise ProtobufError("message overruns its length")


def _entry(buf: bytes, start: int, end: int) -> tuple[str, str]:
    key = value = ""
    for field, wire, s, e in _fields(buf, start, end):
        if wire == 2 and field == 1:
            key = buf[s:e].decode("utf-8", "replace")
        elif wire == 2 and field == 2:
            value = buf[s:e].decode("utf-8", "replace")
    return key, value


def external_locations(model: bytes) -> list[tuple[str, str]]:
    """(tensor name, location) for every tensor of the model that keeps its data in an external file."""
    found: list[tuple[str, str]] = []
    stack: list[tuple[int, int, int, int]] = [(_MODEL, 0, len(model), 0)]
    while stack:
        kind, start, end, depth = stack.pop()
        if depth > _MAX_DEPTH:
            raise ProtobufError("messages nested too deeply")
        if kind == _TENSOR:
            name = ""
            locations: list[str] = []
            for field, wire, s, e in _fields(model, start, end):
                if wire == 2 and field == _TENSOR_NAME:
                    name = model[s:e].decode("utf-8", "replace")
                elif wire == 2 and field == _TENSOR_EXTERNAL_DATA:
                    key, value = _entry(model, s, e)
                    if key == "location":
                        locations.append(value)
            found.extend((name, loc) for loc in locations)
            continue
        for field, wire, s, e in _fields(model, start, end):
            child = _CHILDREN.get((kind, field))
            if child is not None and wire == 2:
                stack.append((child, s, e, depth + 1))
    return found


def location_problem(location: str) -> str | None:
    """Why an external-data location is refused on its face (absolute, ``..``, odd characters), or None."""
    if not location or "\x00" in location:
        return "empty location or NUL byte"
    if "\\" in location:
        return f"location {location!r} contains a backslash"
    if location.startswith("/") or (len(location) > 1 and location[1] == ":"):
        return f"location {location!r} is absolute"
    if ".." in location.split("/"):
        return f"location {location!r} contains '..'"
    return None
