"""How every browser test starts Chromium: Debian's package, never a downloaded browser, fake media devices."""

from __future__ import annotations

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",  # the tests run as root
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    # Host candidates as real addresses, not mDNS names the relay (aioice) cannot resolve; and no
    # local-network-access prompt for pages on 127.0.0.1 talking to the relay's loopback ports.
    "--disable-features=WebRtcHideLocalIpsWithMdns,LocalNetworkAccessChecks",
    "--disable-gpu",
    # No calls home: the machine has no network, and they only add noise and time.
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
