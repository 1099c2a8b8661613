// ICE steps both browser clients (readings and live streams) share with the relay.

// How long after the first UDP candidate the offer waits for more (a host's other interfaces come within a
// few milliseconds; Chrome's "complete" comes 100-150 ms later, which every reading used to wait for).
const AFTER_FIRST_CANDIDATE_MS = 30;

// Resolves once the browser has gathered its candidates, shortly after its first UDP candidate, or after
// timeoutMs: the offer then carries what was found, and later candidates trickle (see trickleCandidates).
export function waitForIceGathering(pc, timeoutMs) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(done, timeoutMs);
    let soon = null;
    function done() {
      clearTimeout(timer);
      clearTimeout(soon);
      pc.removeEventListener("icegatheringstatechange", check);
      pc.removeEventListener("icecandidate", found);
      resolve();
    }
    function check() {
      if (pc.iceGatheringState === "complete") done();
    }
    function found(event) {
      if (event.candidate?.protocol === "udp" && soon === null) soon = setTimeout(done, AFTER_FIRST_CANDIDATE_MS);
    }
    pc.addEventListener("icegatheringstatechange", check);
    pc.addEventListener("icecandidate", found);
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
