// An audible alert made with WebAudio (no audio file): two soft tones, like a doorbell.
// Browsers only let a page make sound after the user has interacted with it: call unlock() from a click.

const SOUND_KEY = "soulseer.requestSound";

export class AlertTone {
  constructor() {
    this.context = null;
    this.played = 0;
  }

  get wanted() {
    try { return globalThis.localStorage?.getItem(SOUND_KEY) !== "off"; } catch { return true; }
  }

  set wanted(on) {
    try { globalThis.localStorage?.setItem(SOUND_KEY, on ? "on" : "off"); } catch { /* private mode */ }
  }

  get audible() {
    return this.wanted && this.context?.state === "running";
  }

  unlock() {
    const AudioContextClass = globalThis.AudioContext ?? globalThis.webkitAudioContext;
    if (!AudioContextClass) return;
    this.context ??= new AudioContextClass();
    if (this.context.state === "suspended") this.context.resume().catch(() => {});
  }

  play() {
    if (!this.wanted) return false;
    this.unlock();
    const ctx = this.context;
    if (!ctx) return false;
    const start = ctx.currentTime + 0.02;
    for (const [offset, frequency] of [[0, 880], [0.28, 660]]) {
      const oscillator = ctx.createOscillator();
      const gain = ctx.createGain();
      oscillator.type = "sine";
      oscillator.frequency.value = frequency;
      gain.gain.setValueAtTime(0.0001, start + offset);
      gain.gain.exponentialRampToValueAtTime(0.25, start + offset + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, start + offset + 0.25);
      oscillator.connect(gain).connect(ctx.destination);
      oscillator.start(start + offset);
      oscillator.stop(start + offset + 0.3);
    }
    this.played += 1;
    return true;
  }
}
