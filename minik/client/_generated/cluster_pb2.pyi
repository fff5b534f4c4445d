# mypy: ignore-errors
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class JoinRequest(_message.Message):
    __slots__ = ("secret", "node_name", "node_password", "csr")
    SECRET_FIELD_NUMBER: _ClassVar[int]
    NODE_NAME_FIELD_NUMBER: _ClassVar[int]
    NODE_PASSWORD_FIELD_NUMBER: _ClassVar[int]
    CSR_FIELD_NUMBER: _ClassVar[int]
    secret: str
    node_name: str
    node_password: str
    csr: bytes
    def __init__(self, secret: _Optional[str] = ..., node_name: _Optional[str] = ..., node_password: _Optional[str] = ..., csr: _Optional[bytes] = ...) -> None: ...

class JoinResponse(_message.Message):
    __slots__ = ("client_cert", "ca_cert")
    CLIENT_CERT_FIELD_NUMBER: _ClassVar[int]
    CA_CERT_FIELD_NUMBER: _ClassVar[int]
    client_cert: bytes
    ca_cert: bytes
    def __init__(self, client_cert: _Optional[bytes] = ..., ca_cert: _Optional[bytes] = ...) -> None: ...

class ClientRequest(_message.Message):
    __slots__ = ("id", "verb", "resource", "namespace", "name", "body", "subresource", "patch_type", "field_manager", "label_selector", "field_selector", "has_grace_period", "grace_period_seconds", "precondition_uid", "propagation_policy", "all_namespaces")
    ID_FIELD_NUMBER: _ClassVar[int]
    VERB_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    SUBRESOURCE_FIELD_NUMBER: _ClassVar[int]
    PATCH_TYPE_FIELD_NUMBER: _ClassVar[int]
    FIELD_MANAGER_FIELD_NUMBER: _ClassVar[int]
    LABEL_SELECTOR_FIELD_NUMBER: _ClassVar[int]
    FIELD_SELECTOR_FIELD_NUMBER: _ClassVar[int]
    HAS_GRACE_PERIOD_FIELD_NUMBER: _ClassVar[int]
    GRACE_PERIOD_SECONDS_FIELD_NUMBER: _ClassVar[int]
    PRECONDITION_UID_FIELD_NUMBER: _ClassVar[int]
    PROPAGATION_POLICY_FIELD_NUMBER: _ClassVar[int]
    ALL_NAMESPACES_FIELD_NUMBER: _ClassVar[int]
    id: int
    verb: str
    resource: str
    namespace: str
    name: str
    body: bytes
    subresource: str
    patch_type: str
    field_manager: str
    label_selector: str
    field_selector: str
    has_grace_period: bool
    grace_period_seconds: int
    precondition_uid: str
    propagation_policy: str
    all_namespaces: bool
    def __init__(self, id: _Optional[int] = ..., verb: _Optional[str] = ..., resource: _Optional[str] = ..., namespace: _Optional[str] = ..., name: _Optional[str] = ..., body: _Optional[bytes] = ..., subresource: _Optional[str] = ..., patch_type: _Optional[str] = ..., field_manager: _Optional[str] = ..., label_selector: _Optional[str] = ..., field_selector: _Optional[str] = ..., has_grace_period: _Optional[bool] = ..., grace_period_seconds: _Optional[int] = ..., precondition_uid: _Optional[str] = ..., propagation_policy: _Optional[str] = ..., all_namespaces: _Optional[bool] = ...) -> None: ...

class ClientResponse(_message.Message):
    __slots__ = ("id", "code", "reason", "message", "body", "resource_version")
    ID_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_VERSION_FIELD_NUMBER: _ClassVar[int]
    id: int
    code: int
    reason: str
    message: str
    body: bytes
    resource_version: str
    def __init__(self, id: _Optional[int] = ..., code: _Optional[int] = ..., reason: _Optional[str] = ..., message: _Optional[str] = ..., body: _Optional[bytes] = ..., resource_version: _Optional[str] = ...) -> None: ...

class WatchStart(_message.Message):
    __slots__ = ("id", "resource", "namespace", "all_namespaces", "resource_version", "label_selector", "field_selector")
    ID_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    ALL_NAMESPACES_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_VERSION_FIELD_NUMBER: _ClassVar[int]
    LABEL_SELECTOR_FIELD_NUMBER: _ClassVar[int]
    FIELD_SELECTOR_FIELD_NUMBER: _ClassVar[int]
    id: int
    resource: str
    namespace: str
    all_namespaces: bool
    resource_version: str
    label_selector: str
    field_selector: str
    def __init__(self, id: _Optional[int] = ..., resource: _Optional[str] = ..., namespace: _Optional[str] = ..., all_namespaces: _Optional[bool] = ..., resource_version: _Optional[str] = ..., label_selector: _Optional[str] = ..., field_selector: _Optional[str] = ...) -> None: ...

class WatchEvent(_message.Message):
    __slots__ = ("id", "type", "object")
    ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    OBJECT_FIELD_NUMBER: _ClassVar[int]
    id: int
    type: str
    object: bytes
    def __init__(self, id: _Optional[int] = ..., type: _Optional[str] = ..., object: _Optional[bytes] = ...) -> None: ...

class WatchStop(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: int
    def __init__(self, id: _Optional[int] = ...) -> None: ...

class WatchEnd(_message.Message):
    __slots__ = ("id", "code", "reason", "message")
    ID_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    id: int
    code: int
    reason: str
    message: str
    def __init__(self, id: _Optional[int] = ..., code: _Optional[int] = ..., reason: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class StreamOpen(_message.Message):
    __slots__ = ("id", "kind", "pod", "options")
    ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    POD_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    id: int
    kind: str
    pod: bytes
    options: bytes
    def __init__(self, id: _Optional[int] = ..., kind: _Optional[str] = ..., pod: _Optional[bytes] = ..., options: _Optional[bytes] = ...) -> None: ...

class StreamData(_message.Message):
    __slots__ = ("id", "channel", "data")
    ID_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    id: int
    channel: int
    data: bytes
    def __init__(self, id: _Optional[int] = ..., channel: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...

class StreamClose(_message.Message):
    __slots__ = ("id", "channel", "code", "reason", "message", "final")
    ID_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    FINAL_FIELD_NUMBER: _ClassVar[int]
    id: int
    channel: int
    code: int
    reason: str
    message: str
    final: bytes
    def __init__(self, id: _Optional[int] = ..., channel: _Optional[int] = ..., code: _Optional[int] = ..., reason: _Optional[str] = ..., message: _Optional[str] = ..., final: _Optional[bytes] = ...) -> None: ...

class StreamCredit(_message.Message):
    __slots__ = ("id", "channel", "bytes")
    ID_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    id: int
    channel: int
    bytes: int
    def __init__(self, id: _Optional[int] = ..., channel: _Optional[int] = ..., bytes: _Optional[int] = ...) -> None: ...

class Metrics(_message.Message):
    __slots__ = ("usage",)
    USAGE_FIELD_NUMBER: _ClassVar[int]
    usage: bytes
    def __init__(self, usage: _Optional[bytes] = ...) -> None: ...

class Hello(_message.Message):
    __slots__ = ("node_name", "version")
    NODE_NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    node_name: str
    version: str
    def __init__(self, node_name: _Optional[str] = ..., version: _Optional[str] = ...) -> None: ...

class Welcome(_message.Message):
    __slots__ = ("server_version", "settings")
    SERVER_VERSION_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    server_version: str
    settings: bytes
    def __init__(self, server_version: _Optional[str] = ..., settings: _Optional[bytes] = ...) -> None: ...

class AgentMessage(_message.Message):
    __slots__ = ("hello", "request", "watch_start", "watch_stop", "data", "close", "metrics", "credit")
    HELLO_FIELD_NUMBER: _ClassVar[int]
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    WATCH_START_FIELD_NUMBER: _ClassVar[int]
    WATCH_STOP_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    CLOSE_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    CREDIT_FIELD_NUMBER: _ClassVar[int]
    hello: Hello
    request: ClientRequest
    watch_start: WatchStart
    watch_stop: WatchStop
    data: StreamData
    close: StreamClose
    metrics: Metrics
    credit: StreamCredit
    def __init__(self, hello: _Optional[_Union[Hello, _Mapping]] = ..., request: _Optional[_Union[ClientRequest, _Mapping]] = ..., watch_start: _Optional[_Union[WatchStart, _Mapping]] = ..., watch_stop: _Optional[_Union[WatchStop, _Mapping]] = ..., data: _Optional[_Union[StreamData, _Mapping]] = ..., close: _Optional[_Union[StreamClose, _Mapping]] = ..., metrics: _Optional[_Union[Metrics, _Mapping]] = ..., credit: _Optional[_Union[StreamCredit, _Mapping]] = ...) -> None: ...

class ServerMessage(_message.Message):
    __slots__ = ("welcome", "response", "event", "watch_end", "open", "data", "close", "credit")
    WELCOME_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    WATCH_END_FIELD_NUMBER: _ClassVar[int]
    OPEN_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    CLOSE_FIELD_NUMBER: _ClassVar[int]
    CREDIT_FIELD_NUMBER: _ClassVar[int]
    welcome: Welcome
    response: ClientResponse
    event: WatchEvent
    watch_end: WatchEnd
    open: StreamOpen
    data: StreamData
    close: StreamClose
    credit: StreamCredit
    def __init__(self, welcome: _Optional[_Union[Welcome, _Mapping]] = ..., response: _Optional[_Union[ClientResponse, _Mapping]] = ..., event: _Optional[_Union[WatchEvent, _Mapping]] = ..., watch_end: _Optional[_Union[WatchEnd, _Mapping]] = ..., open: _Optional[_Union[StreamOpen, _Mapping]] = ..., data: _Optional[_Union[StreamData, _Mapping]] = ..., close: _Optional[_Union[StreamClose, _Mapping]] = ..., credit: _Optional[_Union[StreamCredit, _Mapping]] = ...) -> None: ...
