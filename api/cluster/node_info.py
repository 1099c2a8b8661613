"""What the registry says of a node: its id and name, whether it takes new rooms, and its load."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from typing import Any

log = logging.getLogger(__name__)

SERVING, DRAINING = "serving", "draining"


@dataclass(frozen=True)
class Load:
    """How busy a node is: its relay thread's CPU (1.0 = one core) first, then what it holds."""

    cpu: float = 0.0
    participants: int = 0
    readings: int = 0
    streams: int = 0
    viewers: int = 0
    busy: bool = False  # its relay takes no new participants now (relay_busy: CPU limit, loop late or full)


@dataclass(frozen=True)
class NodeInfo:
    """One node as the registry knows it."""

    id: str
    name: str
    state: str = SERVING
    load: Load = field(default_factory=Load)
    started_at: str = ""
    heartbeat_at: str = ""
    host: str = ""  # the machine's name
    pid: int = 0

    def json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "state": self.state, "load": asdict(self.load),
                "startedAt": self.started_at, "heartbeatAt": self.heartbeat_at, "host": self.host, "pid": self.pid}

    @classmethod
    def parse(cls, raw: str) -> NodeInfo | None:
        try:
            data = json.loads(raw)
            load = Load(**{k: data["load"][k] for k in Load.__dataclass_fields__ if k in data["load"]})
            return cls(id=str(data["id"]), name=str(data["name"]), state=str(data["state"]), load=load,
                       started_at=str(data["startedAt"]), heartbeat_at=str(data["heartbeatAt"]),
                       host=str(data.get("host", "")), pid=int(data.get("pid", 0)))
        except (ValueError, KeyError, TypeError):
            log.warning("unreadable node entry in the registry", extra={"entry": raw[:200]})
            return None
