"""What the relay needs to know from an SDP offer or answer, read without aiortc internals.

The relay reads the publisher's media SSRC from the offer (the first SSRC of ``a=ssrc-group:FID``,
or the first SSRC that is not a retransmission stream) to address PLIs, the payload-type map to
know which codec a frame is in, and each m-line's direction to decide who sends what.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from aiortc.rtp import FORBIDDEN_PAYLOAD_TYPES
from aiortc.sdp import SessionDescription

from relay.errors import BadCandidateError, BadSdpError
from relay.ice import MAX_CANDIDATES_PER_PEER, CandidatePolicy, parse_candidate

DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
# A browser's offer with audio, video, a data channel and its candidates is 5-10 KB.
MAX_SDP_CHARS = 48 * 1024
# The relay uses one audio and one video m-line and the data channel; a few more stay inactive.
MAX_MEDIA_SECTIONS = 8
# RFC 5763 section 5: an offer says actpass (browsers), active or passive; "holdconn" has no DTLS role.
SETUP_ROLES = ("actpass", "active", "passive")
# aiortc's own m-line pattern (aiortc/sdp.py), with a port that fits 16 bits.
_M_LINE = re.compile(r"^m=([^ ]+) ([0-9]{1,5}) ([A-Z/]+) (.+)$")
_PAYLOAD_TYPE = re.compile(r"^[0-9]{1,3}$")


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
            current.payload_types = [int(p) for p in parts[3:] if _PAYLOAD_TYPE.match(p)]
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
    except (ValueError, IndexError) as exc:
        raise BadSdpError(f"malformed attribute a={attr[:80]!r}") from exc


@dataclass
class Offer:
    """A browser's offer as the relay accepts it (see :func:`check_offer`)."""

    sdp: str  # what aiortc is given: the offer less the candidates the relay does not use
    summary: SessionSummary
    candidates: int  # how many candidates of the offer go to ICE


def check_offer(sdp: object, policy: CandidatePolicy) -> Offer:
    """Validate an offer before aiortc sees it; raise :class:`BadSdpError` (or a candidate error) if unfit.

    aiortc's SDP parser trusts its input (``assert``, ``KeyError`` on ``a=setup:holdconn``, any number of
    payload types), so the relay bounds the offer first: its size, the number of m-lines, each audio/video
    m-line's payload types (0-127, not the RTCP-clashing 72-76, no repeats), the DTLS setup role, and every
    ``a=candidate`` line through the same check and policy as trickled candidates (unused ones are dropped,
    at most :data:`~relay.ice.MAX_CANDIDATES_PER_PEER` kept). Then aiortc's own parser must accept it, and
    every section must carry the ICE and DTLS credentials aiortc assumes.
    """
    if not isinstance(sdp, str):
        raise BadSdpError("offer is not an SDP session description")
    if len(sdp) > MAX_SDP_CHARS:
        raise BadSdpError(f"offer is larger than {MAX_SDP_CHARS} characters")
    if "\x00" in sdp or not _encodable(sdp):
        raise BadSdpError("offer holds characters that are not valid text")
    kept: list[str] = []
    sections = candidates = 0
    for line in sdp.splitlines():
        if line.startswith("m="):
            sections += 1
            if sections > MAX_MEDIA_SECTIONS:
                raise BadSdpError(f"offer has more than {MAX_MEDIA_SECTIONS} m-lines")
            _check_m_line(line)
        elif line.startswith("a=setup:") and line[len("a=setup:"):].strip() not in SETUP_ROLES:
            raise BadSdpError(f"a=setup must be one of {', '.join(SETUP_ROLES)}")
        elif line.startswith("a=candidate:"):
            try:
                candidate = parse_candidate(line[2:])
            except BadCandidateError as exc:
                raise BadSdpError(f"offer carries a bad candidate: {exc.message}") from None
            if policy.unused_reason(candidate) is not None:
                continue
            candidates += 1
            if candidates > MAX_CANDIDATES_PER_PEER:
                raise BadSdpError(f"offer carries more than {MAX_CANDIDATES_PER_PEER} candidates",
                                  code="too_many_candidates")
        kept.append(line)
    cleaned = "\r\n".join(kept) + "\r\n"
    summary = parse_session(cleaned)
    try:
        parsed = SessionDescription.parse(cleaned)
    except Exception as exc:  # aiortc's parser fails with asserts, KeyError, AttributeError... on bad input
        raise BadSdpError(f"offer cannot be parsed ({type(exc).__name__})") from exc
    for media in parsed.media:
        # aiortc drops a section's DTLS parameters when it has no a=setup, then fails deep inside
        # setRemoteDescription (AttributeError on None): every section must carry ICE and DTLS credentials.
        if media.dtls is None or not media.dtls.fingerprints:
            raise BadSdpError(f"offer's {media.kind} m-line has no DTLS fingerprint and setup role")
        if media.ice is None or not media.ice.usernameFragment or not media.ice.password:
            raise BadSdpError(f"offer's {media.kind} m-line has no ICE ufrag and password")
    return Offer(sdp=cleaned, summary=summary, candidates=candidates)


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate
        return False
    return True


def _check_m_line(line: str) -> None:
    match = _M_LINE.match(line)
    if match is None or int(match.group(2)) > 65535:
        raise BadSdpError(f"malformed m-line {line[:80]!r}")
    if match.group(1) not in ("audio", "video"):
        return
    payload_types = match.group(4).split()
    if not all(_PAYLOAD_TYPE.match(p) for p in payload_types):
        raise BadSdpError("payload types must be integers")
    numbers = [int(p) for p in payload_types]
    if any(not 0 <= pt <= 127 or pt in FORBIDDEN_PAYLOAD_TYPES for pt in numbers):
        raise BadSdpError("payload types must be 0 to 127, and not 72 to 76 (they clash with RTCP)")
    if len(set(numbers)) != len(numbers):
        raise BadSdpError("an m-line lists a payload type twice")
