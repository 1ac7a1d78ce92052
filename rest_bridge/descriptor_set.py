"""The services the bridge exposes, read from a FileDescriptorSet (protoc --include_imports).

Like Envoy's transcoder, the bridge knows nothing of the services in advance: it builds its
messages from the descriptors and reads the proto comments from their source info.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor, descriptor_pb2, descriptor_pool, message, message_factory

DEFAULT_SERVICES = ("checkpoint.v1.CheckpointService",)


class SchemaError(ValueError):
    """The descriptor set cannot be read or lacks a configured service."""


def default_descriptor_set() -> Path:
    """The descriptor set of checkpoint.v1 shipped with the package (made by `make generate`)."""
    return Path(str(resources.files("checkpoint.v1").joinpath("checkpoint.binpb")))


@dataclass
class Schema:
    pool: descriptor_pool.DescriptorPool
    services: tuple[descriptor.ServiceDescriptor, ...]
    comments: dict[str, str] = field(default_factory=dict)
    """Leading comment by full name: "pkg.Svc", "pkg.Svc.Method", "pkg.Msg", "pkg.Msg.field"."""
    fingerprint: str = ""
    """Digest of the files and the services picked: equal digests, equal schemas."""

    def message_class(self, desc: descriptor.Descriptor) -> type[message.Message]:
        return message_factory.GetMessageClass(desc)

    def http_rule(self, method: descriptor.MethodDescriptor) -> http_pb2.HttpRule | None:
        """The method's google.api.http option, None when it has none."""
        # Re-parsed through the default pool's MethodOptions, where the extension is registered.
        options = descriptor_pb2.MethodOptions()
        options.ParseFromString(method.GetOptions().SerializeToString())
        extension: Any = annotations_pb2.http
        if not options.HasExtension(extension):
            return None
        rule: http_pb2.HttpRule = options.Extensions[extension]
        return rule


def load_schema(path: Path, service_names: Sequence[str] = DEFAULT_SERVICES) -> Schema:
    """Load a descriptor set and pick the named services.

    Raises:
        SchemaError: unreadable file, or a service that the set does not define.
    """
    try:
        files = descriptor_pb2.FileDescriptorSet.FromString(path.read_bytes())
    except (OSError, message.DecodeError) as exc:
        raise SchemaError(f"cannot read descriptor set {path}: {exc}") from exc
    return schema_from_files(files, service_names, f"descriptor set {path}")


def schema_from_files(
    files: descriptor_pb2.FileDescriptorSet, service_names: Sequence[str], origin: str
) -> Schema:
    """The named services of files (each after the files it imports); with no names, every
    service that has at least one google.api.http rule.

    Raises:
        SchemaError: the files do not build, or lack a named service; the message names origin.
    """
    pool = descriptor_pool.DescriptorPool()
    digest = hashlib.sha256()
    try:
        for file_proto in files.file:
            pool.Add(file_proto)
            digest.update(file_proto.SerializeToString(deterministic=True))
    except (TypeError, ValueError) as exc:
        raise SchemaError(f"{origin} does not build: {exc}") from exc
    schema = Schema(pool=pool, services=(), comments=_comments(files))
    services = []
    for name in service_names or _all_services(files):
        try:
            services.append(pool.FindServiceByName(name))
        except KeyError:
            raise SchemaError(f"{origin} defines no service {name!r}") from None
    if not service_names:
        services = [s for s in services if any(schema.http_rule(m) for m in s.methods)]
    digest.update(" ".join(s.full_name for s in services).encode())
    schema.services, schema.fingerprint = tuple(services), digest.hexdigest()
    return schema


def _all_services(files: descriptor_pb2.FileDescriptorSet) -> list[str]:
    return [f"{f.package}.{s.name}" if f.package else s.name for f in files.file for s in f.service]


def _comments(files: descriptor_pb2.FileDescriptorSet) -> dict[str, str]:
    """Leading comments by full name, from SourceCodeInfo paths (descriptor.proto numbers)."""
    out: dict[str, str] = {}
    for file_proto in files.file:
        names: dict[tuple[int, ...], str] = {}
        prefix = f"{file_proto.package}." if file_proto.package else ""
        for mi, msg in enumerate(file_proto.message_type):
            _message_names(names, (4, mi), prefix + msg.name, msg)
        for ei, enum in enumerate(file_proto.enum_type):
            names[(5, ei)] = prefix + enum.name
            for vi, value in enumerate(enum.value):
                names[(5, ei, 2, vi)] = f"{prefix}{enum.name}.{value.name}"
        for si, service in enumerate(file_proto.service):
            names[(6, si)] = prefix + service.name
            for mi, method in enumerate(service.method):
                names[(6, si, 2, mi)] = f"{prefix}{service.name}.{method.name}"
        for location in file_proto.source_code_info.location:
            name = names.get(tuple(location.path))
            if name and location.leading_comments.strip():
                out[name] = " ".join(location.leading_comments.split())
    return out


def _message_names(
    names: dict[tuple[int, ...], str],
    path: tuple[int, ...],
    full: str,
    msg: descriptor_pb2.DescriptorProto,
) -> None:
    names[path] = full
    for fi, fld in enumerate(msg.field):
        names[(*path, 2, fi)] = f"{full}.{fld.name}"
    for ni, nested in enumerate(msg.nested_type):
        _message_names(names, (*path, 3, ni), f"{full}.{nested.name}", nested)
    for ei, enum in enumerate(msg.enum_type):
        names[(*path, 4, ei)] = f"{full}.{enum.name}"
