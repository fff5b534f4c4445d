"""Comparing generated protobuf/gRPC stubs without the generator's version stamp.

grpcio-tools and protobuf stamp their own release into what they generate (a header comment, the
runtime version check, GRPC_GENERATED_VERSION). A newer release changes only these lines, which
say nothing about the .proto, so the drift tests compare the stubs with them masked.
"""

from __future__ import annotations

import re

_STAMPS = re.compile(
    r"^# Protobuf Python Version: .*$"
    r"|^_runtime_version\.ValidateProtobufRuntimeVersion\([^)]*\)$"
    r"|^GRPC_GENERATED_VERSION = .*$",
    re.MULTILINE,
)


def unstamped(text: str) -> str:
    return _STAMPS.sub("<generator version>", text)
