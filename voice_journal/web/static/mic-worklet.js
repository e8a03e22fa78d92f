// The microphone's samples as 16 kHz mono 16-bit PCM, in 30 ms pieces, posted to the page.
// Runs in the audio thread. The context is asked for 16 kHz; where a browser gives another
// rate, each piece is resampled here by linear interpolation (speech needs nothing finer).
"use strict";

const RATE = 16000;
const PIECE = 480; // 30 ms: one VAD frame

class Pcm16 extends AudioWorkletProcessor {
  constructor() {
    super();
    this.step = sampleRate / RATE; // input samples per output sample
    this.pos = 0; // where the next output sample falls, in input samples from the start of `tail`
    this.tail = new Float32Array(0); // input not yet used
    this.out = new Int16Array(PIECE);
    this.filled = 0;
  }

  process(inputs) {
    const channel = inputs[0] && inputs[0][0];
    if (!channel) return true;
    const input = new Float32Array(this.tail.length + channel.length);
    input.set(this.tail);
    input.set(channel, this.tail.length);
    let pos = this.pos;
    while (pos + 1 < input.length) {
      const i = Math.floor(pos);
      const f = pos - i;
      const v = input[i] * (1 - f) + input[i + 1] * f;
      this.out[this.filled++] = Math.max(-32768, Math.min(32767, Math.round(v * 32767)));
      if (this.filled === PIECE) {
        this.port.postMessage(this.out.buffer, [this.out.buffer]);
        this.out = new Int16Array(PIECE);
        this.filled = 0;
      }
      pos += this.step;
    }
    const keep = Math.floor(pos);
    this.tail = input.slice(keep);
    this.pos = pos - keep;
    return true;
  }
}

registerProcessor("pcm16", Pcm16);
