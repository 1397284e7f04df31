"""The smallest end-to-end check: connect to the managed server, write, read back."""

from __future__ import annotations

import time

import tensorlab


def main() -> None:
    started = time.monotonic()
    db = tensorlab.connect(study="quickstart")
    print(f"connected: {db}")
    probes = db.collection("quickstart")
    marker = {"study": db.study, "written_at": time.time()}
    inserted = probes.insert_one(marker).inserted_id
    read_back = probes.find_one({"_id": inserted})
    assert read_back["written_at"] == marker["written_at"], "read-back differs from what was written"
    print(f"wrote and read back document {inserted} in {time.monotonic() - started:.2f} s")
    db.close()


if __name__ == "__main__":
    main()
