"""The operators' audit trail: every admin action, who did it, to what, why and when (``admin_audit``,
append-only). Written in the same database transaction as the action where the action is a database write."""

from __future__ import annotations

import json
import logging
from typing import Any

import asyncpg

log = logging.getLogger(__name__)


async def record(db: asyncpg.Pool | asyncpg.Connection, *, admin_id: str, action: str, target_kind: str,
                 target_id: str, reason: str, details: dict[str, Any] | None = None) -> None:
    await db.execute(
        "INSERT INTO admin_audit (admin_id, action, target_kind, target_id, reason, details)"
        " VALUES ($1, $2, $3, $4, $5, $6::jsonb)", admin_id, action, target_kind, target_id, reason,
        json.dumps(details or {}))
    log.warning("admin action", extra={"adminId": admin_id, "action": action, "targetKind": target_kind,
                                       "targetId": target_id, "reason": reason})


async def recent(db: asyncpg.Pool | asyncpg.Connection, *, target_kind: str | None = None,
                 target_id: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    rows = await db.fetch(
        "SELECT a.id, a.action, a.target_kind, a.target_id, a.reason, a.details::text AS details, a.created_at,"
        " u.email AS admin FROM admin_audit a JOIN users u ON u.id = a.admin_id"
        " WHERE ($1::text IS NULL OR a.target_kind = $1) AND ($2::text IS NULL OR a.target_id = $2)"
        " ORDER BY a.id DESC LIMIT $3", target_kind, target_id, limit)
    return [{"id": r["id"], "action": r["action"], "targetKind": r["target_kind"], "targetId": r["target_id"],
             "reason": r["reason"], "details": json.loads(r["details"]), "admin": r["admin"],
             "at": r["created_at"].isoformat().replace("+00:00", "Z")} for r in rows]
