"""`%tdb_open RUN` displays the one small output the lab extension turns into a run's tab."""

from __future__ import annotations

import time

import pytest
from IPython.core.error import UsageError
from IPython.testing import globalipapp
from IPython.utils.capture import capture_output

from tensorlab.lab.open_run import OPEN_RUN_MIME


@pytest.fixture(scope="module")
def ip():
    shell = globalipapp.start_ipython() or globalipapp.get_ipython()
    shell.run_line_magic("load_ext", "tensorlab")
    return shell


def test_tdb_open_displays_an_open_request(ip, tdb):
    run = tdb.run_store.start("to-open")
    ip.user_ns["_tdb"] = tdb
    for name in ("to-open", str(run)):
        with capture_output() as captured:
            ip.run_line_magic("tdb_open", name)
        (output,) = captured.outputs
        request = output.data[OPEN_RUN_MIME]
        assert request["run"] == str(run) and request["name"] == "to-open"
        assert (request["db"], request["study"]) == (tdb.db_name, tdb.study)
        assert abs(request["at"] - time.time()) < 5 and len(request["nonce"]) == 16
        assert "to-open" in output.data["text/plain"]
    with pytest.raises(UsageError, match="No run 'nothing'"):
        ip.run_line_magic("tdb_open", "nothing")
