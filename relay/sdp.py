"""What the relay needs to know from an SDP offer or answer, read without aiortc internals.

The relay reads the publisher's media SSRC from the offer (the first SSRC of ``a=ssrc-group:FID``,
or the first SSRC that is not a retransmission stream) to address PLIs, the payload-type map to
know which codec a frame is in, and each m-line's direction to decide who sends what.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from relay.errors import BadSdpError

DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")


@dataclass
class MediaSection:
    """One ``m=`` line of a session description."""

    kind: str
    mid: str | None = None
    direction: str = "sendrecv"
    ssrcs: list[int] = field(default_factory=list)
    fid_groups: list[list[int]] = field(default_factory=list)
    codecs: dict[int, str] = field(default_factory=dict)  # payload type -> upper-case codec name ("VP8")
    payload_types: list[int] = field(default_factory=list)  # in m-line order (preference)

    @property
    def sends(self) -> bool:
        """Whether the describing side sends media on this section."""
        return self.direction in ("sendrecv", "sendonly")

    @property
    def receives(self) -> bool:
        """Whether the describing side receives media on this section."""
        return self.direction in ("sendrecv", "recvonly")

    @property
    def media_ssrc(self) -> int | None:
        """The SSRC a PLI must name: FID's first SSRC, else the first non-RTX SSRC."""
        if self.fid_groups:
            return self.fid_groups[0][0]
        rtx = {ssrc for group in self.fid_groups for ssrc in group[1:]}
        return next((s for s in self.ssrcs if s not in rtx), None)

    @property
    def first_codec(self) -> str | None:
        """The codec the section prefers (for an answer: the one negotiated)."""
        for pt in self.payload_types:
            name = self.codecs.get(pt)
            if name is not None and name != "RTX":
                return name
        return None


@dataclass
class SessionSummary:
    """The parts of a session description the relay acts on."""

    media: list[MediaSection]
    has_data_channel: bool = False

    def by_mid(self, mid: str | None) -> MediaSection | None:
        return next((m for m in self.media if m.mid == mid), None)

    def kinds(self) -> set[str]:
        return {m.kind for m in self.media}


def parse_session(sdp: str) -> SessionSummary:
    """Summarize an SDP offer or answer; raise :class:`BadSdpError` if it is not one."""
    if not isinstance(sdp, str) or not sdp.lstrip().startswith("v="):
        raise BadSdpError("offer is not an SDP session description")
    media: list[MediaSection] = []
    has_data_channel = False
    session_direction = "sendrecv"
    current: MediaSection | None = None
    for raw in sdp.splitlines():
        line = raw.strip()
        if line.startswith("m="):
            parts = line[2:].split()
            if len(parts) < 3:
                raise BadSdpError(f"malformed m-line: {line!r}")
            kind = parts[0]
            if kind == "application":
                has_data_channel = True
                current = None
                continue
            if kind not in ("audio", "video"):
                current = None
                continue
            current = MediaSection(kind=kind, direction=session_direction)
            current.payload_types = [int(p) for p in parts[3:] if p.isdigit()]
            media.append(current)
        elif line.startswith("a="):
            _parse_attribute(line[2:], current)
            if current is None and line[2:] in DIRECTIONS:
                session_direction = line[2:]
    if not media and not has_data_channel:
        raise BadSdpError("offer has no audio, video or data channel")
    return SessionSummary(media=media, has_data_channel=has_data_channel)


def _parse_attribute(attr: str, media: MediaSection | None) -> None:
    if media is None:
        return
    name, _, value = attr.partition(":")
    try:
        if attr in DIRECTIONS:
            media.direction = attr
        elif name == "mid":
            media.mid = value
        elif name == "rtpmap":
            pt, _, encoding = value.partition(" ")
            media.codecs[int(pt)] = encoding.split("/")[0].upper()
        elif name == "ssrc":
            ssrc = int(value.split()[0])
            if ssrc not in media.ssrcs:
                media.ssrcs.append(ssrc)
        elif name == "ssrc-group":
            semantics, *ssrcs = value.split()
            if semantics == "FID" and ssrcs:
                media.fid_groups.append([int(s) for s in ssrcs])
    except ValueError as exc:
        raise BadSdpError(f"malformed attribute a={attr!r}") from exc
