"""Schemathesis hooks for .ci/schemathesis_run.py (loaded through SCHEMATHESIS_HOOKS).

Schemathesis reuses ids it has seen in answers, so left alone it soon finds the admin's own
user id (in `GET /me`, `GET /admin/users`) and revokes, disables or deletes the admin whose
token the whole run uses: every later request then answers 401 and tests nothing (seen
here: the undocumented 404 of a deliberately broken document went unnoticed). Requests
aimed at an id in CLAIMD_PROTECTED_IDS go to an id that does not exist instead.
"""

import os
import uuid

import schemathesis

PROTECTED = {value for value in os.environ.get("CLAIMD_PROTECTED_IDS", "").split(",") if value}


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    parameters = case.path_parameters or {}
    for name, value in list(parameters.items()):
        if str(value) in PROTECTED:
            parameters[name] = str(uuid.uuid4())
