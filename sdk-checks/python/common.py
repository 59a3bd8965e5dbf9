"""Shared helpers for the official-SDK checks: a tiny test runner that prints one line per
check and the closing `N passed, N failed` line CI reads."""

import datetime
import os
import sys
import traceback

URL = os.environ["PATD_URL"]
ADMIN_ID = os.environ["PATD_ADMIN_ID"]
ADMIN_SECRET = os.environ["PATD_ADMIN_SECRET"]
READER_ID = os.environ["PATD_READER_ID"]
READER_SECRET = os.environ["PATD_READER_SECRET"]
LIMITED_URL = os.environ["PATD_LIMITED_URL"]
LIMITED_ID = os.environ["PATD_LIMITED_ID"]
LIMITED_SECRET = os.environ["PATD_LIMITED_SECRET"]

_results = {"passed": 0, "failed": 0}


def configuration(client_id, client_secret, base_url=URL):
    """A configuration as users build one: base URL, client id and secret. Both SDK versions
    exchange the PAT for an access token right here (a form-encoded POST /oauth/token)."""
    from sailpoint.configuration import Configuration, ConfigurationParams

    params = ConfigurationParams()
    params.base_url = base_url
    params.client_id = client_id
    params.client_secret = client_secret
    return Configuration(params)


def check(name):
    """Runs the decorated function now, as one named check."""

    def run(function):
        try:
            function()
        except Exception:  # noqa: BLE001 - every failure is reported, none stops the others
            _results["failed"] += 1
            print(f"FAIL {name}")
            traceback.print_exc(file=sys.stdout)
        else:
            _results["passed"] += 1
            print(f"ok   {name}")
        return function

    return run


def expect_raises(exception_type, status, call):
    """The SDK must raise its own typed exception carrying the right status."""
    try:
        call()
    except exception_type as error:
        assert error.status == status, f"status {error.status}, wanted {status}"
        return error
    raise AssertionError(f"no {exception_type.__name__} raised")


def in_days(days):
    return datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=days)


def finish():
    print(f"sdk: {_results['passed']} passed, {_results['failed']} failed")
    sys.exit(1 if _results["failed"] else 0)
