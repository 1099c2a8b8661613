// ICE steps both browser clients (readings and live streams) share with the relay.

// Resolves once the browser has gathered its candidates, or after timeoutMs: the offer then carries
// what was found, and later candidates trickle (see trickleCandidates).
export function waitForIceGathering(pc, timeoutMs) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(done, timeoutMs);
    function done() {
      clearTimeout(timer);
      pc.removeEventListener("icegatheringstatechange", check);
      resolve();
    }
    function check() {
      if (pc.iceGatheringState === "complete") done();
    }
    pc.addEventListener("icegatheringstatechange", check);
  });
}

// Sends each candidate found after the offer went out as an `ice-candidate` message (api/realtime/transport.py; checked by relay/ice.py);
// the ones found before it are in the offer's SDP. shouldSend() says whether the offer is out and this
// peer connection is still the current one.
export function trickleCandidates(pc, shouldSend, send) {
  pc.addEventListener("icecandidate", (event) => {
    if (!event.candidate || !shouldSend()) return;
    const { candidate, sdpMid, sdpMLineIndex } = event.candidate;
    send({ type: "ice-candidate", candidate: { candidate, sdpMid, sdpMLineIndex } });
  });
}
