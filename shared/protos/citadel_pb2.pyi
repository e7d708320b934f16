from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class GetTrustBundleRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class TrustBundle(_message.Message):
    __slots__ = ("trust_domain", "root_certs", "version")
    TRUST_DOMAIN_FIELD_NUMBER: _ClassVar[int]
    ROOT_CERTS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    trust_domain: str
    root_certs: _containers.RepeatedScalarFieldContainer[str]
    version: str
    def __init__(self, trust_domain: _Optional[str] = ..., root_certs: _Optional[_Iterable[str]] = ..., version: _Optional[str] = ...) -> None: ...
