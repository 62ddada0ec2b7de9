"""The one exception tree of gembus; each class is one SOAP fault code.

::

    GembusError                      Server            (never shown with a traceback)
    ├── ClientError                  Client            caller's fault, do not retry unchanged
    │   ├── GuardError               Client.<reason>   rejected before parsing costs anything
    │   │     RequestTooLong, InvalidEncoding, DTDNotAllowed, XMLSyntaxError, LimitExceeded,
    │   │     PINotAllowed, AmbiguousEnvelope, EncodingNotSupported, ActionMismatch,
    │   │     UnknownOperation, VersionMismatch (SOAP VersionMismatch), MustUnderstand
    │   ├── SchemaValidationError    Client.SchemaValidation
    │   ├── AuthenticationError      Client.Authentication
    │   ├── NotAuthorizedError       Client.NotAuthorized
    │   ├── InvalidIdentifierError   Client.InvalidIdentifier
    │   ├── NotFoundError            Client.Unknown<Thing>
    │   ├── ConflictError            Client.Duplicate<Thing>
    │   └── RuleViolation            Client.<Rule>
    ├── ServerError                  Server
    │   ├── NotImplementedFault      Server.NotImplemented
    │   └── UnavailableError         Server.Unavailable    (database or partner down; retry)
    └── PartnerFault                 the partner's own     a partner system's declared fault,
                                     Client.* / Server.*   passed on to gembus's caller

Foreign exceptions (lxml, SQLAlchemy, zeep) are translated where they enter, with
``raise … from exc``; anything else that reaches the fault boundary becomes a plain
``Server`` fault and its traceback goes to the log only.
"""

from __future__ import annotations


class GembusError(Exception):
    """Base of every error gembus turns into a SOAP fault."""

    fault_code = "Server"
    default_message = "internal error"

    def __init__(self, message: str | None = None, *, field: str | None = None) -> None:
        self.message = message or self.default_message
        self.field = field
        super().__init__(self.message)

    @property
    def is_client(self) -> bool:
        """Client, VersionMismatch and MustUnderstand faults are the caller's; Server ones ours."""
        return not self.fault_code.startswith("Server")


class ClientError(GembusError):
    fault_code = "Client"
    default_message = "the request is not acceptable"


class GuardError(ClientError):
    """Raised by the pre-parse guard; the code is chosen per violation."""

    def __init__(self, reason: str, message: str, *, field: str | None = None) -> None:
        super().__init__(message, field=field)
        self.fault_code = f"Client.{reason}"


class VersionMismatchError(GuardError):
    """The envelope is neither SOAP 1.1 nor SOAP 1.2 (SOAP's own VersionMismatch code)."""

    def __init__(self, message: str) -> None:
        super().__init__("VersionMismatch", message)
        self.fault_code = "VersionMismatch"


class MustUnderstandError(GuardError):
    """A header block marked mustUnderstand that gembus does not process."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__("MustUnderstand", message, field=field)
        self.fault_code = "MustUnderstand"


class SchemaValidationError(ClientError):
    fault_code = "Client.SchemaValidation"
    default_message = "the message does not validate against the contract"


class AuthenticationError(ClientError):
    fault_code = "Client.Authentication"
    default_message = "authentication failed"


class NotAuthorizedError(ClientError):
    fault_code = "Client.NotAuthorized"
    default_message = "the authenticated partner may not do this"


class InvalidIdentifierError(ClientError):
    fault_code = "Client.InvalidIdentifier"
    default_message = "an identifier is not valid"


class MissingIdentifierError(ClientError):
    fault_code = "Client.MissingIdentifier"
    default_message = "a role needs an identifier that was not given"


class InvalidPagingError(ClientError):
    fault_code = "Client.InvalidPaging"
    default_message = "the page does not exist"


class InvalidPeriodError(ClientError):
    fault_code = "Client.InvalidPeriod"
    default_message = "the period or validity window is not usable"


class InvalidValueError(ClientError):
    fault_code = "Client.InvalidValue"
    default_message = "a value is outside what the operation accepts"


class InvalidStateError(ClientError):
    fault_code = "Client.InvalidState"
    default_message = "the record is not in a state that allows this"


class NotFoundError(ClientError):
    """Something named in the request does not exist; ``thing`` names it in the code."""

    def __init__(self, thing: str, message: str, *, field: str | None = None) -> None:
        super().__init__(message, field=field)
        self.fault_code = f"Client.Unknown{thing}"


class ConflictError(ClientError):
    """A unique thing already exists; ``thing`` names it in the code."""

    def __init__(self, thing: str, message: str, *, field: str | None = None) -> None:
        super().__init__(message, field=field)
        self.fault_code = f"Client.Duplicate{thing}"


class ServerError(GembusError):
    fault_code = "Server"


class NotImplementedFault(ServerError):
    fault_code = "Server.NotImplemented"
    default_message = "this operation is declared by the contract but not implemented yet"


class UnavailableError(ServerError):
    fault_code = "Server.Unavailable"
    default_message = "a service gembus depends on is unavailable; retry later"


class PartnerFault(GembusError):
    """A declared fault of a partner system gembus called for its caller (a CLM refusing a
    reservation), passed on with the partner's code, message and field."""

    def __init__(self, code: str, message: str, *, field: str | None = None) -> None:
        super().__init__(message, field=field)
        self.fault_code = code
