"""A browser's RTP counters, read from a peer connection's getStats() in the page: one expression per counter."""

from __future__ import annotations


def rtp_counter(connection: str, direction: str, kind: str, field: str) -> str:
    """A page expression summing ``field`` of the ``direction``-rtp ("inbound" | "outbound") reports of ``kind``
    ("audio" | "video") of the peer connection that ``window.<connection>.getStats()`` reads."""
    return f"""async () => {{
  const stats = await window.{connection}?.getStats();
  let total = 0;
  stats?.forEach((r) => {{ if (r.type === "{direction}-rtp" && r.kind === "{kind}") total += r.{field} || 0; }});
  return total;
}}"""
