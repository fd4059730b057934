"""Content-addressed evidence store: each image lives at `<root>/ab/cd/<sha256>`.

The only way in is a validated sha256, so no request data ever becomes a path.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

SHA256 = re.compile(r"^[0-9a-f]{64}$")


class EvidenceStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, sha256: str) -> Path:
        if not SHA256.fullmatch(sha256):
            raise ValueError(f"not a sha256: {sha256!r}")
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def put(self, sha256: str, data: bytes) -> bool:
        """Store `data` under its hash; True if this call wrote it (it was not there)."""
        target = self.path(sha256)
        if target.exists():
            return False
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Write, sync and rename, so a crash never leaves a partial file under a valid name.
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return True

    def remove(self, sha256: str) -> None:
        self.path(sha256).unlink(missing_ok=True)
