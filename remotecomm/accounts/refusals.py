"""Refused administration calls leave an audit record, whoever called: the REST API, the
portal or a command.

:func:`refusals_audited` wraps a service method ``method(self, caller, ...)`` of a
class with ``_store`` and ``_clock``: a refusal it raises (a
:class:`~remotecomm.service_errors.ServiceError` below 500: ``user-not-found``,
``last-provider-admin``, ...) is audited ``admin-refused`` -- the call's name, the
code, who and from where, in the caller's unit -- before it goes on up.  A busy
store is not a refusal and is not audited.
"""

from __future__ import annotations

import functools

from remotecomm.clock import now_us
from remotecomm.service_errors import ServiceError
from remotecomm.store.audit import append_audit
from remotecomm.store.engine import StoreBusy

ADMIN_REFUSED = "admin-refused"


async def audit_refusal(store, clock, caller, call: str, code: str) -> None:
    """One ``admin-refused`` record (none if the store is too busy to take it)."""
    try:
        await store.run(append_audit, now_us(clock), ADMIN_REFUSED, actor=caller.user_id,
                        unit_id=caller.unit_id, source_address=caller.source_address,
                        call=call, code=code)
    except StoreBusy:
        pass


def refusals_audited(method):
    """Audit the refusals of ``method(self, caller, ...)``."""
    @functools.wraps(method)
    async def audited_method(self, caller, *args, **kwargs):
        try:
            return await method(self, caller, *args, **kwargs)
        except ServiceError as e:
            if e.status < 500:
                await audit_refusal(self._store, self._clock, caller, method.__name__, e.code)
            raise
    return audited_method
